"""The dense reference trial (`baseline: true`): the run a ticket replaces, inside the same search.

Its cost and time are 1.0 by definition; the table and the Pareto plot put every ticket against it. In a
distilling search it then writes the teacher cache (ticket/distill.py): that pass is counted in its time and FLOPs
(above 1.0), once for the whole search.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from .config import FlowResult
from .reporter import finished_checkpoint
from .training.callbacks import Every
from .training.loop import TrainConfig, make_optimizer, train
from .trial_run import TrialRun


def baseline_trial(
    run: TrialRun, model: nn.Module, train_loader, eval_data, write_teacher: Callable[[nn.Module], object] | None = None
) -> FlowResult:
    """`write_teacher(model)` (a `distill.Teacher` back): the trained model's logits cached for the tickets."""
    cfg = run.cfg

    def report(step: int, logs: dict) -> None:
        run.dense_step_s = run.clock.elapsed() / step
        metrics = {"phase": "baseline", "step": step, "loss": logs["loss"], "lr": logs["lr"], "done": False}
        if cfg.eval_interval and step % cfg.eval_interval == 0 and step < run.budget:
            metrics.update(eval_step=step, val_metric=run.score(model, eval_data))
        run.send(metrics)

    train_cfg = TrainConfig(
        lr=cfg.lr, max_steps=run.budget, seed=cfg.seed, warmup_ratio=cfg.warmup_ratio, progress=False, **cfg.levers()
    )
    optimizer = make_optimizer(model, train_cfg)  # before DDP wraps the model (bf16-master casts weights)
    wrapped = run.reporter.prepare_model(model, find_unused=False)
    run.clock.start()
    result = train(
        wrapped,
        train_loader,
        train_cfg,
        [run.cost, Every([cfg.report_interval, cfg.eval_interval], report)],
        optimizer=optimizer,
    )
    train_seconds = run.clock.stop()
    run.dense_step_s = train_seconds / result.steps
    eval_during = run.clock.paused
    seconds = {"ticket": train_seconds, "eval_during": eval_during}
    run.score(model, eval_data)
    seconds["eval"] = run.clock.paused - eval_during
    teacher = write_teacher(model) if write_teacher is not None else None
    if teacher is not None and teacher.seconds:
        seconds["teacher_cache"] = teacher.seconds
        run.clock.frozen = train_seconds + teacher.seconds  # the cache is this trial's work, counted once
        run.cost.flops += teacher.flops
    run.send(
        {
            "phase": "done",
            "step": result.steps,
            "eval_step": result.steps,
            "ticket_steps": result.steps,
            "val_metric": run.val,
            "converged": False,
            "early_bird": False,
            "early_bird_step": -1,
            "search_steps": 0,
            "done": True,
        },
        checkpoint_dir=finished_checkpoint(run.reporter),
    )
    return run.result(
        converged=False,
        early_bird_step=None,
        search_steps=0,
        ticket_steps=result.steps,
        seconds=seconds,
        teacher=teacher.to_dict() if teacher is not None else None,
    )
