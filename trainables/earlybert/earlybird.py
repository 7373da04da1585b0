"""Early-Bird detection of the EarlyBERT ticket: stop slimming once the drawn masks stop changing.

EarlyBERT's reference code draws its masks at a fixed step; the Early-Bird paper (You et al.) instead
keeps a FIFO of the last K masks and declares the ticket found when the newest mask is within ε
(normalised Hamming distance) of each of the K−1 older ones (K = 5, ε = 0.1 there, one mask per epoch).
Here a mask is drawn every `mask_interval` optimizer steps.

The mask compared is the concatenation of all head masks and all FFN masks (one binary vector over every
prunable unit, as in Early-Bird's channel vector); FFN neurons therefore dominate the combined distance.
The heads-only and FFN-only distances are reported next to it but do not decide.

Data parallelism: the masks come from the slimming coefficients, which are identical on every DDP rank
(DDP averages the gradients, every rank applies the same optimizer step to the same values), so every
rank reaches the same decision at the same step. The `agree` hook makes that a guarantee rather than an
assumption (float non-determinism, a rank that diverged): the Ray trainable passes a rank-0 broadcast,
and every rank stops at the same step.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from ..training.callbacks import Callback
from .masks import MaskConfig, masks_from_model


def _flat(masks: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    if isinstance(masks, torch.Tensor):
        return masks.detach().reshape(-1).bool().cpu()
    if len(masks) == 0:
        return torch.zeros(0, dtype=torch.bool)
    return torch.cat([torch.as_tensor(m).detach().reshape(-1).bool().cpu() for m in masks])


def hamming(a: torch.Tensor | Sequence[torch.Tensor], b: torch.Tensor | Sequence[torch.Tensor]) -> float:
    """Normalised Hamming distance 1 − equal/N between two masks (a tensor or a list of per-layer ones,
    concatenated). 0 = identical, 1 = complementary."""
    if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
        shapes_a = [tuple(torch.as_tensor(m).shape) for m in a]
        shapes_b = [tuple(torch.as_tensor(m).shape) for m in b]
        if shapes_a != shapes_b:
            raise ValueError(f"masks differ in layout: {shapes_a} vs {shapes_b}")
    fa, fb = _flat(a), _flat(b)
    if fa.numel() != fb.numel():
        raise ValueError(f"masks have {fa.numel()} and {fb.numel()} entries")
    if fa.numel() == 0:
        raise ValueError("empty masks have no Hamming distance")
    return 1.0 - (fa == fb).sum().item() / fa.numel()


@dataclass
class Decision:
    """What one `EarlyBirdDetector.update` saw.

    `distances` / `head_distances` / `ffn_distances` hold the newest mask's distance to each older mask
    in the FIFO, oldest first (empty on the first update); `distance`, `head_distance`, `ffn_distance` are
    their maxima (None while there is no older mask). `found` is True when the FIFO is full and every
    combined distance is <= eps.
    """

    step: int
    distances: list[float]
    head_distances: list[float]
    ffn_distances: list[float]
    full: bool
    found: bool

    @property
    def distance(self) -> float | None:
        return max(self.distances) if self.distances else None

    @property
    def head_distance(self) -> float | None:
        return max(self.head_distances) if self.head_distances else None

    @property
    def ffn_distance(self) -> float | None:
        return max(self.ffn_distances) if self.ffn_distances else None

    def to_dict(self) -> dict:
        return {
            "step": self.step,
            "distance": self.distance,
            "head_distance": self.head_distance,
            "ffn_distance": self.ffn_distance,
            "full": self.full,
            "found": self.found,
        }


class EarlyBirdDetector:
    """FIFO of the last `window` (K) masks; found when the newest is within `eps` of each of the K−1 older.

    Once found, `found_at_step` keeps the step of the first such update (later updates still report
    their distances).
    """

    def __init__(self, window: int = 5, eps: float = 0.1):
        if isinstance(window, bool) or not isinstance(window, int) or window < 2:
            raise ValueError(f"window (K) must be an integer >= 2, got {window!r}")
        if not 0.0 <= float(eps) <= 1.0:
            raise ValueError(f"eps must be in [0, 1], got {eps!r}")
        self.window = window
        self.eps = float(eps)
        self.fifo: deque[tuple[list[torch.Tensor], list[torch.Tensor]]] = deque(maxlen=window)
        self.found_at_step: int | None = None
        self.updates = 0

    @property
    def found(self) -> bool:
        return self.found_at_step is not None

    @property
    def newest(self) -> tuple[list[torch.Tensor], list[torch.Tensor]] | None:
        return self.fifo[-1] if self.fifo else None

    def update(
        self, head_masks: Sequence[torch.Tensor], ffn_masks: Sequence[torch.Tensor], step: int | None = None
    ) -> Decision:
        """Push the newest masks; `step` defaults to the number of updates so far (1-based)."""
        self.updates += 1
        step = self.updates if step is None else int(step)
        heads = [torch.as_tensor(m).detach().bool().cpu().clone() for m in head_masks]
        ffn = [torch.as_tensor(m).detach().bool().cpu().clone() for m in ffn_masks]
        both = heads + ffn
        dist, dh, df = [], [], []
        # the K-1 masks that stay in the FIFO with the newest, oldest first
        for old_h, old_f in list(self.fifo)[max(0, len(self.fifo) - (self.window - 1)) :]:
            dist.append(hamming(old_h + old_f, both))
            dh.append(hamming(old_h, heads))
            df.append(hamming(old_f, ffn))
        self.fifo.append((heads, ffn))
        full = len(self.fifo) == self.window
        found = full and all(d <= self.eps for d in dist)
        if found and self.found_at_step is None:
            self.found_at_step = step
        return Decision(step, dist, dh, df, full, found)

    def config(self) -> dict:
        return {"window": self.window, "eps": self.eps}


def _identity(found: bool) -> bool:
    return found


class EarlyBirdCallback(Callback):
    """`train.train` hook: every `interval` optimizer steps, draw masks from the current coefficients
    (masks.py), update the detector, record the step and its distances in `history`; `after_step` returns
    True (stop) once the early bird is found.

    `agree(local_found) -> bool` turns the local decision into the one every data-parallel rank acts on;
    it is called on every rank at every mask step (found or not), so a collective inside it (the Ray
    trainable's rank-0 broadcast) is matched on all ranks. Identity by default (one process).
    `stop=False` keeps drawing and recording (fixed-budget runs, as the reference code) but never stops;
    `agree` is then never called, on any rank.

    The model is `model=` when given; otherwise the one the loop last handed to `extra_loss` (train.train
    does so every optimizer step, unwrapped from DDP). `masks` holds the newest masks drawn (the ticket's,
    after a stop), `found_at_step` the step at which the detector first found the ticket.
    At a mask step the step's `logs` gain mask_distance / head_distance / ffn_distance (1.0 until a second
    mask exists: there is nothing to agree with yet) and early_bird.
    """

    def __init__(
        self,
        mask_config: MaskConfig | None = None,
        detector: EarlyBirdDetector | None = None,
        interval: int = 100,
        agree: Callable[[bool], bool] | None = None,
        stop: bool = True,
        model: nn.Module | None = None,
    ):
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise ValueError(f"interval (mask_interval) must be an integer >= 1, got {interval!r}")
        self.mask_config = mask_config or MaskConfig()
        self.detector = detector or EarlyBirdDetector()
        self.interval = interval
        self.agree = agree or _identity
        self.stop = stop
        self.model = model
        self._seen: nn.Module | None = None
        self.history: list[dict] = []
        self.stopped_at_step: int | None = None

    @property
    def found_at_step(self) -> int | None:
        return self.detector.found_at_step

    @property
    def masks(self) -> tuple[list[torch.Tensor], list[torch.Tensor]] | None:
        return self.detector.newest

    def extra_loss(self, model: nn.Module) -> None:
        self._seen = model
        return None

    def after_step(self, step: int, logs: dict) -> bool:
        if step % self.interval:
            return False
        model = self.model if self.model is not None else self._seen
        if model is None:
            raise RuntimeError("EarlyBirdCallback has no model: pass model=, or run it in train.train")
        heads, ffn = masks_from_model(model, self.mask_config)
        decision = self.detector.update(heads, ffn, step=step)
        stop = bool(self.agree(decision.found)) if self.stop else False
        entry = {**decision.to_dict(), "stop": stop}
        for key in ("distance", "head_distance", "ffn_distance"):
            entry[key] = 1.0 if entry[key] is None else entry[key]
        self.history.append(entry)
        logs.update(
            mask_distance=entry["distance"],
            head_distance=entry["head_distance"],
            ffn_distance=entry["ffn_distance"],
            early_bird=self.detector.found,
        )
        if stop and self.stopped_at_step is None:
            self.stopped_at_step = step
        return stop

    def report(self) -> dict:
        """Everything a ticket.json or a results table needs about the detection."""
        return {
            **self.detector.config(),
            "mask_interval": self.interval,
            "found_at_step": self.found_at_step,
            "stopped_at_step": self.stopped_at_step,
            "mask_config": self.mask_config.to_dict(),
            "history": list(self.history),
        }
