"""EarlyBERT's search phase, and the checkpoint that lets a restarted worker skip it.

Slimming coefficients train under L1 with the model; a mask is drawn every `mask_interval` steps and the
early-bird detector ends the phase when the masks stop changing. What it found (SearchState) and the
untrained ticket are checkpointed at once, so a crash later costs only ticket steps.
"""
from __future__ import annotations

import os

from torch import nn

from . import carry, search_state, slimming
from . import pld as pld_mod
from .callbacks import CostMeter, Every
from .earlybird import EarlyBirdCallback, EarlyBirdDetector
from .masks import MaskConfig, draw_masks
from .reporter import Reporter
from .search_state import SearchState
from .ticket import make_ticket, snapshot
from .train import TrainConfig, train


def search_phase(cfg, model: nn.Module, train_loader, reporter: Reporter, cost: CostMeter,
                  send, budget: int) -> tuple[SearchState, nn.Module | None, dict | None]:
    """`cfg` is the trial's FlowConfig. Slimming coefficients under L1, a mask every mask_interval steps, stop at the early bird (or the
    budget); returns what was found, the untrained ticket (None: unconverged and cfg says stop) and, in
    ticket_mode "continue", the optimizer state pruned like the ticket."""
    pretrained = snapshot(model) if cfg.ticket_mode == "rewind" else None  # EarlyBERT rewinds to these
    slimming.attach(model)
    if cfg.pld_in("search"):
        pld_mod.attach(model, pld_mod.PLDConfig(cfg.theta_bar, cfg.gamma, cfg.seed))
    masks_cfg = MaskConfig(head_ratio=cfg.head_ratio, ffn_ratio=cfg.ffn_ratio, head_scope=cfg.head_scope,
                           ffn_scope=cfg.ffn_scope, min_heads=cfg.min_heads, min_ffn=cfg.min_ffn,
                           ffn_multiple=cfg.ffn_multiple)
    detector = EarlyBirdDetector(window=cfg.window, eps=cfg.eps)
    bird = EarlyBirdCallback(masks_cfg, detector, interval=cfg.mask_interval, agree=reporter.agree,
                             stop=cfg.detect)
    cost.dropper = pld_mod.dropper_of(model)
    wrapped = reporter.prepare_model(model, find_unused=cfg.pld_in("search"))

    def search_report(step: int, logs: dict) -> None:
        d = bird.history[-1] if bird.history else {}
        send({"phase": "search", "step": step, "loss": logs["loss"], "lr": logs["lr"], "mask_distance": d.get("distance", 1.0),
              "head_distance": d.get("head_distance", 1.0), "ffn_distance": d.get("ffn_distance", 1.0),
              "early_bird": detector.found, "done": False})

    callbacks = [slimming.SlimmingCallback(cfg.lambda_head, cfg.lambda_ffn), cost]
    if cost.dropper is not None:
        callbacks.append(pld_mod.PLDCallback(cost.dropper))
    callbacks += [bird, Every([cfg.mask_interval], search_report)]
    # the search phase is the start of the dense run it replaces: its lr follows that run's schedule, so
    # the masks cannot "converge" just because the lr decayed to zero at the search budget
    search_cfg = TrainConfig(lr=cfg.lr, coef_lr=cfg.coef_lr, max_steps=min(cfg.search_max_steps, budget),
                             seed=cfg.seed, schedule_steps=budget, warmup_ratio=cfg.warmup_ratio, progress=False,
                             precision=cfg.precision, **cfg.compile_args())
    search = train(wrapped, train_loader, search_cfg, callbacks)
    pld_mod.detach(model)
    head_masks, ffn_masks = draw_masks(*slimming.coefficients(model), masks_cfg)
    state = SearchState(converged=detector.found, early_bird_step=detector.found_at_step, steps=search.steps,
                        flops=cost.flops, seconds=search.seconds,
                        head_masks=[m.tolist() for m in head_masks], ffn_masks=[m.tolist() for m in ffn_masks],
                        mask_history=bird.history)
    if not state.converged and cfg.unconverged == "stop":
        return state, None, None
    opt_state = None
    if cfg.ticket_mode == "continue":
        opt_state = carry.prune_state(model, carry.state_by_name(model, search.optimizer), head_masks, ffn_masks)
    ticket = make_ticket(pretrained, model, head_masks, ffn_masks, rewind=cfg.ticket_mode == "rewind")
    return state, ticket, opt_state


def restore(reporter: Reporter) -> tuple[SearchState, nn.Module, dict | None] | None:
    """The search phase's result from the run's latest checkpoint (a restarted Ray Train worker)."""
    find = getattr(reporter, "checkpoint", None)
    directory = find() if find is not None else None
    return search_state.load(directory) if directory is not None else None


def checkpoint(reporter: Reporter, state: SearchState, ticket: nn.Module, tokenizer, opt_state: dict | None,
                send) -> None:
    """Report the start of the ticket phase with a checkpoint of the search's result (rank 0 writes it;
    every rank reports)."""
    if not hasattr(reporter, "checkpoint_dir"):  # a reporter without checkpoints (LocalReporter)
        return
    directory = new_checkpoint_dir(reporter)
    if directory is not None:
        search_state.save(state, ticket, tokenizer, directory, opt_state)
    send({"phase": "ticket", "step": state.steps, "early_bird": state.converged, "done": False},
         checkpoint_dir=directory)  # the ticket phase's first report: its untrained ticket


def finished_checkpoint(reporter: Reporter) -> str | None:
    """A small marker checkpoint for the last report: Ray keeps one checkpoint per run, so the search
    checkpoint (an untrained ticket, tens of MB per trial) goes once the trial has its trained ticket."""
    directory = new_checkpoint_dir(reporter)
    if directory is not None:
        with open(os.path.join(directory, "finished.json"), "w") as f:
            f.write('{"finished": true}\n')
    return directory


def new_checkpoint_dir(reporter: Reporter) -> str | None:
    """A fresh folder for a checkpoint on rank 0 of a reporter that takes checkpoints; else None."""
    make_dir = getattr(reporter, "checkpoint_dir", None)
    return make_dir() if make_dir is not None and reporter.rank == 0 else None
