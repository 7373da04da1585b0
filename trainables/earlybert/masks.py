"""Drawing EarlyBERT masks (True = keep) from slimming coefficients.

Rules
-----
* The score of a head / neuron is |c|, the magnitude of its coefficient: a coefficient of -0.9 matters
  as much as +0.9 (the sign can be absorbed by the next weight matrix).
* `ratio` is the fraction to prune. Per-layer scope prunes floor(ratio·n_l) of each layer's n_l entries;
  global scope prunes floor(ratio·N) of all N entries, the smallest |c| over the whole model first, so
  layers end up with uneven widths. (floor, with a 1e-9 tolerance for float error: 1/3 of 12 heads is
  exactly 4; 0.4 of 1536 neurons prunes 614.)
* Ties are broken by position, deterministically: among equal |c| the entry with the lower index in
  its layer is kept; with global scope, among equal |c| and equal index, the lower layer is kept. So
  all-equal coefficients (every coefficient still at its initial 1.0) keep the first entries of each
  layer and prune the last ones, exactly the requested number, and a global draw over all-equal
  coefficients takes them round-robin from the layers' ends (even widths), not all from the last layer.
* Every layer keeps at least `min_heads` heads and `min_ffn` FFN neurons (capped at the layer's width),
  with global scope too. The minimum wins over the ratio: a global draw skips candidates of a layer that
  is at its minimum and takes the next-smallest |c| elsewhere; when no candidate is left the draw prunes
  fewer than asked.
* `ffn_multiple=q` rounds each layer's kept FFN width to the nearest multiple of q (a tie goes up:
  keep more), never below the layer's minimum (then the smallest multiple >= the minimum) and never above
  the layer width (then the largest multiple <= the width); a layer with no multiple of q in
  [minimum, width] keeps its unrounded count, and a layer that keeps every neuron stays whole (ratio 0
  never prunes). The kept neurons are then the layer's top |c|, same ties.
  With global scope the total therefore moves a little off floor(ratio·N).

What the reference code (VITA-Group/EarlyBERT) did wrong, and this module does not do: it took a
quantile of the *signed* coefficients as a threshold and pruned every entry at or below it. Large negative
coefficients were thus pruned first although they are as important as large positive ones, and every
entry tied with the threshold was pruned: when all coefficients are equal (e.g. still at their initial
1.0, or driven to the same value) the quantile equals that value and the whole layer (or model) is
pruned. Its global FFN draw also had no per-layer minimum, so a layer could lose every neuron.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import torch
from torch import nn

SCOPES = ("layer", "global")


@dataclass
class MaskConfig:
    """How many heads / FFN neurons to prune, and where. Ratios are fractions pruned, in [0, 1)."""

    head_ratio: float = 1 / 3  # EarlyBERT: 4 of 12 heads in every layer
    ffn_ratio: float = 0.4  # EarlyBERT: 40% of FFN neurons, over the whole model
    head_scope: str = "layer"
    ffn_scope: str = "global"
    min_heads: int = 1  # per layer, also under global scope
    min_ffn: int = 8  # per layer, also under global scope
    ffn_multiple: int | None = None  # e.g. 8: kept FFN widths rounded to multiples of 8

    def __post_init__(self) -> None:
        for name in ("head_ratio", "ffn_ratio"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"MaskConfig.{name} must be a fraction in [0, 1), got {value!r}")
        for name in ("head_scope", "ffn_scope"):
            if getattr(self, name) not in SCOPES:
                raise ValueError(f"MaskConfig.{name} must be one of {SCOPES}, got {getattr(self, name)!r}")
        for name in ("min_heads", "min_ffn"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"MaskConfig.{name} must be an integer >= 1, got {value!r}")
        q = self.ffn_multiple
        if q is not None and (isinstance(q, bool) or not isinstance(q, int) or q < 1):
            raise ValueError(f"MaskConfig.ffn_multiple must be None or an integer >= 1, got {q!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def n_prune(ratio: float, n: int) -> int:
    return int(math.floor(ratio * n + 1e-9))


def _ranked(scores: torch.Tensor) -> torch.Tensor:
    """Indices from most to least important: |c| descending, ties by ascending index."""
    # stable sort on -score keeps equal scores in index order
    return torch.sort(-scores, stable=True).indices


def _round_width(k: int, q: int | None, lo: int, hi: int) -> int:
    if q is None or q == 1 or k == hi:
        return k
    # k lies in [lo, hi]; the multiples around it are the only candidates. If neither is in [lo, hi],
    # no multiple of q is (the one below is < lo <= k, the one above > hi >= k): keep k.
    multiples = [m for m in (q * (k // q), q * (k // q + 1)) if lo <= m <= hi]
    if not multiples:
        return k
    return min(multiples, key=lambda m: (abs(m - k), -m))  # nearest; a tie keeps more


def select(
    coefs: Sequence[torch.Tensor], ratio: float, scope: str, minimum: int, multiple: int | None = None
) -> list[torch.Tensor]:
    """Per-layer keep masks (bool, True = keep) for one kind of unit; see the module docstring."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"ratio must be a fraction in [0, 1), got {ratio!r}")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    if minimum < 1:
        raise ValueError(f"minimum must be >= 1, got {minimum}")
    scores = [torch.as_tensor(c).detach().reshape(-1).abs().float().cpu() for c in coefs]
    if not scores or any(s.numel() == 0 for s in scores):
        raise ValueError("need at least one layer, each with at least one coefficient")
    if any(not torch.isfinite(s).all() for s in scores):
        raise ValueError("coefficients contain NaN or inf: the run diverged, no mask can be drawn")
    widths = [s.numel() for s in scores]
    mins = [min(minimum, n) for n in widths]

    if scope == "layer":
        keep_counts = [max(n - n_prune(ratio, n), m) for n, m in zip(widths, mins)]
    else:
        flat = torch.cat(scores)
        layer_of = torch.repeat_interleave(torch.arange(len(widths)), torch.tensor(widths))
        index = torch.cat([torch.arange(n) for n in widths])
        # least important first: |c| ascending, then index in layer descending, then layer descending
        # (successive stable sorts, least significant key first)
        order = torch.argsort(layer_of, descending=True, stable=True)
        order = order[torch.argsort(index[order], descending=True, stable=True)]
        order = order[torch.argsort(flat[order], stable=True)]
        # a candidate may go only while its layer stays at or above its minimum: it is eligible if fewer
        # than (width - minimum) entries of its layer come before it in the order
        lo = layer_of[order]
        rank_in_layer = torch.zeros_like(lo)
        for l in range(len(widths)):
            sel = lo == l
            rank_in_layer[sel] = torch.arange(int(sel.sum()))
        caps = torch.tensor([n - m for n, m in zip(widths, mins)])
        eligible = order[rank_in_layer < caps[lo]]
        pruned = eligible[: n_prune(ratio, flat.numel())]
        counts = torch.bincount(layer_of[pruned], minlength=len(widths)).tolist()
        keep_counts = [n - c for n, c in zip(widths, counts)]

    keep_counts = [_round_width(k, multiple, m, n) for k, m, n in zip(keep_counts, mins, widths)]
    masks = []
    for s, k in zip(scores, keep_counts):
        mask = torch.zeros(s.numel(), dtype=torch.bool)
        mask[_ranked(s)[:k]] = True
        masks.append(mask)
    return masks


def draw_masks(
    head_coefs: Sequence[torch.Tensor], ffn_coefs: Sequence[torch.Tensor], cfg: MaskConfig | None = None
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(head masks, FFN masks), one bool tensor per layer on the CPU (True = keep)."""
    cfg = cfg or MaskConfig()
    if len(head_coefs) != len(ffn_coefs):
        raise ValueError(f"{len(head_coefs)} layers of head coefficients but {len(ffn_coefs)} of FFN ones")
    heads = select(head_coefs, cfg.head_ratio, cfg.head_scope, cfg.min_heads)
    ffn = select(ffn_coefs, cfg.ffn_ratio, cfg.ffn_scope, cfg.min_ffn, cfg.ffn_multiple)
    return heads, ffn


def masks_from_model(model: nn.Module, cfg: MaskConfig | None = None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Masks from the model's attached slimming coefficients."""
    from .slimming import coefficients

    heads, ffns = coefficients(model)
    return draw_masks(heads, ffns, cfg)


def kept_counts(masks: Sequence[torch.Tensor]) -> list[int]:
    return [int(m.sum()) for m in masks]
