"""Analytic training FLOPs: the physical limit that pruning and layer dropping can reach.

Counts every matmul (2 FLOPs per multiply-add); backward costs twice the forward, so a training step
is 3x forward. Embedding lookups, LayerNorms, softmax and dropout are not matmuls and are not counted:
they are what keeps measured speed-ups short of these ratios.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Shape:
    hidden: int
    head_dim: int
    heads_per_layer: tuple[int, ...]
    ffn_per_layer: tuple[int, ...]
    num_labels: int = 2
    vocab: int = 30522
    mlm: bool = False
    gated_ffn: bool = False  # a gated FFN's input projection is twice as wide (value and gate)


def layer_forward_flops(shape: Shape, heads: int, ffn: int, seq: int) -> int:
    h, a = shape.hidden, heads * shape.head_dim
    qkv = 2 * seq * h * 3 * a
    scores_and_context = 2 * 2 * seq * seq * a
    out = 2 * seq * a * h
    ffn_flops = (3 if shape.gated_ffn else 2) * 2 * seq * h * ffn
    return qkv + scores_and_context + out + ffn_flops


def head_forward_flops(shape: Shape, seq: int, predicted: float) -> float:
    """Classification: pooler + classifier on [CLS]. MLM: transform + decoder at `predicted` positions."""
    h = shape.hidden
    if shape.mlm:
        return predicted * (2 * h * h + 2 * h * shape.vocab)
    return 2 * h * h + 2 * h * shape.num_labels


def train_flops_per_sequence(
    shape: Shape, seq: int, kept_layers: list[bool] | None = None, mlm_fraction: float = 0.15
) -> float:
    """Forward + backward FLOPs for one sequence; `kept_layers` masks out layers PLD skipped."""
    layers = zip(shape.heads_per_layer, shape.ffn_per_layer)
    enc = sum(
        layer_forward_flops(shape, hd, f, seq)
        for i, (hd, f) in enumerate(layers)
        if kept_layers is None or kept_layers[i]
    )
    return 3 * (enc + head_forward_flops(shape, seq, mlm_fraction * seq))


def shape_of(model, num_labels: int = 2) -> Shape:
    from .encoder import encoder_of  # local: keeps this module importable without transformers

    m = model.module if hasattr(model, "module") else model  # DDP
    blocks = encoder_of(m).blocks
    cfg = m.config
    return Shape(
        hidden=cfg.hidden_size,
        head_dim=blocks[0].head_dim,
        heads_per_layer=tuple(l.num_heads for l in blocks),
        ffn_per_layer=tuple(l.ffn_width for l in blocks),
        num_labels=getattr(cfg, "num_labels", num_labels),
        vocab=cfg.vocab_size,
        mlm=type(m).__name__.endswith("ForMaskedLM"),
        gated_ffn=blocks[0].spec.gated,
    )
