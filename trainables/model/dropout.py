"""One dropout probability for the whole model: `dropout: float | null` of TrainConfig / FlowConfig.

None keeps what the model's config says (BERT: hidden_dropout_prob / attention_probs_dropout_prob 0.1;
ModernBERT: embedding_dropout, attention_dropout, mlp_dropout, classifier_dropout, 0 by default). A number
p sets every dropout of the model to p: the embeddings', each block's attention-probability dropout
(a `nn.Dropout`'s p, or ModernBERT's `attention_dropout` float, which SDPA reads), the dropout after the
attention output and in the FFN (families' BlockSpec), and the task head's. The model's config is left as
it was: a saved ticket still describes the checkpoint it came from.

p = 0 removes the work, not only the effect: `F.dropout(x, 0, training=True)` returns its input without
drawing a mask (ATen's `dropout` short-cuts p == 0; its fused CUDA kernel is taken only for 0 < p < 1),
and the attention passes ``dropout_p=0`` to SDPA, whose no-dropout kernels (flash / memory-efficient on
CPU and GPU) then apply. ModernBERT's blocks use `nn.Identity` where their config's p was 0: a p > 0 puts
an `nn.Dropout` there, so the number means the same in every family.
"""

from __future__ import annotations

import math

from torch import nn

from .encoder import encoder_of, get_path, set_path


def problems(p: float | None, name: str = "dropout") -> list[str]:
    if p is None:
        return []
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p) or not 0 <= p < 1:
        return [f"{name}={p!r} must be a number in [0, 1) (or null: the model's own config)"]
    return []


def set_dropout(model: nn.Module, p: float | None) -> nn.Module:
    """Every dropout of `model` to `p` (in place; None: leave the model as it is)."""
    bad = problems(p)
    if bad:
        raise ValueError(bad[0])
    if p is None:
        return model
    p = float(p)
    for layer in encoder_of(model).blocks:
        spec = layer.spec
        for path in (spec.o_drop, spec.ffn_drop):
            if path and p > 0 and isinstance(get_path(layer, path), nn.Identity):
                set_path(layer, path, nn.Dropout(p))
        if spec.attn_p:  # a float attribute (ModernBERT), read by TicketLayer at each forward
            parent, _, attr = spec.attn_p.rpartition(".")
            setattr(get_path(layer, parent) if parent else layer, attr, p)
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = p
    return model


def dropout_ps(model: nn.Module) -> set[float]:
    """Every dropout probability the model uses in training (nn.Dropout modules and attention p's)."""
    ps = {float(m.p) for m in model.modules() if isinstance(m, nn.Dropout)}
    return ps | {layer.spec.attention_p(layer) for layer in encoder_of(model).blocks}
