"""A ticket's layout (pre-LN flag, heads and FFN width per layer) as its config.json records it.

Lives with the model, not the ticket format, because `build.load_model` reads it to rebuild a ticket at
its widths; ticket/hf_code.py writes it.
"""

from __future__ import annotations

from typing import Any

from .families import family_of

PREFIX = "tickettune_"  # model_type of a ticket = PREFIX + the family's stock model_type
LAYOUT_KEYS = ("heads_per_layer", "ffn_per_layer", "pre_ln")


def stock_model_type(model_type: str) -> str:
    """'bert' for 'tickettune_bert' (and for 'bert')."""
    return model_type[len(PREFIX) :] if model_type.startswith(PREFIX) else model_type


def split_config(config: dict[str, Any]) -> tuple[dict[str, Any], dict | None]:
    """(the stock family's config dict, the ticket layout or None) of a config.json: a ticket's
    (format 2: model_type tickettune_*, layout keys at the top), an older ticket's (``tickettune`` key)
    or a plain checkpoint's."""
    config = dict(config)
    layout = config.pop("tickettune", None)
    if str(config.get("model_type", "")).startswith(PREFIX):
        config["model_type"] = stock_model_type(config["model_type"])
        family_of(config["model_type"], where="config.json")  # refuses a family tickettune does not know
        missing = [k for k in LAYOUT_KEYS if k not in config]
        if missing:
            raise ValueError(f"a {config.get('model_type')} ticket's config.json lacks {missing}")
        layout = {k: config.pop(k) for k in LAYOUT_KEYS}
    for k in ("auto_map", "ticket_format", *LAYOUT_KEYS):
        config.pop(k, None)
    return config, layout
