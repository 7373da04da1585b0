"""Physical structured pruning: remove heads and FFN neurons so the matmuls really shrink.

transformers 5 dropped `prune_heads`; this replaces it for TicketLayers, with per-layer widths.
A head h owns rows [h*d, (h+1)*d) of Q, K and V and the same columns of the attention output
projection; an FFN neuron owns one row of the intermediate dense and one column of the output dense.
"""
from __future__ import annotations

import torch
from torch import nn

from .encoder import TicketLayer, encoder_of


def _slice_linear(lin: nn.Linear, index: torch.Tensor, dim: int) -> nn.Linear:
    """A new Linear keeping `index` along `dim` of the weight (0 = outputs, 1 = inputs)."""
    weight = lin.weight.detach().index_select(dim, index).clone()
    out_f, in_f = weight.shape
    new = nn.Linear(in_f, out_f, bias=lin.bias is not None, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if lin.bias is not None:
            new.bias.copy_(lin.bias.detach() if dim == 1 else lin.bias.detach()[index])
    new.weight.requires_grad_(lin.weight.requires_grad)
    return new


def resize_layer(layer: TicketLayer, keep_heads: torch.Tensor, keep_ffn: torch.Tensor) -> None:
    """Keep only the heads and FFN neurons whose indices are given (in place)."""
    keep_heads = torch.as_tensor(keep_heads, dtype=torch.long).sort().values
    keep_ffn = torch.as_tensor(keep_ffn, dtype=torch.long).sort().values
    if keep_heads.numel() == 0 or keep_ffn.numel() == 0:
        raise ValueError("a layer must keep at least one head and one FFN neuron")
    d = layer.head_dim
    device = layer.attention.self.query.weight.device
    rows = (keep_heads.to(device)[:, None] * d + torch.arange(d, device=device)).reshape(-1)
    att = layer.attention.self
    att.query, att.key, att.value = (_slice_linear(m, rows, 0) for m in (att.query, att.key, att.value))
    layer.attention.output.dense = _slice_linear(layer.attention.output.dense, rows, 1)
    keep_ffn = keep_ffn.to(device)
    layer.intermediate.dense = _slice_linear(layer.intermediate.dense, keep_ffn, 0)
    layer.output.dense = _slice_linear(layer.output.dense, keep_ffn, 1)
    layer.num_heads = int(keep_heads.numel())
    if layer.head_coef is not None:
        layer.head_coef = nn.Parameter(layer.head_coef.detach()[keep_heads.to(device)].clone())
    if layer.ffn_coef is not None:
        layer.ffn_coef = nn.Parameter(layer.ffn_coef.detach()[keep_ffn].clone())


def prune_model(model: nn.Module, head_masks: list[torch.Tensor], ffn_masks: list[torch.Tensor]) -> nn.Module:
    """Remove every head / neuron whose mask entry is False (in place); returns the model."""
    layers = encoder_of(model).layer
    if len(head_masks) != len(layers) or len(ffn_masks) != len(layers):
        raise ValueError(f"need one head mask and one FFN mask per layer ({len(layers)}), "
                         f"got {len(head_masks)} and {len(ffn_masks)}")
    for i, (layer, hm, fm) in enumerate(zip(layers, head_masks, ffn_masks)):
        if hm.numel() != layer.num_heads or fm.numel() != layer.ffn_width:
            raise ValueError(f"layer {i}: masks of size {hm.numel()}/{fm.numel()} for "
                             f"{layer.num_heads} heads / {layer.ffn_width} FFN neurons")
        resize_layer(layer, hm.nonzero().flatten(), fm.nonzero().flatten())
    return model
