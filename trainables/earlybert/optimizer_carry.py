"""The `continue` ticket mode: AdamW's state goes through pruning with the weights, so nothing the search
phase did is thrown away.

Adam's moments are per-parameter tensors of the parameter's shape, so they are pruned exactly like the
weights: each moment is loaded into a copy of the model in place of the weights and that copy is pruned
with the same masks (prune.py), which slices rows and columns the way a family's layers need. The
coefficients are folded into the ticket's weights (W·c); their moments are kept as they were for W — the
kept units' coefficients stay near their initial 1.0 under the small L1 penalties EarlyBERT uses.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..model.prune import prune_model
from .slimming import detach_coefficients

MOMENTS = ("exp_avg", "exp_avg_sq")


def state_by_name(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, dict[str, torch.Tensor]]:
    """{parameter name: {"step", "exp_avg", "exp_avg_sq"}} for every parameter the optimizer has stepped."""
    names = {id(p): n for n, p in model.named_parameters()}
    out = {}
    for p, st in optimizer.state.items():
        if id(p) in names and all(k in st for k in MOMENTS):
            out[names[id(p)]] = {k: st[k].detach() for k in ("step", *MOMENTS)}
    return out


def prune_state(
    trained: nn.Module,
    state: dict[str, dict[str, torch.Tensor]],
    head_masks: Sequence[torch.Tensor],
    ffn_masks: Sequence[torch.Tensor],
) -> dict[str, dict[str, torch.Tensor]]:
    """`state` (of `trained`, coefficients attached or not) sliced to the ticket that the same masks give."""
    sliced: dict[str, dict[str, torch.Tensor]] = {}
    for moment in MOMENTS:
        shadow = copy.deepcopy(trained)
        detach_coefficients(shadow, fold=False)
        with torch.no_grad():
            for name, p in shadow.named_parameters():
                p.copy_(state[name][moment]) if name in state else p.zero_()
        prune_model(
            shadow, [torch.as_tensor(m).bool() for m in head_masks], [torch.as_tensor(m).bool() for m in ffn_masks]
        )
        for name, p in shadow.named_parameters():
            if name in state:
                sliced.setdefault(name, {"step": state[name]["step"].clone()})[moment] = p.detach().clone()
    return sliced


def load_state(optimizer: torch.optim.Optimizer, model: nn.Module, state: dict[str, dict[str, torch.Tensor]]) -> int:
    """Put `state` into a fresh optimizer over `model`'s parameters; returns how many parameters got one."""
    params = dict(model.named_parameters())
    n = 0
    for name, st in state.items():
        p = params.get(name)
        if p is None or tuple(p.shape) != tuple(st["exp_avg"].shape):
            raise ValueError(
                f"optimizer state for {name} does not fit the ticket "
                f"({None if p is None else tuple(p.shape)} vs {tuple(st['exp_avg'].shape)})"
            )
        optimizer.state[p] = {k: v.to(p.device).clone() for k, v in st.items()}
        n += 1
    return n


def save(state: dict[str, dict[str, torch.Tensor]], path: str) -> None:
    """One safetensors file: "<param>/<step|exp_avg|exp_avg_sq>" (for the search-phase checkpoint)."""
    save_file(
        {
            f"{name}/{k}": v.detach().cpu().contiguous().reshape(v.shape)
            for name, st in state.items()
            for k, v in st.items()
        },
        path,
    )


def load(path: str) -> dict[str, dict[str, torch.Tensor]]:
    out: dict[str, dict[str, torch.Tensor]] = {}
    for key, v in load_file(path).items():
        name, _, k = key.rpartition("/")
        out.setdefault(name, {})[k] = v
    return out
