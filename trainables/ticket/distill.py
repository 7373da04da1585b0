"""Distillation in a trial: who writes the teacher cache, when a ticket phase reads it, and what the trial records.

* In a search the dense baseline trial (trial 0) writes ``teacher_cache`` after its training (the searcher
  points every trial of a distilling search at ``<experiment>/teacher_cache``); its cost (seconds and a forward
  pass's FLOPs per row) is counted once, in the baseline's figures.
* With ``teacher`` (a fine-tuned model or ticket folder: `tickettune earlybert --teacher`), the trial writes the
  cache from that model before it trains, and counts its cost in its own figures.
* A ticket phase with ``distill_weight`` > 0 reads the cache when it starts (the ranks agree on rank 0's answer);
  absent, the phase trains without it, and the trial's reports and ticket.json say so (`Teacher`). A cache made
  for other data, tokenizer, max_length, task or labels is refused with the differences named, and an existing
  cache is never replaced.
No teacher model runs during a ticket step: the term is a loss callback on cached logits (training/distill_loss.py).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn

from ..model.build import load_model
from ..model.flops import shape_of, train_flops_per_sequence
from ..tasks import DataArgs
from ..tasks.example_index import with_example_index
from ..training.device import place
from ..training.distill_loss import DistillCallback
from . import teacher_cache
from .teacher_cache import tokenizer_fingerprint


@dataclass(frozen=True)
class Distill:
    """A run's distillation settings (FlowConfig's distill_* / teacher* fields, or `tickettune finetune`'s flags)."""

    weight: float = 0.0
    temperature: float = 2.0
    teacher: str | None = None  # a model to cache the logits of before training
    cache: str | None = None

    @classmethod
    def of(cls, cfg) -> "Distill":
        return cls(cfg.distill_weight, cfg.distill_temperature, cfg.teacher, cfg.teacher_cache)


@dataclass
class Teacher:
    """What a run records about its teacher (reports, FlowResult, ticket.json's ``distill``)."""

    weight: float
    temperature: float
    cache: str | None
    used: bool = False  # the ticket phase trained with the term
    why: str = ""  # why not, when not used
    written: bool = False  # this run wrote the cache
    seconds: float = 0.0  # what writing it took this run (its training time includes them)
    flops: float = 0.0  # and its forward passes (its relative_cost includes them)

    @classmethod
    def of(cls, d: Distill, cache: str | None = None) -> "Teacher":
        return cls(d.weight, d.temperature, cache or d.cache)

    def to_dict(self) -> dict:
        return asdict(self)


def wanted(task, tokenizer, loader, data: DataArgs) -> dict:
    """The fingerprint of this run's training rows (`loader` as the task built it, before data parallelism)."""
    return teacher_cache.fingerprint(
        task.info(), tokenizer, loader.dataset, data.max_length, data.max_train_samples, data.seed
    )


def check(d: Distill, task, world_size: int = 1) -> None:
    """Refused before compute: distillation on a head with no logits to match, a teacher whose cache the
    workers of a data-parallel trial could not share."""
    if (d.weight > 0 or d.teacher) and task.head == "mlm":
        raise ValueError(f"distill_weight={d.weight} / teacher={d.teacher!r}: MLM tasks are not distilled")
    if d.teacher and d.cache is None and world_size > 1:
        raise ValueError(f"teacher={d.teacher!r} with {world_size} workers: set teacher_cache (a folder all see)")


def write(d: Distill, model: nn.Module, tokenizer, task, loader, data: DataArgs, precision: str) -> Teacher:
    """`model`'s logits for every row of `loader`'s dataset into `d.cache`, unless a cache that fits is there (one
    that does not is refused). Two writers racing: the second keeps the first's cache (its cost still counted)."""
    note, path = Teacher.of(d), d.cache
    made_for = wanted(task, tokenizer, loader, data)
    if not Path(path).exists():
        start = time.perf_counter()
        try:
            teacher_cache.write(path, model, loader, made_for, precision)
            note.written = True
        except FileExistsError:
            if not Path(path).exists():
                raise
        note.seconds = time.perf_counter() - start
        note.flops = forward_flops(model, made_for["rows"], data.max_length)
    if not note.written:
        teacher_cache.check(path, made_for)  # refused (TeacherCacheMismatch) when made for anything else
    return note


