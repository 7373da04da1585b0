"""The layer stack that tickettune trains: prunable, slimmable, droppable, for any supported family.

HF's encoders fix one head count for every layer and always run every layer. A ticket needs per-layer
widths, EarlyBERT needs a scalar per head and per FFN neuron inside the layer, and PLD needs to skip
whole layers. `TicketEncoder` replaces a model's encoder and `TicketLayer` wraps each HF block *reusing
its submodules under their own names*, so parameter names (``bert.encoder.layer.3.attention.self.query
.weight``, ``model.layers.2.attn.Wqkv.weight``) stay those of HF checkpoints and pre-trained weights
load unchanged. Where a block keeps its projections, norms and dropout is the family's business
(``families/``): this module asks its `BlockSpec` and never tests a module name.
"""

from __future__ import annotations

from functools import reduce
from typing import Callable, Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPastAndCrossAttentions


class LayerDropper(Protocol):
    """Decides, for one training forward pass, which layers run and their keep probabilities."""

    def sample(self, num_layers: int) -> list[tuple[bool, float]]: ...


def get_path(root: nn.Module, path: str) -> nn.Module:
    return reduce(getattr, path.split("."), root)


def set_path(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(get_path(root, parent) if parent else root, name, module)


class BlockSpec:
    """Where a family's transformer block keeps its parts (dotted paths inside the HF block).

    Either `q`/`k`/`v` (three projections) or `qkv` (one fused projection, rows [q | k | v], each
    head-major). `ffn_in` maps hidden -> FFN width, or, with `gated`, to twice the width (rows
    [value | gate], activation applied to the value half). `ffn_drop_before_out`: the FFN dropout acts on
    the activation (before `ffn_out`) rather than on the output. A path of None means the block has no
    such part (no dropout after the attention output, say).
    """

    q: str | None = None
    k: str | None = None
    v: str | None = None
    qkv: str | None = None
    o: str = ""
    o_drop: str | None = None
    attn_drop: str | None = None  # a Dropout whose p is the attention-probability dropout
    attn_p: str | None = None  # or: a float attribute holding it
    ffn_in: str = ""
    ffn_out: str = ""
    ffn_drop: str | None = None
    ffn_drop_before_out: bool = False
    act: str = ""
    gated: bool = False
    ln_att: str = ""
    ln_ffn: str = ""
    rotary: bool = False

    def __deepcopy__(self, memo: dict) -> "BlockSpec":  # stateless: copies of a model share it
        return self

    def attention_p(self, layer: nn.Module) -> float:
        if self.attn_drop is not None:
            return float(get_path(layer, self.attn_drop).p)
        return float(get_path(layer, self.attn_p)) if self.attn_p else 0.0

    def projections(self, layer: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.qkv is not None:
            return get_path(layer, self.qkv)(x).chunk(3, dim=-1)
        return get_path(layer, self.q)(x), get_path(layer, self.k)(x), get_path(layer, self.v)(x)

    def ffn_hidden(self, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        act = get_path(layer, self.act)
        h = get_path(layer, self.ffn_in)(x)
        if self.gated:
            value, gate = h.chunk(2, dim=-1)
            return act(value) * gate
        return act(h)

    def ffn_output(self, layer: nn.Module, h: torch.Tensor) -> torch.Tensor:
        drop = get_path(layer, self.ffn_drop) if self.ffn_drop else None
        if drop is not None and self.ffn_drop_before_out:
            h = drop(h)
        out = get_path(layer, self.ffn_out)(h)
        return drop(out) if drop is not None and not self.ffn_drop_before_out else out

    def attention_output(self, layer: nn.Module, ctx: torch.Tensor) -> torch.Tensor:
        out = get_path(layer, self.o)(ctx)
        return get_path(layer, self.o_drop)(out) if self.o_drop else out

    def ffn_width(self, layer: nn.Module) -> int:
        width = get_path(layer, self.ffn_in).out_features
        return width // 2 if self.gated else width


Rotary = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class TicketLayer(nn.Module):
    """One transformer block with its own head count and FFN width.

    The HF block's children are registered here under their own names. `head_coef` / `ffn_coef`
    (EarlyBERT slimming coefficients) are None unless attached; when set they scale each head's context
    vector and each FFN activation. `attention_type` is the block's HF attention type where the family
    alternates several (ModernBERT: sliding / full), else None.
    """

    def __init__(self, hf_layer: nn.Module, spec: BlockSpec, num_heads: int, head_dim: int, pre_ln: bool):
        super().__init__()
        for name, child in hf_layer.named_children():
            self.add_module(name, child)
        self.spec = spec
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.pre_ln = pre_ln
        self.attention_type: str | None = getattr(hf_layer, "attention_type", None)
        self.head_coef: nn.Parameter | None = None
        self.ffn_coef: nn.Parameter | None = None

    @property
    def ffn_width(self) -> int:
        return self.spec.ffn_width(self)

    def part(self, name: str) -> nn.Module:
        """The module the spec names `name` (e.g. "o", "ffn_in")."""
        return get_path(self, getattr(self.spec, name))

    def attention_branch(
        self, x: torch.Tensor, mask: torch.Tensor | None, rotary: Rotary | None = None
    ) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = (p.view(b, t, self.num_heads, self.head_dim).transpose(1, 2) for p in self.spec.projections(self, x))
        if rotary is not None:
            q, k = rotary(q, k)
        p = self.spec.attention_p(self) if self.training else 0.0
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # (b, h, t, d)
        if self.head_coef is not None:
            ctx = ctx * self.head_coef.to(ctx.dtype).view(1, -1, 1, 1)  # fp32 parameter, autocast dtype
        ctx = ctx.transpose(1, 2).reshape(b, t, self.num_heads * self.head_dim)
        return self.spec.attention_output(self, ctx)

    def ffn_branch(self, x: torch.Tensor) -> torch.Tensor:
        h = self.spec.ffn_hidden(self, x)
        if self.ffn_coef is not None:
            h = h * self.ffn_coef.to(h.dtype)
        return self.spec.ffn_output(self, h)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None, scale: float = 1.0, rotary: Rotary | None = None
    ) -> torch.Tensor:
        ln_att, ln_ffn = self.part("ln_att"), self.part("ln_ffn")
        if self.pre_ln:  # x + f(LN(x)): the residual stream is never normalised inside the stack
            x = x + self.attention_branch(ln_att(x), mask, rotary) * scale
            return x + self.ffn_branch(ln_ffn(x)) * scale
        x = ln_att(x + self.attention_branch(x, mask, rotary) * scale)
        return ln_ffn(x + self.ffn_branch(x) * scale)


class TicketEncoder(nn.Module):
    """Drop-in for a BERT-style encoder (hidden states + mask in, last hidden state out).

    The layers live under `list_name` (HF's own: ``layer`` for BERT, ``layers`` for ModernBERT);
    `blocks` reads them whatever the name. `layer_drop` (PLD) is consulted only in training mode. A
    post-LN family turned pre-LN gets one LayerNorm after the stack (`final_layer_norm`).
    """

    def __init__(
        self,
        layers: list[TicketLayer],
        hidden_size: int,
        pre_ln: bool,
        eps: float,
        list_name: str = "layer",
        final_norm: bool | None = None,
    ):
        super().__init__()
        self.list_name = list_name
        self.add_module(list_name, nn.ModuleList(layers))
        self.pre_ln = pre_ln
        final_norm = pre_ln if final_norm is None else final_norm
        self.final_layer_norm = nn.LayerNorm(hidden_size, eps=eps) if final_norm else None
        self.layer_drop: LayerDropper | None = None
        # bf16 working weights (precision bf16-master, optimizer.py): the stream is cast once on the way in/out
        self.compute_dtype: torch.dtype | None = None

    @property
    def blocks(self) -> nn.ModuleList:
        return self._modules[self.list_name]

    def run_layers(
        self,
        hidden_states: torch.Tensor,
        masks: Sequence[torch.Tensor | None],
        rotaries: Sequence[Rotary | None] | None = None,
    ) -> torch.Tensor:
        """Every block in turn (or those PLD keeps); block i gets `masks[i]` and `rotaries[i]`."""
        blocks = self.blocks
        outer = hidden_states.dtype
        if self.compute_dtype is not None and outer != self.compute_dtype:
            hidden_states = hidden_states.to(self.compute_dtype)
            masks = [m.to(self.compute_dtype) if m is not None and m.is_floating_point() else m for m in masks]
        gates = None
        if self.training and self.layer_drop is not None:
            gates = self.layer_drop.sample(len(blocks))
        for i, layer in enumerate(blocks):
            rotary = rotaries[i] if rotaries is not None else None
            if gates is None:
                hidden_states = layer(hidden_states, masks[i], rotary=rotary)
                continue
            keep, p = gates[i]
            if keep:  # a dropped layer is the identity: no forward, no backward
                hidden_states = layer(hidden_states, masks[i], scale=1.0 / p, rotary=rotary)
        return hidden_states.to(outer)

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, **_: object
    ) -> BaseModelOutputWithPastAndCrossAttentions:
        mask = sdpa_mask(attention_mask, hidden_states.dtype)
        hidden_states = self.run_layers(hidden_states, [mask] * len(self.blocks))
        if self.final_layer_norm is not None:
            hidden_states = self.final_layer_norm(hidden_states)
        return BaseModelOutputWithPastAndCrossAttentions(last_hidden_state=hidden_states)


def sdpa_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """HF hands the encoder None, a 4-D bool mask (sdpa) or a 4-D additive float mask (eager)."""
    if mask is None or mask.dtype == torch.bool or mask.is_floating_point():
        return mask if mask is None or mask.dtype == torch.bool else mask.to(dtype)
    return mask.bool()


def encoder_of(model: nn.Module) -> TicketEncoder:
    """The model's TicketEncoder: the model itself, a child, or a grandchild (heads wrap a backbone)."""
    if isinstance(model, TicketEncoder):
        return model
    children = list(model.children())
    for level in range(2):
        for child in children:
            if isinstance(child, TicketEncoder):
                return child
        if level == 0:
            children = [g for c in children for g in c.children()]
    raise TypeError("model has no TicketEncoder: build it with tickettune.trainables.model.build")


COEF_NAMES = ("head_coef", "ffn_coef")  # TicketLayer's slots for EarlyBERT's slimming coefficients


def has_coefficients(model: nn.Module) -> bool:
    """Whether slimming coefficients are attached (earlybert/slimming.py); a ticket never keeps them."""
    return any(l.head_coef is not None or l.ffn_coef is not None for l in encoder_of(model).blocks)
