"""EarlyBERT network slimming: a learnable scalar per attention head and per FFN neuron, L1-penalised.

`attach` gives every TicketLayer a `head_coef` (one per head) and an `ffn_coef` (one per intermediate
neuron), initialised to 1.0; the layer's forward (encoder.py) multiplies each head's context vector and
each FFN activation by them. The coefficients are ordinary parameters trained by the model's optimizer
(give them their own group: `coefficient_params`), with the L1 penalty
``λ_head·Σ|c_head| + λ_ffn·Σ|c_ffn|`` added to the loss once per optimizer step (`SlimmingCallback`).
Masks are drawn from |c| (masks.py); the ticket is built without coefficients (`detach_coefficients`,
ticket.py).

Scaling a head's context output by c_h is the same as scaling its attention probabilities (the reference
code's choice): both multiply that head's contribution to the output projection by c_h.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..model.encoder import COEF_NAMES, TicketLayer, encoder_of, has_coefficients
from ..training.callbacks import Callback


def _layers(model: nn.Module) -> list[TicketLayer]:
    return list(encoder_of(model).blocks)


def attach(model: nn.Module, init: float = 1.0) -> nn.Module:
    """Give every layer fresh coefficients (value `init`) in place; returns the model.

    Call it before the optimizer is built. A model that already has coefficients is refused (re-attaching
    would silently reset trained values): `detach_coefficients` first.
    """
    if not math.isfinite(init):
        raise ValueError(f"init must be finite, got {init}")
    if has_coefficients(model):
        raise ValueError("model already has slimming coefficients; call detach_coefficients first")
    for layer in _layers(model):
        w = layer.part("o").weight
        dtype = torch.promote_types(w.dtype, torch.float32)  # fp32 even beside bf16 working weights
        layer.head_coef = nn.Parameter(torch.full((layer.num_heads,), float(init), device=w.device, dtype=dtype))
        layer.ffn_coef = nn.Parameter(torch.full((layer.ffn_width,), float(init), device=w.device, dtype=dtype))
    return model


def coefficients(model: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(head coefficients per layer, FFN coefficients per layer): the live parameters, not copies."""
    layers = _layers(model)
    if not all(l.head_coef is not None and l.ffn_coef is not None for l in layers):
        raise ValueError("model has no slimming coefficients: call slimming.attach(model) first")
    return [l.head_coef for l in layers], [l.ffn_coef for l in layers]


def coefficient_params(model: nn.Module) -> list[nn.Parameter]:
    """The coefficient parameters, for an optimizer group of their own (own lr, weight_decay=0).

    Empty when none are attached. Exclude them from the other groups by identity::

        coef = coefficient_params(model); ids = {id(p) for p in coef}
        rest = [p for p in model.parameters() if id(p) not in ids]
    """
    out: list[nn.Parameter] = []
    for l in _layers(model):
        out += [p for p in (l.head_coef, l.ffn_coef) if p is not None]
    return out


def detach_coefficients(model: nn.Module, fold: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Remove the coefficients in place; returns their last values (detached copies).

    fold=True multiplies them into the weights so the model computes the same function without them:
    head h's coefficient scales columns [h·d, (h+1)·d) of the attention output projection, FFN neuron
    j's coefficient scales column j of the FFN output projection (biases are untouched: they are added after the
    scaled input). fold=False drops them (every coefficient becomes 1): use it before rewinding weights.
    """
    heads, ffns = [], []
    for layer in _layers(model):
        hc, fc = layer.head_coef, layer.ffn_coef
        heads.append(None if hc is None else hc.detach().clone())
        ffns.append(None if fc is None else fc.detach().clone())
        if fold:
            with torch.no_grad():
                if hc is not None:
                    w = layer.part("o").weight  # (hidden, heads*d)
                    w.mul_(hc.detach().to(w.dtype).repeat_interleave(layer.head_dim)[None, :])
                if fc is not None:
                    w = layer.part("ffn_out").weight  # (hidden, ffn)
                    w.mul_(fc.detach().to(w.dtype)[None, :])
        for name in COEF_NAMES:  # unregister the parameter, back to the plain attribute None
            if name in layer._parameters:
                del layer._parameters[name]
            setattr(layer, name, None)
    return heads, ffns


def _check_lambda(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def l1_penalty(model: nn.Module, lambda_head: float, lambda_ffn: float) -> torch.Tensor:
    """λ_head·Σ|c_head| + λ_ffn·Σ|c_ffn| over every layer (a scalar tensor with gradient)."""
    lambda_head = _check_lambda("lambda_head", lambda_head)
    lambda_ffn = _check_lambda("lambda_ffn", lambda_ffn)
    heads, ffns = coefficients(model)
    head_sum = torch.stack([c.abs().sum() for c in heads]).sum()
    ffn_sum = torch.stack([c.abs().sum() for c in ffns]).sum()
    return lambda_head * head_sum + lambda_ffn * ffn_sum


class SlimmingCallback(Callback):
    """Adds the L1 penalty on the coefficients; the loop adds `extra_loss` once per optimizer step, so the
    penalty has the same weight whatever the gradient accumulation.

    The coefficients must already be attached (`attach`) when the optimizer is built; this callback only
    supplies the penalty. λ = 1e-4 for both is the EarlyBERT launch scripts' setting.
    """

    def __init__(self, lambda_head: float = 1e-4, lambda_ffn: float = 1e-4):
        self.lambda_head = _check_lambda("lambda_head", lambda_head)
        self.lambda_ffn = _check_lambda("lambda_ffn", lambda_ffn)

    def extra_loss(self, model: nn.Module) -> torch.Tensor:
        return l1_penalty(model, self.lambda_head, self.lambda_ffn)
