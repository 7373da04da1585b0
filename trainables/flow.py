"""One trial, start to finish: mask search -> draw -> ticket phase -> evaluate (and save the ticket).

This is what a Ray Train worker runs (searcher/trial.py) and what `tickettune earlybert` runs locally.
Everything Ray-specific comes in through the `Reporter`: where metrics go, checkpoints, how the early-bird
stop is agreed between ranks, how the model and loaders are prepared for data parallelism.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import torch
from torch import nn

from . import fast_path
from .baseline import baseline_trial
from .budget import budget_steps
from .config import FlowConfig, FlowResult
from .earlybert import mask_search_state
from .earlybert.draw import draw_ticket
from .earlybert.mask_search import search_phase
from .model.build import load_model, scratch_from_dict, scratch_model
from .model.flops import shape_of, train_flops_per_sequence
from .reporter import LocalReporter, Reporter, finished_checkpoint, new_checkpoint_dir
from .tasks.example_index import with_example_index
from .ticket import distill
from .ticket.format import save_ticket
from .ticket_phase import ticket_phase
from .training.precision import resolve_precision
from .trial_run import CostMeter, TrialRun


def run_flow(cfg: FlowConfig, reporter: Reporter | None = None, ticket_dir: str | None = None) -> FlowResult:
    reporter = reporter or LocalReporter()
    resolve_precision(cfg.levers()["precision"], fast_path.fast_device())  # refused before any compute
    torch.manual_seed(cfg.seed)
    model, tokenizer = build(cfg)
    task, args = cfg.task_obj, cfg.data_args()
    distilling = distill.Distill.of(cfg)
    distill.check(distilling, task, reporter.world_size)
    rows = task.train_loader(tokenizer, args)  # before data parallelism: the teacher cache covers every row
    distill.check_present(distilling, task, tokenizer, rows, args)
    if cfg.distill_weight > 0 and not cfg.baseline:
        rows = with_example_index(rows)  # the same batches, saying which rows they hold
    train_loader, eval_data = reporter.prepare_loader(rows), task.eval_data(tokenizer, args)
    budget = budget_steps(cfg, batches_per_epoch(train_loader))  # the dense run this trial replaces
    dense_step = cfg.batch_size * train_flops_per_sequence(shape_of(model), cfg.max_length)
    run = TrialRun(cfg, reporter, budget, CostMeter(model, cfg.max_length, cfg.batch_size, dense_step))
    precision = cfg.levers()["precision"]
    if cfg.baseline:
        writes = cfg.teacher_cache is not None and cfg.teacher is None and reporter.rank == 0
        teacher = (lambda m: distill.write(distilling, m, tokenizer, task, rows, args, precision)) if writes else None
        return baseline_trial(run, model, train_loader, eval_data, write_teacher=teacher)
    written, tmp = distill.Teacher.of(distilling), None
    if cfg.teacher:  # standalone: the teacher's logits first, their cost in this run's
        written, tmp = distill.write_from_teacher(
            distilling, task, tokenizer, rows, args, precision, _device(reporter), reporter.rank
        )
        run.cost.flops += written.flops
    try:
        return _earlybert(run, model, tokenizer, rows, train_loader, eval_data, ticket_dir, written)
    finally:
        distill.remove(tmp)


def _earlybert(run: TrialRun, model, tokenizer, rows, train_loader, eval_data, ticket_dir, written) -> FlowResult:
    """Search, draw, ticket phase (distilled where the config and the cache say so), finish."""
    cfg, reporter, task = run.cfg, run.reporter, run.cfg.task_obj
    latest = reporter.checkpoint()  # a restarted worker finds the search done in its checkpoint
    restored = mask_search_state.load(latest) if latest is not None else None
    if restored is None:
        searched = search_phase(cfg, model, train_loader, run, eval_data)
        state = searched.state
        drawable = searched.drawable(cfg.unconverged)
        ticket, opt_state = draw_ticket(searched, cfg.ticket_mode) if drawable else (None, None)
        if ticket is not None:
            _checkpoint_search(run, state, ticket, tokenizer, opt_state)
    else:
        state, ticket, opt_state = restored
        run.cost.flops = state.flops
    del model
    run.dense_step_s = state.seconds / max(1, state.steps)
    run.clock.offset = state.seconds + written.seconds  # the teacher cache this run wrote is its training time too
    if ticket is None:  # not converged and cfg.unconverged == "stop"
        run.send(
            {
                "phase": "done",
                "step": state.steps,
                "converged": False,
                "early_bird": False,
                "early_bird_step": -1,
                "search_steps": state.steps,
                "done": True,
            }
        )
        return run.result(
            converged=False,
            early_bird_step=None,
            search_steps=state.steps,
            ticket_steps=0,
            seconds={"search": state.seconds},
        )

    settings = distill.Distill(cfg.distill_weight, cfg.distill_temperature, cfg.teacher, written.cache)
    callback, teacher = distill.ticket_callback(settings, task, tokenizer, rows, cfg.data_args(), reporter.agree)
    if teacher is not None:
        teacher.written, teacher.seconds = written.written, written.seconds
    tuned = ticket_phase(run, state, ticket, opt_state, train_loader, eval_data, [callback] if callback else [])
    return _finish(run, state, ticket, tokenizer, tuned.steps, eval_data, ticket_dir, teacher or written)


def _checkpoint_search(run: TrialRun, state, ticket: nn.Module, tokenizer, opt_state: dict | None) -> None:
    """The ticket phase's first report carries a checkpoint of what the search found (rank 0 writes it, every
    rank reports), so a restarted worker skips the search."""
    if not run.reporter.takes_checkpoints:
        return
    directory = new_checkpoint_dir(run.reporter)
    if directory is not None:
        mask_search_state.save(state, ticket, tokenizer, directory, opt_state)
    run.send(
        {"phase": "ticket", "step": state.steps, "early_bird": state.converged, "done": False}, checkpoint_dir=directory
    )


def _finish(
    run: TrialRun,
    state,
    ticket: nn.Module,
    tokenizer,
    ticket_steps: int,
    eval_data,
    ticket_dir: str | None,
    teacher: distill.Teacher,
) -> FlowResult:
    """Score the trained ticket, save it (rank 0), and send the trial's last report."""
    cfg = run.cfg
    eval_during = run.clock.paused
    seconds = {
        "search": state.seconds,
        "ticket": run.clock.elapsed() - state.seconds - teacher.seconds,
        "eval_during": eval_during,
    }
    if teacher.seconds:
        seconds["teacher_cache"] = teacher.seconds
    metric_name, val = cfg.task_obj.main_metric, run.score(ticket, eval_data)
    seconds["eval"] = run.clock.paused - eval_during
    bird_step = state.early_bird_step if state.converged else None
    info = {
        "flow": asdict(cfg),
        "levers": {k: v for k, v in cfg.levers().items() if k in ("precision", "embeddings", "dropout")},
        "task": cfg.task_obj.info(),
        "metric": metric_name,
        "val_metric": val,
        "converged": state.converged,
        "early_bird_step": bird_step,
        "relative_cost": run.relative_cost,
        "budget_steps": run.budget,
        "relative_time": run.relative_time,
        "masks": {"heads": state.head_masks, "ffn": state.ffn_masks},
        "mask_history": state.mask_history,
        "distill": teacher.to_dict() if cfg.distill_weight > 0 or teacher.written else None,
    }
    if ticket_dir is not None and run.reporter.rank == 0:
        save_ticket(ticket, tokenizer, ticket_dir, info, overwrite=True)
    run.send(
        {
            "phase": "done",
            "step": state.steps + ticket_steps,
            "eval_step": state.steps + ticket_steps,
            "ticket_steps": ticket_steps,
            "converged": state.converged,
            "early_bird": state.converged,
            "early_bird_step": -1 if bird_step is None else bird_step,
            "search_steps": state.steps,
            "distilled": teacher.used,
            "done": True,
        },
        checkpoint_dir=finished_checkpoint(run.reporter),
    )
    return run.result(
        converged=state.converged,
        early_bird_step=bird_step,
        search_steps=state.steps,
        ticket_steps=ticket_steps,
        seconds=seconds,
        ticket_dir=ticket_dir,
        teacher=info["distill"],
    )


def _device(reporter: Reporter) -> torch.device:
    """Where this worker computes (a teacher model runs there): the reporter's placement, else the CPU."""
    placement = getattr(reporter, "placement", None)
    return placement.device if placement is not None else torch.device("cpu")


def build(cfg: FlowConfig):
    task = cfg.task_obj
    task.check(cfg.data_args())  # every row read and checked before any model is built
    if cfg.scratch is not None:
        return scratch_model(scratch_from_dict(cfg.scratch), head=task.head, num_labels=task.num_labels)
    return load_model(cfg.model, head=task.head, num_labels=task.num_labels)


def batches_per_epoch(loader: Any) -> int | None:
    try:
        return len(loader)
    except TypeError:  # a streamed corpus has no length
        return None
