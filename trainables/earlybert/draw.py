"""Drawing the ticket: the pruned model that ticket training starts from, rewound or kept-trained."""

from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn

from ..model.build import layout
from ..model.encoder import COEF_NAMES
from ..model.prune import prune_model
from . import optimizer_carry
from .slimming import detach_coefficients


def _is_coef_key(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in COEF_NAMES


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the model's state (coefficients left out): take it before the first optimizer step,
    it is what a rewound ticket starts from."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items() if not _is_coef_key(k)}


def make_ticket(
    pretrained_state: dict[str, torch.Tensor] | None,
    trained_model: nn.Module,
    head_masks: Sequence[torch.Tensor],
    ffn_masks: Sequence[torch.Tensor],
    rewind: bool = True,
) -> nn.Module:
    """The pruned model that ticket training starts from; `trained_model` is left untouched.

    rewind=True (EarlyBERT's choice): the weights of `pretrained_state` (`snapshot` before the first
    update: pre-trained encoder, the head as initialised), pruned with the masks, coefficients dropped.
    rewind=False (keep-trained): the slimming run's weights with the coefficients folded in, pruned.
    Either way the result has no coefficients and `config.tickettune` describes its widths.
    """
    trained_model = trained_model.module if hasattr(trained_model, "module") else trained_model  # DDP
    model = copy.deepcopy(trained_model)
    if rewind:
        if pretrained_state is None:
            raise ValueError("rewind=True needs the pre-trained state (draw.snapshot(model) before training)")
        detach_coefficients(model, fold=False)
        state = {k: v for k, v in pretrained_state.items() if not _is_coef_key(k)}
        result = model.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise ValueError(
                f"pretrained_state does not match the model: missing {result.missing_keys[:5]}, "
                f"unexpected {result.unexpected_keys[:5]}"
            )
    else:
        detach_coefficients(model, fold=True)
    prune_model(model, [torch.as_tensor(m).bool() for m in head_masks], [torch.as_tensor(m).bool() for m in ffn_masks])
    model.config.tickettune = layout(model)
    return model


def draw_ticket(searched, ticket_mode: str) -> tuple[nn.Module, dict | None]:
    """The ticket of a finished mask search (`mask_search.Searched`) and, in `continue` mode, the search's
    AdamW state pruned exactly like the weights."""
    state = searched.state
    head_masks = [torch.tensor(m, dtype=torch.bool) for m in state.head_masks]
    ffn_masks = [torch.tensor(m, dtype=torch.bool) for m in state.ffn_masks]
    opt_state = None
    if ticket_mode == "continue" and searched.optimizer is not None:
        opt_state = optimizer_carry.prune_state(
            searched.model, optimizer_carry.state_by_name(searched.model, searched.optimizer), head_masks, ffn_masks
        )
    ticket = make_ticket(searched.pretrained, searched.model, head_masks, ffn_masks, rewind=ticket_mode == "rewind")
    return ticket, opt_state
