"""Writing a measured inference speed into a ticket: ``ticket.json``'s ``inference_speed`` and the model card's
"Inference speed" section (model_card.py renders it from there). Both files are replaced atomically."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from ..model.weights import TICKET_JSON
from .model_card import CARD_FILE, SPEED_KEY, render


def _replace(path: Path, text: str) -> None:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(name, path)


def record_inference_speed(ticket_dir: str | os.PathLike, speed: dict) -> None:
    """Put `speed` (model_card._inference_speed's fields) into the ticket's info and re-render its card."""
    from .format import card_facts, load_ticket

    d = Path(ticket_dir)
    model, _, info = load_ticket(d)
    info = {**info, SPEED_KEY: speed}
    _replace(d / TICKET_JSON, json.dumps(info, indent=1, allow_nan=False))
    if info["version"] >= 2:  # format 1 tickets have no card
        _replace(d / CARD_FILE, render(card_facts(model, info["head"], info["layout"], info)))


__all__ = ["record_inference_speed"]
