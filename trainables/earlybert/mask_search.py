"""EarlyBERT's mask search: the phase before the ticket is drawn.

Slimming coefficients train under L1 with the model; a mask is drawn every `mask_interval` steps and the
early-bird detector ends the phase when the masks stop changing (or the search budget runs out). With an
`eval_interval` the searching model is scored on dev at the trial's own step count, like the ticket after it:
ASHA's rungs count the trial's steps, so a trial still searching at a rung is judged there too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .. import pld as pld_mod
from ..training.callbacks import Every
from ..training.loop import TrainConfig, make_optimizer, train
from ..trial_run import TrialRun
from . import slimming
from .draw import snapshot
from .earlybird import EarlyBirdCallback, EarlyBirdDetector
from .mask_search_state import SearchState
from .masks import MaskConfig, draw_masks


@dataclass
class Searched:
    """What the mask search leaves for the draw: its facts, the trained model with its coefficients, the
    optimizer that trained it (`continue` carries its moments on) and the pre-trained weights (`rewind`)."""

    state: SearchState
    model: nn.Module
    optimizer: torch.optim.Optimizer | None
    pretrained: dict[str, torch.Tensor] | None

    def drawable(self, unconverged: str) -> bool:
        """A ticket is drawn at the early bird, or without one when the config says so."""
        return self.state.converged or unconverged == "ticket"


def search_phase(cfg, model: nn.Module, train_loader, run: TrialRun, eval_data=None) -> Searched:
    """`cfg` is the trial's FlowConfig; reports go through `run` every mask_interval steps (and every
    eval_interval, with the dev metric of `eval_data`)."""
    pretrained = snapshot(model) if cfg.ticket_mode == "rewind" else None  # EarlyBERT rewinds to these
    slimming.attach(model)
    if cfg.pld_in("search"):
        pld_mod.attach(model, pld_mod.PLDConfig(cfg.theta_bar, cfg.gamma, cfg.seed))
    masks_cfg = MaskConfig(
        head_ratio=cfg.head_ratio,
        ffn_ratio=cfg.ffn_ratio,
        head_scope=cfg.head_scope,
        ffn_scope=cfg.ffn_scope,
        min_heads=cfg.min_heads,
        min_ffn=cfg.min_ffn,
        ffn_multiple=cfg.ffn_multiple,
    )
    detector = EarlyBirdDetector(window=cfg.window, eps=cfg.eps)
    bird = EarlyBirdCallback(masks_cfg, detector, interval=cfg.mask_interval, agree=run.reporter.agree, stop=cfg.detect)
    run.cost.dropper = pld_mod.dropper_of(model)
    # the search phase is the start of the dense run it replaces: its lr follows that run's schedule, so
    # the masks cannot "converge" just because the lr decayed to zero at the search budget
    search_cfg = TrainConfig(
        lr=cfg.lr,
        coef_lr=cfg.coef_lr,
        max_steps=min(cfg.search_max_steps, run.budget),
        seed=cfg.seed,
        schedule_steps=run.budget,
        warmup_ratio=cfg.warmup_ratio,
        progress=False,
        **cfg.levers(),
    )
    optimizer = make_optimizer(model, search_cfg)  # before DDP wraps the model (bf16-master casts weights)
    wrapped = run.reporter.prepare_model(model, find_unused=cfg.pld_in("search"))

    def report(step: int, logs: dict) -> None:
        d = bird.history[-1] if bird.history else {}
        metrics = {
            "phase": "search",
            "step": step,
            "loss": logs["loss"],
            "lr": logs["lr"],
            "mask_distance": d.get("distance", 1.0),
            "head_distance": d.get("head_distance", 1.0),
            "ffn_distance": d.get("ffn_distance", 1.0),
            "early_bird": detector.found,
            "done": False,
        }
        if eval_data is not None and cfg.eval_interval and step % cfg.eval_interval == 0 and step < run.budget:
            run.score(model, eval_data)
            metrics["eval_step"] = step  # only next to a fresh val_metric: what ASHA's rungs compare
        run.send(metrics)

    callbacks = [slimming.SlimmingCallback(cfg.lambda_head, cfg.lambda_ffn), run.cost]
    if run.cost.dropper is not None:
        callbacks.append(pld_mod.PLDCallback(run.cost.dropper))
    callbacks += [bird, Every([cfg.mask_interval, cfg.eval_interval if eval_data is not None else None], report)]
    scoring = run.clock.paused
    search = train(wrapped, train_loader, search_cfg, callbacks, optimizer=optimizer)
    search.seconds -= run.clock.paused - scoring  # dev scoring inside the loop is not training
    pld_mod.detach(model)
    head_masks, ffn_masks = draw_masks(*slimming.coefficients(model), masks_cfg)
    state = SearchState(
        converged=detector.found,
        early_bird_step=detector.found_at_step,
        steps=search.steps,
        flops=run.cost.flops,
        seconds=search.seconds,
        head_masks=[m.tolist() for m in head_masks],
        ffn_masks=[m.tolist() for m in ffn_masks],
        mask_history=bird.history,
    )
    return Searched(state, model, search.optimizer, pretrained)
