"""Registry of encoder families: model_type -> adapter (see base.Family).

A new family is one adapter module here, listed below, plus its layer template in ticket/hf_templates/.
Everything family-specific asks the adapter and never tests a module name: encoder.py, prune.py,
slimming.py, pld.py and flops.py (through the TicketLayer's spec or `family_of`), build.py for the head
classes (`head_class`, the sparse MLM ones), ticket/hf_code.py for the generated ticket code (its
`FAMILIES` is derived from this one) and testing/random_models.py for a tiny config (`random_config`).
"""

from __future__ import annotations

from torch import nn

from ..heads import HEADS
from .base import Family
from .bert_block import Bert, Electra, Roberta
from .distilbert import DistilBert
from .modernbert import ModernBert

__all__ = ["FAMILIES", "HEADS", "Family", "UnsupportedModel", "family_of", "install", "supported"]

FAMILIES: dict[str, Family] = {}
for _family in (Bert(), Roberta(), Electra(), DistilBert(), ModernBert()):
    for _model_type in _family.model_types:
        FAMILIES[_model_type] = _family


class UnsupportedModel(ValueError):
    """A model_type no adapter covers."""


def supported() -> str:
    """'BERT (bert), RoBERTa (roberta, xlm-roberta, camembert), ...' for error messages."""
    seen: dict[str, Family] = {f.name: f for f in FAMILIES.values()}
    return ", ".join(f"{f.name} ({', '.join(f.model_types)})" for f in seen.values())


def family_of(model_or_config, where: str = "") -> Family:
    """The adapter for a model, a config or a model_type string."""
    if isinstance(model_or_config, str):
        model_type = model_or_config
    else:
        model_type = getattr(getattr(model_or_config, "config", model_or_config), "model_type", None)
    family = FAMILIES.get(model_type)
    if family is None:
        prefix = f"{where}: " if where else ""
        raise UnsupportedModel(f"{prefix}model_type {model_type!r} is not supported; supported families: {supported()}")
    return family


def install(model: nn.Module, heads_per_layer: list[int] | None = None, pre_ln: bool | None = None) -> nn.Module:
    """Put a TicketEncoder in `model` (in place); see Family.install."""
    return family_of(model).install(model, pre_ln=pre_ln, heads_per_layer=heads_per_layer)
