"""Physical structured pruning: remove heads and FFN neurons so the matmuls really shrink.

transformers 5 dropped `prune_heads`; this replaces it for TicketLayers, with per-layer widths.
A head h owns rows [h*d, (h+1)*d) of Q, K and V (of each third of a fused QKV) and the same columns
of the attention output projection; an FFN neuron owns one row of the FFN input (two in a gated FFN:
its value and its gate) and one column of the FFN output. Where those are is the family's (its spec).
"""

from __future__ import annotations

import torch
from torch import nn

from .encoder import TicketLayer, encoder_of, set_path


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


def _head_rows(keep_heads: torch.Tensor, head_dim: int) -> torch.Tensor:
    return (keep_heads[:, None] * head_dim + torch.arange(head_dim, device=keep_heads.device)).reshape(-1)


def resize_layer(layer: TicketLayer, keep_heads: torch.Tensor, keep_ffn: torch.Tensor) -> None:
    """Keep only the heads and FFN neurons whose indices are given (in place).

    The layer's spec says where the parts are: a fused QKV keeps the head's rows in each of its three
    thirds; a gated FFN input keeps the neuron's value row and its gate row.
    """
    spec = layer.spec
    keep_heads = torch.as_tensor(keep_heads, dtype=torch.long).sort().values
    keep_ffn = torch.as_tensor(keep_ffn, dtype=torch.long).sort().values
    if keep_heads.numel() == 0 or keep_ffn.numel() == 0:
        raise ValueError("a layer must keep at least one head and one FFN neuron")
    device = layer.part("o").weight.device
    keep_heads, keep_ffn = keep_heads.to(device), keep_ffn.to(device)
    rows = _head_rows(keep_heads, layer.head_dim)
    if spec.qkv is not None:
        width = layer.num_heads * layer.head_dim
        qkv_rows = torch.cat([rows + i * width for i in range(3)])  # the same heads in q, k and v
        set_path(layer, spec.qkv, _slice_linear(layer.part("qkv"), qkv_rows, 0))
    else:
        for name in ("q", "k", "v"):
            set_path(layer, getattr(spec, name), _slice_linear(layer.part(name), rows, 0))
    set_path(layer, spec.o, _slice_linear(layer.part("o"), rows, 1))
    ffn_rows = torch.cat([keep_ffn, keep_ffn + layer.ffn_width]) if spec.gated else keep_ffn
    set_path(layer, spec.ffn_in, _slice_linear(layer.part("ffn_in"), ffn_rows, 0))
    set_path(layer, spec.ffn_out, _slice_linear(layer.part("ffn_out"), keep_ffn, 1))
    layer.num_heads = int(keep_heads.numel())
    if layer.head_coef is not None:
        layer.head_coef = nn.Parameter(layer.head_coef.detach()[keep_heads].clone())
    if layer.ffn_coef is not None:
        layer.ffn_coef = nn.Parameter(layer.ffn_coef.detach()[keep_ffn].clone())


def prune_model(model: nn.Module, head_masks: list[torch.Tensor], ffn_masks: list[torch.Tensor]) -> nn.Module:
    """Remove every head / neuron whose mask entry is False (in place); returns the model."""
    layers = encoder_of(model).blocks
    if len(head_masks) != len(layers) or len(ffn_masks) != len(layers):
        raise ValueError(
            f"need one head mask and one FFN mask per layer ({len(layers)}), got {len(head_masks)} and {len(ffn_masks)}"
        )
    for i, (layer, hm, fm) in enumerate(zip(layers, head_masks, ffn_masks)):
        if hm.numel() != layer.num_heads or fm.numel() != layer.ffn_width:
            raise ValueError(
                f"layer {i}: masks of size {hm.numel()}/{fm.numel()} for "
                f"{layer.num_heads} heads / {layer.ffn_width} FFN neurons"
            )
        resize_layer(layer, hm.nonzero().flatten(), fm.nonzero().flatten())
    return model