def check_present(d: Distill, task, tokenizer, loader, data: DataArgs) -> None:
    """A cache already there when a run that reads or writes it starts must be for its rows: refused before any
    compute."""
    if d.cache is not None and Path(d.cache).exists():
        teacher_cache.check(d.cache, wanted(task, tokenizer, loader, data))


def forward_flops(model: nn.Module, rows: int, max_length: int) -> float:
    """A forward pass over `rows` sequences: a third of a training step's FLOPs (model/flops.py)."""
    return rows * train_flops_per_sequence(shape_of(model), max_length) / 3


def write_from_teacher(
    d: Distill, task, tokenizer, loader, data: DataArgs, precision: str, device: torch.device, rank: int = 0
) -> tuple[Teacher, str | None]:
    """`d.teacher`'s cache, written before training (rank 0, the teacher on `device`). Returns the note (its
    `cache` the folder) and a temporary folder to `remove` at the end (where `d.cache` is unset: one process)."""
    tmp = None
    if d.cache is None:
        tmp = tempfile.mkdtemp(prefix="tickettune-teacher-")
        d = replace(d, cache=str(Path(tmp) / "teacher_cache"))
    if rank != 0 or Path(d.cache).exists():  # a cache there already: checked, and no teacher runs
        if rank == 0:
            teacher_cache.check(d.cache, wanted(task, tokenizer, loader, data))
        return Teacher.of(d), tmp
    try:
        model, teacher_tokenizer = load_model(d.teacher, head=task.head, num_labels=task.num_labels)
        ours, theirs = tokenizer_fingerprint(tokenizer), tokenizer_fingerprint(teacher_tokenizer)
        if ours["vocab_sha"] != theirs["vocab_sha"] or ours["class"] != theirs["class"]:
            raise ValueError(
                f"teacher={d.teacher!r}: its tokenizer ({theirs}) is not the student's ({ours}); the cache holds "
                "the teacher's outputs on the student's tokens"
            )
        return write(d, model.to(device), tokenizer, task, loader, data, precision), tmp
    except BaseException:
        remove(tmp)
        raise


def ticket_callback(d: Distill, task, tokenizer, loader, data: DataArgs, agree=bool):
    """At the start of a ticket phase (or a distilled fine-tuning run): (the callback, the note); (None, note) when
    the cache is not there; (None, None) when the run does not distill. `agree`: every rank takes rank 0's answer."""
    if not d.weight > 0:
        return None, None
    note = Teacher.of(d)
    if d.cache is None:
        note.why = "no teacher_cache: nothing to distill from (a search with a baseline sets it)"
        return None, note
    if not agree(Path(d.cache).exists()):
        note.why = "the teacher cache was not written yet when the ticket phase started"
        return None, note
    teacher = teacher_cache.load(d.cache, wanted(task, tokenizer, loader, data))
    note.used = True
    return DistillCallback(teacher, d.weight, d.temperature), note


def distilled_loader(d: Distill, task, tokenizer, loader, data: DataArgs, precision: str, device=None):
    """A distilled fine-tuning run (`tickettune finetune --teacher`): (`loader` indexed by row, [the callback],
    the note). The teacher's cache is written first (a temporary one is gone once read: the logits are in memory)."""
    device = device if device is not None else place("auto").device  # where `tickettune finetune` trains
    written, tmp = write_from_teacher(d, task, tokenizer, loader, data, precision, device)
    try:
        indexed = with_example_index(loader)
        callback, note = ticket_callback(replace(d, cache=written.cache), task, tokenizer, indexed, data)
    finally:
        remove(tmp)
    note.written, note.seconds, note.flops = written.written, written.seconds, written.flops
    note.cache = None if tmp else note.cache
    return indexed, [callback], note


def remove(tmp: str | None) -> None:
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)
