"""Distillation from cached teacher logits: a loss term the loop adds through a callback, no teacher in the step.

The teacher ran once, in eval mode, over every training row (ticket/teacher_cache.py wrote its outputs); a
step looks its batch's rows up by `example_index` and adds ``weight · KL(teacher/T ‖ student/T) · T²``
(Hinton et al.'s soft targets; T² keeps the gradient's scale as T changes) to the task's loss, or
``weight · MSE`` for a regression head. For extractive QA the start and end distributions over a window's
tokens are each distilled, over the window's own tokens only (padding is neither's), and averaged. The term is
zero when student and teacher agree. Tables stay where they were loaded until a batch's index arrives on another
device, then move there once: a step reads no value back to the host.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .callbacks import EXAMPLE_INDEX, Callback

KINDS = ("classification", "regression", "qa")


@dataclass
class TeacherLogits:
    """The teacher's outputs per training row. classification / regression: `tables["logits"]` (rows, labels).
    qa: `tables["start_logits"]` and `["end_logits"]` flat, row i's tokens at `offsets[i]:offsets[i+1]`."""

    kind: str
    tables: dict[str, torch.Tensor]
    offsets: torch.Tensor | None = None
    _moved: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"teacher logits of kind {self.kind!r}: expected one of {KINDS}")
        if (self.kind == "qa") != (self.offsets is not None):
            raise ValueError("qa teacher logits need offsets (and only qa ones)")

    @property
    def rows(self) -> int:
        return len(self.offsets) - 1 if self.offsets is not None else len(self.tables["logits"])

    def _on(self, device: torch.device) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        key = str(device)
        if key not in self._moved:
            tables = {k: v.to(device) for k, v in self.tables.items()}
            self._moved[key] = (tables, None if self.offsets is None else self.offsets.to(device))
        return self._moved[key]

    def gather(self, index: torch.Tensor, width: int | None = None) -> dict[str, torch.Tensor]:
        """The rows `index` names, on its device: (batch, labels) logits, or (batch, width) start/end logits with
        -inf past each window's length plus `mask` (the window's own tokens)."""
        tables, offsets = self._on(index.device)
        index = index.long()
        if offsets is None:
            return {"logits": tables["logits"][index]}
        starts, lengths = offsets[index], offsets[index + 1] - offsets[index]
        positions = torch.arange(width, device=index.device)
        mask = positions < lengths[:, None]
        flat = starts[:, None] + torch.minimum(positions, (lengths - 1).clamp(min=0)[:, None])
        out = {k: tables[k][flat].masked_fill(~mask, float("-inf")) for k in ("start_logits", "end_logits")}
        return {**out, "mask": mask}


def kl_term(student: torch.Tensor, teacher: torch.Tensor, temperature: float, mask: torch.Tensor | None = None):
    """KL(softmax(teacher/T) ‖ softmax(student/T)) · T², averaged over rows; `mask` keeps positions of the last
    axis (the others take no probability on either side)."""
    s, t = student.float() / temperature, teacher.float() / temperature
    if mask is not None:
        s, t = s.masked_fill(~mask, float("-inf")), t.masked_fill(~mask, float("-inf"))
    log_s, log_t = F.log_softmax(s, dim=-1), F.log_softmax(t, dim=-1)
    pointwise = torch.where(torch.isfinite(log_t), log_t.exp() * (log_t - log_s), torch.zeros_like(log_t))
    return pointwise.sum(-1).mean() * temperature**2


def distill_loss(outputs, teacher: dict[str, torch.Tensor], kind: str, temperature: float) -> torch.Tensor:
    """The term for one micro-batch: `outputs` the student's (logits, or start/end logits), `teacher` what
    `TeacherLogits.gather` returned for its rows."""
    if kind == "regression":
        return F.mse_loss(outputs.logits.float().reshape(-1), teacher["logits"].float().reshape(-1))
    if kind == "classification":
        return kl_term(outputs.logits, teacher["logits"], temperature)
    mask = teacher["mask"]
    start = kl_term(outputs.start_logits, teacher["start_logits"], temperature, mask)
    end = kl_term(outputs.end_logits, teacher["end_logits"], temperature, mask)
    return (start + end) / 2


class DistillCallback(Callback):
    """Adds `weight` · the distillation term to every micro-batch's loss, from `teacher` (no model runs)."""

    def __init__(self, teacher: TeacherLogits, weight: float, temperature: float):
        if not weight > 0 or not temperature > 0:
            raise ValueError(f"distillation weight={weight!r} and temperature={temperature!r} must be > 0")
        self.teacher, self.weight, self.temperature = teacher, weight, temperature

    def batch_loss(self, outputs, batch: dict) -> torch.Tensor:
        index = batch.get(EXAMPLE_INDEX)
        if index is None:
            raise ValueError(
                f"distillation needs each training batch's {EXAMPLE_INDEX!r} (tasks/example_index.py "
                "with_example_index on the train loader)"
            )
        width = outputs.start_logits.shape[-1] if self.teacher.kind == "qa" else None
        term = distill_loss(outputs, self.teacher.gather(index, width), self.teacher.kind, self.temperature)
        return self.weight * term


def student_kind(model: nn.Module) -> str:
    """The distillation kind of a model's head (ForQuestionAnswering: qa; num_labels 1: regression)."""
    name = type(model.module if hasattr(model, "module") else model).__name__
    if name.endswith("ForQuestionAnswering"):
        return "qa"
    if name.endswith("ForSequenceClassification"):
        return "regression" if int(model.config.num_labels) == 1 else "classification"
    raise ValueError(f"distillation needs a classification, regression or QA head, not a {name}")
