"""One trial, start to finish: EarlyBERT search phase -> draw -> prune -> ticket training -> eval.

This is what a Ray Train worker runs (searcher/trial.py) and what `tickettune earlybert` runs locally.
Everything Ray-specific comes in through the `Reporter`: where metrics go, how the early-bird stop is
agreed between ranks, how the model and loaders are prepared for data parallelism.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

import torch
from torch import nn

from . import pld as pld_mod
from . import search_state, slimming
from .data import TASKS, glue_loader, mlm_loader
from .device import OneDevice, place
from .earlybird import EarlyBirdCallback, EarlyBirdDetector
from .flops import shape_of, train_flops_per_sequence
from .masks import MaskConfig, draw_masks
from .model import load_model, scratch_from_dict, scratch_model
from .precision import PRECISIONS
from .search_state import SearchState
from .ticket import make_ticket, save_ticket, snapshot
from .train import Callback, TrainConfig, evaluate, mlm_eval, train, unwrap

PLD_PHASES = ("search", "ticket", "both")
MLM_TASKS = ("wikitext",)


@dataclass
class FlowConfig:
    # what to train on
    model: str = "minilm-l6"            # alias, local dir, hub id; ignored when `scratch` is given
    scratch: dict | None = None         # ScratchConfig fields: pre-training from random weights
    task: str = "sst2"                  # a GLUE task in data.TASKS, or "wikitext" (MLM)
    data_root: str | None = None
    max_train_samples: int | None = 2000
    max_eval_samples: int | None = None
    max_length: int = 64
    batch_size: int = 32
    seed: int = 0
    precision: str = "auto"             # auto | fp32 | bf16 | fp16: autocast of every forward (precision.py)
    # search phase (EarlyBERT)
    lr: float = 1e-4
    coef_lr: float | None = None
    head_ratio: float = 1 / 3
    ffn_ratio: float = 0.4
    head_scope: str = "layer"
    ffn_scope: str = "global"
    min_heads: int = 1
    min_ffn: int = 8
    ffn_multiple: int | None = 8        # kept FFN widths rounded to a multiple of 8: faster matmuls
    lambda_head: float = 1e-4
    lambda_ffn: float = 1e-4
    eps: float = 0.1
    window: int = 5
    mask_interval: int = 10
    search_max_steps: int = 300
    detect: bool = True                 # False: draw at search_max_steps (fixed budget, as the reference)
    unconverged: str = "stop"           # "stop": end the trial unconverged; "ticket": draw anyway
    # ticket phase
    ticket_steps: int = 300
    ticket_lr: float = 1e-4
    eval_interval: int | None = None    # dev metric every N ticket steps too (ASHA's rungs); None: at the end
    rewind: bool = True
    # progressive layer dropping
    pld: bool = False
    pld_phase: str = "ticket"
    theta_bar: float = 0.5
    gamma: float = 0.001
    warmup_ratio: float = 0.1

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("invalid trial config:\n  " + "\n  ".join(problems))

    def problems(self) -> list[str]:
        p = []
        if self.task not in TASKS and self.task not in MLM_TASKS:
            p.append(f"task={self.task!r}: expected one of {sorted(TASKS) + list(MLM_TASKS)}")
        for name in ("head_ratio", "ffn_ratio"):
            v = getattr(self, name)
            if not 0 <= v < 1:
                p.append(f"{name}={v!r} must be in [0, 1)")
        for name in ("lambda_head", "lambda_ffn"):
            if getattr(self, name) < 0:
                p.append(f"{name}={getattr(self, name)!r} must be >= 0")
        for name in ("lr", "ticket_lr"):
            if not getattr(self, name) > 0:
                p.append(f"{name}={getattr(self, name)!r} must be > 0")
        for name in ("batch_size", "max_length", "mask_interval", "search_max_steps", "ticket_steps"):
            if getattr(self, name) < 1:
                p.append(f"{name}={getattr(self, name)!r} must be >= 1")
        if self.eval_interval is not None and self.eval_interval < 1:
            p.append(f"eval_interval={self.eval_interval!r} must be >= 1 (or null: only at the end)")
        if not 0 <= self.eps <= 1:
            p.append(f"eps={self.eps!r} must be in [0, 1]")
        if self.window < 2:
            p.append(f"window={self.window!r} must be >= 2")
        if self.pld_phase not in PLD_PHASES:
            p.append(f"pld_phase={self.pld_phase!r}: expected one of {PLD_PHASES}")
        if self.precision not in PRECISIONS:
            p.append(f"precision={self.precision!r}: expected one of {PRECISIONS}")
        if self.unconverged not in ("stop", "ticket"):
            p.append(f"unconverged={self.unconverged!r}: expected 'stop' or 'ticket'")
        if not 0 < self.theta_bar <= 1:
            p.append(f"theta_bar={self.theta_bar!r} must be in (0, 1]")
        if self.gamma < 0:
            p.append(f"gamma={self.gamma!r} must be >= 0")
        return p

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FlowConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown trial config keys: {unknown}")
        return cls(**d)

    @property
    def metric_mode(self) -> str:
        return "min" if self.task in MLM_TASKS else "max"

    def pld_in(self, phase: str) -> bool:
        return self.pld and self.pld_phase in (phase, "both")


class Reporter(Protocol):
    rank: int
    world_size: int

    def report(self, metrics: dict, checkpoint_dir: str | None = None) -> None: ...

    def agree(self, flag: bool) -> bool: ...

    def prepare_model(self, model: nn.Module, find_unused: bool) -> nn.Module: ...

    def prepare_loader(self, loader: Any) -> Any: ...


class LocalReporter(OneDevice):
    """Single process: prints a line per report and keeps them. `device`: "auto" (CUDA when torch sees
    it), "cuda" (warns and uses the CPU when there is none) or "cpu"."""

    rank, world_size = 0, 1

    def __init__(self, verbose: bool = True, device: str = "auto"):
        choice = {"auto": "auto", "cuda": True, "cpu": False}
        if device not in choice:
            raise ValueError(f"device={device!r}: expected one of {list(choice)}")
        super().__init__(place(choice[device]))
        self.history: list[dict] = []
        self.verbose = verbose

    def report(self, metrics: dict, checkpoint_dir: str | None = None) -> None:
        self.history.append(dict(metrics))
        if self.verbose:
            keys = ("phase", "step", "loss", "mask_distance", "early_bird", "val_metric", "relative_cost")
            print("  ".join(f"{k}={_fmt(metrics[k])}" for k in keys if k in metrics), flush=True)

    def agree(self, flag: bool) -> bool:
        return flag


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


@dataclass
class FlowResult:
    val_metric: float
    metric_name: str
    converged: bool
    early_bird_step: int | None
    search_steps: int
    ticket_steps: int
    relative_cost: float
    seconds: dict = field(default_factory=dict)
    ticket_dir: str | None = None
    history: list[dict] = field(default_factory=list)


class CostMeter(Callback):
    """Training FLOPs so far, counting only the layers PLD actually ran."""

    def __init__(self, model: nn.Module, seq: int, batch: int, dense_flops_per_step: float):
        self.shape, self.seq, self.batch = shape_of(model), seq, batch
        self.dense = dense_flops_per_step
        self.flops = 0.0
        self.dropper = pld_mod.dropper_of(model)

    def after_step(self, step: int, logs: dict) -> bool:
        kept = self.dropper.last_kept() if self.dropper is not None else None
        self.flops += self.batch * train_flops_per_sequence(self.shape, self.seq, kept)
        return False


class Every(Callback):
    """Calls `fn(step, logs)` once at each step that is a multiple of one of `intervals` (None: unused).
    Every rank calls it at the same steps: reports are collective."""

    def __init__(self, intervals: list[int | None], fn):
        self.intervals, self.fn = [i for i in intervals if i], fn

    def after_step(self, step: int, logs: dict) -> bool:
        if any(step % i == 0 for i in self.intervals):
            self.fn(step, logs)
        return False


def _data(cfg: FlowConfig, tokenizer, reporter: Reporter):
    if cfg.task in MLM_TASKS:  # the shared WikiText-2 has no train split: train on valid, hold out test
        train_loader = mlm_loader(tokenizer, "valid", cfg.batch_size, max_length=cfg.max_length, seed=cfg.seed,
                                  max_samples=cfg.max_train_samples, root=cfg.data_root)
        eval_loader = mlm_loader(tokenizer, "test", cfg.batch_size, max_length=cfg.max_length, seed=cfg.seed,
                                 max_samples=cfg.max_eval_samples, root=cfg.data_root, shuffle=False)
    else:
        train_loader = glue_loader(cfg.task, "train", tokenizer, batch_size=cfg.batch_size,
                                   max_length=cfg.max_length, max_samples=cfg.max_train_samples,
                                   shuffle=True, seed=cfg.seed, root=cfg.data_root)
        eval_loader = glue_loader(cfg.task, "dev", tokenizer, batch_size=64, max_length=cfg.max_length,
                                  max_samples=cfg.max_eval_samples, shuffle=False, root=cfg.data_root)
    return reporter.prepare_loader(train_loader), eval_loader


def _build(cfg: FlowConfig):
    if cfg.task in MLM_TASKS:
        if cfg.scratch is not None:
            return scratch_model(scratch_from_dict(cfg.scratch), head="mlm")
        return load_model(cfg.model, head="mlm")
    spec = TASKS[cfg.task]
    if cfg.scratch is not None:
        return scratch_model(scratch_from_dict(cfg.scratch), head=spec.head, num_labels=spec.num_labels)
    return load_model(cfg.model, head=spec.head, num_labels=spec.num_labels)


def validation(cfg: FlowConfig, model: nn.Module, loader) -> tuple[str, float]:
    if cfg.task in MLM_TASKS:
        return "perplexity", mlm_eval(model, loader, cfg.precision)["perplexity"]
    name = TASKS[cfg.task].main_metric
    return name, float(evaluate(model, loader, cfg.task, cfg.precision)[name])


def run_flow(cfg: FlowConfig, reporter: Reporter | None = None, ticket_dir: str | None = None) -> FlowResult:
    reporter = reporter or LocalReporter()
    torch.manual_seed(cfg.seed)
    model, tokenizer = _build(cfg)
    train_loader, eval_loader = _data(cfg, tokenizer, reporter)
    dense_step = cfg.batch_size * train_flops_per_sequence(shape_of(model), cfg.max_length)
    budget = dense_step * (cfg.search_max_steps + cfg.ticket_steps)  # the dense run this trial replaces
    history: list[dict] = []
    metric_name, val = validation_name(cfg), math.nan
    cost = CostMeter(model, cfg.max_length, cfg.batch_size, dense_step)

    def send(metrics: dict, checkpoint_dir: str | None = None) -> None:
        metrics = {"val_metric": val, "relative_cost": cost.flops / budget, **metrics}
        history.append(metrics)
        reporter.report(metrics, checkpoint_dir=checkpoint_dir)

    # --- search phase, unless a restarted worker finds it done in its checkpoint
    restored = _restore(reporter)
    if restored is None:
        state, ticket = _search_phase(cfg, model, train_loader, reporter, cost, send)
        if ticket is not None:
            _checkpoint(reporter, state, ticket, tokenizer, send)
    else:
        state, ticket = restored
        cost.flops = state.flops
    del model
    seconds = {"search": state.seconds}
    if ticket is None:  # not converged and cfg.unconverged == "stop"
        send({"phase": "done", "step": state.steps, "converged": False, "early_bird": False,
              "early_bird_step": -1, "search_steps": state.steps, "done": True})
        return FlowResult(math.nan, metric_name, False, None, state.steps, 0, cost.flops / budget,
                          seconds, None, history)

    # --- ticket phase: the pruned ticket, fresh optimizer, no L1; dev metric every eval_interval steps
    if cfg.pld_in("ticket"):
        pld_mod.attach(ticket, pld_mod.PLDConfig(cfg.theta_bar, cfg.gamma, cfg.seed))
    cost.shape, cost.dropper = shape_of(ticket), pld_mod.dropper_of(ticket)
    base = state.steps

    def ticket_report(step: int, logs: dict) -> None:
        nonlocal val
        metrics = {"phase": "ticket", "step": base + step, "loss": logs["loss"], "early_bird": state.converged,
                   "done": False}
        if cfg.eval_interval and step % cfg.eval_interval == 0 and step < cfg.ticket_steps:
            _, val = validation(cfg, ticket, eval_loader)
            metrics["ticket_step"] = step  # only next to a fresh val_metric: what ASHA's rungs compare
        send(metrics)

    callbacks = [cost] + ([pld_mod.PLDCallback(cost.dropper)] if cost.dropper is not None else [])
    callbacks.append(Every([cfg.mask_interval, cfg.eval_interval], ticket_report))
    wrapped = reporter.prepare_model(ticket, find_unused=cfg.pld_in("ticket"))
    _reseed(train_loader, cfg.seed)  # the ticket sees the same batches however long the search ran
    tuned = train(wrapped, train_loader, TrainConfig(lr=cfg.ticket_lr, max_steps=cfg.ticket_steps, seed=cfg.seed,
                                                     warmup_ratio=cfg.warmup_ratio, progress=False,
                                                     precision=cfg.precision), callbacks)
    seconds["ticket"] = tuned.seconds
    pld_mod.detach(ticket)
    start = time.perf_counter()
    metric_name, val = validation(cfg, ticket, eval_loader)
    seconds["eval"] = time.perf_counter() - start
    bird_step = state.early_bird_step if state.converged else None
    info = {"flow": asdict(cfg), "metric": metric_name, "val_metric": val, "converged": state.converged,
            "early_bird_step": bird_step, "relative_cost": cost.flops / budget,
            "masks": {"heads": state.head_masks, "ffn": state.ffn_masks}, "mask_history": state.mask_history}
    if ticket_dir is not None and reporter.rank == 0:
        save_ticket(ticket, tokenizer, ticket_dir, info, overwrite=True)
    send({"phase": "done", "step": base + tuned.steps, "ticket_step": tuned.steps, "converged": state.converged,
          "early_bird": state.converged, "early_bird_step": -1 if bird_step is None else bird_step,
          "search_steps": state.steps, "done": True}, checkpoint_dir=_finished_checkpoint(reporter))
    return FlowResult(val, metric_name, state.converged, bird_step, state.steps, tuned.steps, cost.flops / budget,
                      seconds, ticket_dir, history)


def _search_phase(cfg: FlowConfig, model: nn.Module, train_loader, reporter: Reporter, cost: CostMeter,
                  send) -> tuple[SearchState, nn.Module | None]:
    """Slimming coefficients under L1, a mask every mask_interval steps, stop at the early bird (or the
    budget); returns what was found and the untrained ticket (None: unconverged and cfg says stop)."""
    pretrained = snapshot(model)  # EarlyBERT rewinds the ticket to these weights
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
        send({"phase": "search", "step": step, "loss": logs["loss"], "mask_distance": d.get("distance", 1.0),
              "head_distance": d.get("head_distance", 1.0), "ffn_distance": d.get("ffn_distance", 1.0),
              "early_bird": detector.found, "done": False})

    callbacks = [slimming.SlimmingCallback(cfg.lambda_head, cfg.lambda_ffn), cost]
    if cost.dropper is not None:
        callbacks.append(pld_mod.PLDCallback(cost.dropper))
    callbacks += [bird, Every([cfg.mask_interval], search_report)]
    # the search phase is the start of a fine-tuning run: its lr follows that run's schedule, so the
    # masks cannot "converge" just because the lr decayed to zero at the search budget
    search_cfg = TrainConfig(lr=cfg.lr, coef_lr=cfg.coef_lr, max_steps=cfg.search_max_steps, seed=cfg.seed,
                             schedule_steps=cfg.search_max_steps + cfg.ticket_steps,
                             warmup_ratio=cfg.warmup_ratio, progress=False, precision=cfg.precision)
    search = train(wrapped, train_loader, search_cfg, callbacks)
    pld_mod.detach(model)
    head_masks, ffn_masks = draw_masks(*slimming.coefficients(model), masks_cfg)
    state = SearchState(converged=detector.found, early_bird_step=detector.found_at_step, steps=search.steps,
                        flops=cost.flops, seconds=search.seconds,
                        head_masks=[m.tolist() for m in head_masks], ffn_masks=[m.tolist() for m in ffn_masks],
                        mask_history=bird.history)
    if not state.converged and cfg.unconverged == "stop":
        return state, None
    return state, make_ticket(pretrained, model, head_masks, ffn_masks, rewind=cfg.rewind)


def _restore(reporter: Reporter) -> tuple[SearchState, nn.Module] | None:
    """The search phase's result from the run's latest checkpoint (a restarted Ray Train worker)."""
    find = getattr(reporter, "checkpoint", None)
    directory = find() if find is not None else None
    return search_state.load(directory) if directory is not None else None


def _checkpoint(reporter: Reporter, state: SearchState, ticket: nn.Module, tokenizer, send) -> None:
    """Report the start of the ticket phase with a checkpoint of the search's result (rank 0 writes it;
    every rank reports)."""
    if not hasattr(reporter, "checkpoint_dir"):  # a reporter without checkpoints (LocalReporter)
        return
    directory = _new_checkpoint_dir(reporter)
    if directory is not None:
        search_state.save(state, ticket, tokenizer, directory)
    send({"phase": "ticket", "step": state.steps, "early_bird": state.converged, "done": False},
         checkpoint_dir=directory)  # the ticket phase's first report: its untrained ticket


def _finished_checkpoint(reporter: Reporter) -> str | None:
    """A small marker checkpoint for the last report: Ray keeps one checkpoint per run, so the search
    checkpoint (an untrained ticket, tens of MB per trial) goes once the trial has its trained ticket."""
    directory = _new_checkpoint_dir(reporter)
    if directory is not None:
        with open(os.path.join(directory, "finished.json"), "w") as f:
            f.write('{"finished": true}\n')
    return directory


def _new_checkpoint_dir(reporter: Reporter) -> str | None:
    """A fresh folder for a checkpoint on rank 0 of a reporter that takes checkpoints; else None."""
    make_dir = getattr(reporter, "checkpoint_dir", None)
    return make_dir() if make_dir is not None and reporter.rank == 0 else None


def _reseed(loader: Any, seed: int) -> None:
    generator = getattr(loader, "generator", None)
    if isinstance(generator, torch.Generator):
        generator.manual_seed(seed)


def validation_name(cfg: FlowConfig) -> str:
    return "perplexity" if cfg.task in MLM_TASKS else TASKS[cfg.task].main_metric
