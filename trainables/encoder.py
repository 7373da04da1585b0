"""The BERT layer stack that tickettune trains: prunable, slimmable, droppable.

HF's BertEncoder fixes one head count for every layer and always runs every layer. A ticket needs
per-layer widths, EarlyBERT needs a scalar per head and per FFN neuron inside the layer, and PLD needs
to skip whole layers. `TicketEncoder` replaces `model.bert.encoder` and *reuses HF's submodules*,
so parameter names (``bert.encoder.layer.3.attention.self.query.weight``) stay those of HF
checkpoints and pre-trained weights load unchanged.
"""
from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPastAndCrossAttentions


class LayerDropper(Protocol):
    """Decides, for one training forward pass, which layers run and their keep probabilities."""

    def sample(self, num_layers: int) -> list[tuple[bool, float]]: ...


class TicketLayer(nn.Module):
    """One transformer block with its own head count and FFN width.

    `head_coef` / `ffn_coef` (EarlyBERT slimming coefficients) are None unless attached; when set they
    scale each head's context vector and each FFN activation.
    """

    def __init__(self, hf_layer: nn.Module, num_heads: int, head_dim: int, pre_ln: bool):
        super().__init__()
        self.attention = hf_layer.attention
        self.intermediate = hf_layer.intermediate
        self.output = hf_layer.output
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.pre_ln = pre_ln
        self.head_coef: nn.Parameter | None = None
        self.ffn_coef: nn.Parameter | None = None

    @property
    def ffn_width(self) -> int:
        return self.intermediate.dense.out_features

    def attention_branch(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        att = self.attention.self
        b, t, _ = x.shape
        q = att.query(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        k = att.key(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        v = att.value(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        p = att.dropout.p if self.training else 0.0
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # (b, h, t, d)
        if self.head_coef is not None:
            ctx = ctx * self.head_coef.to(ctx.dtype).view(1, -1, 1, 1)  # fp32 parameter, autocast dtype
        ctx = ctx.transpose(1, 2).reshape(b, t, self.num_heads * self.head_dim)
        out = self.attention.output
        return out.dropout(out.dense(ctx))

    def ffn_branch(self, x: torch.Tensor) -> torch.Tensor:
        h = self.intermediate.intermediate_act_fn(self.intermediate.dense(x))
        if self.ffn_coef is not None:
            h = h * self.ffn_coef.to(h.dtype)
        return self.output.dropout(self.output.dense(h))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, scale: float = 1.0) -> torch.Tensor:
        ln_att, ln_ffn = self.attention.output.LayerNorm, self.output.LayerNorm
        if self.pre_ln:  # x + f(LN(x)): the residual stream is never normalised inside the stack
            x = x + self.attention_branch(ln_att(x), mask) * scale
            return x + self.ffn_branch(ln_ffn(x)) * scale
        x = ln_att(x + self.attention_branch(x, mask) * scale)
        return ln_ffn(x + self.ffn_branch(x) * scale)


class TicketEncoder(nn.Module):
    """Drop-in for BertEncoder; `layer_drop` (PLD) is consulted only in training mode."""

    def __init__(self, layers: list[TicketLayer], hidden_size: int, pre_ln: bool, eps: float):
        super().__init__()
        self.layer = nn.ModuleList(layers)
        self.pre_ln = pre_ln
        # pre-LN leaves the residual stream unnormalised: one LayerNorm after the stack
        self.final_layer_norm = nn.LayerNorm(hidden_size, eps=eps) if pre_ln else None
        self.layer_drop: LayerDropper | None = None

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                **_: object) -> BaseModelOutputWithPastAndCrossAttentions:
        mask = _sdpa_mask(attention_mask, hidden_states.dtype)
        gates = None
        if self.training and self.layer_drop is not None:
            gates = self.layer_drop.sample(len(self.layer))
        for i, layer in enumerate(self.layer):
            if gates is None:
                hidden_states = layer(hidden_states, mask)
                continue
            keep, p = gates[i]
            if keep:  # a dropped layer is the identity: no forward, no backward
                hidden_states = layer(hidden_states, mask, scale=1.0 / p)
        if self.final_layer_norm is not None:
            hidden_states = self.final_layer_norm(hidden_states)
        return BaseModelOutputWithPastAndCrossAttentions(last_hidden_state=hidden_states)


def _sdpa_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """HF hands the encoder None, a 4-D bool mask (sdpa) or a 4-D additive float mask (eager)."""
    if mask is None or mask.dtype == torch.bool or mask.is_floating_point():
        return mask if mask is None or mask.dtype == torch.bool else mask.to(dtype)
    return mask.bool()


def install(model: nn.Module, heads_per_layer: list[int] | None = None, pre_ln: bool = False) -> nn.Module:
    """Replace `model.bert.encoder` (in place) by a TicketEncoder over the same weights.

    `heads_per_layer` describes layers whose Q/K/V have already been sliced; by default every layer
    has the config's head count.
    """
    bert = model.bert if hasattr(model, "bert") else model
    config = bert.config
    if isinstance(bert.encoder, TicketEncoder):
        return model
    n = config.num_hidden_layers
    head_dim = config.hidden_size // config.num_attention_heads
    heads = heads_per_layer or [config.num_attention_heads] * n
    if len(heads) != n:
        raise ValueError(f"heads_per_layer has {len(heads)} entries for {n} layers: {heads}")
    layers = [TicketLayer(hf, h, head_dim, pre_ln) for hf, h in zip(bert.encoder.layer, heads)]
    bert.encoder = TicketEncoder(layers, config.hidden_size, pre_ln, config.layer_norm_eps)
    return model


def encoder_of(model: nn.Module) -> TicketEncoder:
    bert = model.bert if hasattr(model, "bert") else model
    enc = bert.encoder
    if not isinstance(enc, TicketEncoder):
        raise TypeError("model has no TicketEncoder: build it with tickettune.trainables.model")
    return enc
