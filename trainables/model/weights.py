"""Loading a tickettune-saved directory's weights into a model built at its widths.

Lives beside model building (model.py calls it) rather than with the ticket format, so that building a
model does not import the ticket machinery. The file names are the ticket format's (ticket.py).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from .families import family_of

log = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"
TICKET_JSON = "ticket.json"


def _saved_head(path: Path) -> str | None:
    p = path / TICKET_JSON
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text()).get("head")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as e:
        raise ValueError(f"{p} is corrupt (cut short while being written?): {e}") from None


def check_weights(folder: str | os.PathLike) -> None:
    """Every *.safetensors in `folder` has a whole header and covers its tensors (a truncated or corrupt file
    is reported with its path, not as a bare SafetensorError from deep inside loading)."""
    from safetensors import safe_open

    for path in sorted(Path(folder).glob("*.safetensors")):
        try:
            with safe_open(str(path), "pt"):
                pass
        except Exception as e:  # SafetensorError, OSError: the file is unreadable as safetensors
            raise ValueError(f"{path} is corrupt: a truncated or unreadable weights file ({e})") from None


def load_weights_into(model: nn.Module, path: str | os.PathLike, head: str) -> nn.Module:
    """Load a ticket directory's weights into `model` (already built at the ticket's widths by
    `model.build_from_layout`); puts the model in eval mode, as `from_pretrained` does.

    Every backbone weight (the family's ``bert.``, ``roberta.``, ``model.``... prefix, pooler aside)
    must be there with its shape. Head weights load when the ticket was saved with the same head (a
    shape mismatch is then an error: wrong num_labels); for a different head (e.g. an MLM ticket
    fine-tuned for classification) the new head and the pooler stay as initialised.
    """
    path = Path(path)
    file = path / WEIGHTS
    if not file.is_file():
        raise FileNotFoundError(f"{path} has no {WEIGHTS}")
    prefix = family_of(model).backbone_attr + "."
    pooler = prefix + "pooler."

    def backbone(k: str) -> bool:
        return k.startswith(prefix) and not k.startswith(pooler)

    saved_head = _saved_head(path)
    same_head = saved_head is None or saved_head == head
    try:
        state = load_file(str(file))
    except SafetensorError as e:
        raise ValueError(f"{file} is corrupt (cut short while being written?): {e}") from None
    own = model.state_dict()
    load, unexpected, skipped = {}, [], []
    for k, v in state.items():
        if k not in own:
            unexpected.append(k)
        elif tuple(own[k].shape) != tuple(v.shape):
            if backbone(k) or same_head:
                raise ValueError(
                    f"{path}: {k} has shape {tuple(v.shape)} in the ticket but {tuple(own[k].shape)} "
                    f"in the model" + ("" if backbone(k) else " (num_labels differs?)")
                )
            skipped.append(k)
        else:
            load[k] = v
    bad = [k for k in unexpected if backbone(k)]
    if bad:
        raise ValueError(f"{path}: weights the model does not have: {bad[:5]}")
    model.load_state_dict(load, strict=False)
    # names that share a tensor with a loaded one (tied weights) are loaded too
    loaded_ptrs = {(own[k].untyped_storage().data_ptr(), own[k].storage_offset(), tuple(own[k].shape)) for k in load}
    missing = [
        k
        for k, t in own.items()
        if k not in load and (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape)) not in loaded_ptrs
    ]
    bad = [k for k in missing if backbone(k)]
    if bad:
        raise ValueError(f"{path}: the ticket lacks weights for {bad[:5]}{' ...' if len(bad) > 5 else ''}")
    if missing and same_head:
        raise ValueError(f"{path}: the ticket lacks its {head} head weights {missing[:5]}")
    if missing or unexpected or skipped:
        log.info(
            "%s: saved head %s, loaded as %s; newly initialised: %s; not used: %s",
            path,
            saved_head,
            head,
            missing + skipped,
            unexpected,
        )
    model.eval()
    return model
