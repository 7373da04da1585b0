"""tickettune's own arm of the time benchmarks: a flow trial (the dense baseline, or an EarlyBERT ticket mode) run
as `run_flow` runs it, timed and with its dev-metric curve: the flow arms of scripts/bench/time_to_accuracy.py."""

from __future__ import annotations

import math
import tempfile
import time

from tickettune.trainables.flow import run_flow
from tickettune.trainables.reporter import LocalReporter
from tickettune.trainables.tasks import get_task
from tickettune.trainables.ticket.format import read_info

from .bench import flow_config


def arm_flow(args, task: str, seed: int, epochs: float, every: int, mode: str | None, sets: dict) -> dict:
    """tickettune's flow: `mode` None is the dense baseline trial, else an EarlyBERT ticket mode; `sets` are
    the arm's FlowConfig overrides."""
    spec = get_task(task)
    cfg = flow_config(
        args,
        task,
        seed,
        ticket_lr=args.lr,
        budget_epochs=epochs,
        eval_interval=every,
        baseline=mode is None,
        ticket_mode=mode or "rewind",
        coef_lr=args.coef_lr,
        eps=args.eps,
        window=args.window,
        mask_interval=args.mask_interval,
        search_max_steps=args.search_max_steps,
        head_ratio=args.head_ratio,
        ffn_ratio=args.ffn_ratio,
        unconverged="ticket",
        **{"precision": None, **sets},  # None: the flow's own (fast_path.py)
    )
    reporter = LocalReporter(verbose=False)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = run_flow(cfg, reporter, ticket_dir=None if mode is None else f"{tmp}/ticket")
        total = time.perf_counter() - start
        layout = read_info(f"{tmp}/ticket")["layout"] if mode is not None else None
    curve = [
        {"step": r["step"], "train_seconds": r["train_seconds"], "metric": r["val_metric"]}
        for r in reporter.history
        if "eval_step" in r and r["phase"] != "search" and math.isfinite(r["val_metric"])  # the ticket's curve
    ]
    train_seconds = sum(v for k, v in result.seconds.items() if k in ("search", "ticket"))
    return {
        "steps": result.search_steps + result.ticket_steps,
        "search_steps": result.search_steps,
        "ticket_steps": result.ticket_steps,
        "early_bird_step": result.early_bird_step,
        "train_seconds": train_seconds,
        "phase_seconds": dict(result.seconds),  # search and ticket apart: the ticket phase's own step time
        "total_seconds": total,
        "metric": float(result.val_metric),
        "relative_cost": result.relative_cost,
        "ticket_layout": layout,
        "teacher": result.teacher,  # distillation's record (ticket/distill.py): the cache, used or why not, its cost
        "curve": curve,
        "metric_name": spec.main_metric,
    }
