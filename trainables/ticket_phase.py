"""The ticket phase: the drawn ticket trains on, without L1, for what the budget leaves it (budget.py).

`continue` goes on with the search's lr schedule, data order and pruned AdamW moments; `rewind` starts a
fresh run from the pre-trained weights at `ticket_lr`. Dev metric every `eval_interval` steps of the trial
(search phase counted, as ASHA's rungs count them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from . import pld as pld_mod
from .budget import ticket_plan
from .earlybert import optimizer_carry
from .earlybert.mask_search_state import SearchState
from .model.flops import shape_of
from .training.callbacks import Callback, Every
from .training.clock import TrainingClock
from .training.loop import TrainConfig, TrainResult, make_optimizer, train
from .trial_run import TrialRun


def ticket_phase(
    run: TrialRun,
    state: SearchState,
    ticket: nn.Module,
    opt_state: dict | None,
    train_loader,
    eval_data,
    extra: Sequence[Callback] = (),
) -> TrainResult:
    """`extra`: more loss terms for the ticket's steps (distillation's, ticket/distill.py)."""
    cfg = run.cfg
    plan = ticket_plan(cfg, run.budget, state.steps)
    if cfg.pld_in("ticket"):
        pld_mod.attach(ticket, pld_mod.PLDConfig(cfg.theta_bar, cfg.gamma, cfg.seed))
    run.cost.shape, run.cost.dropper = shape_of(ticket), pld_mod.dropper_of(ticket)
    run.clock = TrainingClock(offset=state.seconds)

    def report(step: int, logs: dict) -> None:
        metrics = {
            "phase": "ticket",
            "step": state.steps + step,
            "loss": logs["loss"],
            "lr": logs["lr"],
            "early_bird": state.converged,
            "done": False,
        }
        if cfg.eval_interval and (state.steps + step) % cfg.eval_interval == 0 and step < plan.steps:
            run.score(ticket, eval_data)
            metrics["eval_step"] = state.steps + step  # only next to a fresh val_metric: what ASHA's rungs compare
        run.send(metrics)

    callbacks = [run.cost] + ([pld_mod.PLDCallback(run.cost.dropper)] if run.cost.dropper is not None else [])
    callbacks += list(extra)
    callbacks.append(Every([cfg.report_interval, cfg.eval_interval], report, offset=state.steps))  # the trial's steps
    peak_lr = cfg.lr if cfg.ticket_mode == "continue" else cfg.ticket_lr  # continue: the same run goes on
    train_cfg = TrainConfig(
        lr=peak_lr,
        max_steps=plan.steps,
        seed=cfg.seed,
        warmup_ratio=cfg.warmup_ratio,
        progress=False,
        start_step=plan.start_step,
        schedule_steps=plan.horizon,
        **cfg.levers(),
    )
    optimizer = make_optimizer(ticket, train_cfg)  # before DDP wraps the ticket (bf16-master casts weights)
    if cfg.ticket_mode == "continue" and opt_state:  # the search's AdamW moments, pruned like the weights
        optimizer_carry.load_state(optimizer, ticket, opt_state)
    wrapped = run.reporter.prepare_model(ticket, find_unused=cfg.pld_in("ticket"))
    reseed(train_loader, cfg.seed)  # rewind: the dense run's first batches; continue: it skips what the search saw
    run.clock.start()
    tuned = train(wrapped, train_loader, train_cfg, callbacks, optimizer=optimizer)
    run.clock.stop()
    pld_mod.detach(ticket)
    return tuned


def reseed(loader: Any, seed: int) -> None:
    generator = getattr(loader, "generator", None)
    if isinstance(generator, torch.Generator):
        generator.manual_seed(seed)
