"""EarlyBERT tickets on disk: the ticket format (the pruned model is drawn in earlybert/draw.py).

A ticket directory is a Hugging Face-style model directory plus a `ticket.json`:

* ``model.safetensors``: the pruned weights. A tensor shared by several names (the MLM decoder weight is
  the word-embedding matrix; the decoder bias is the prediction bias) is stored once, under its first
  name in the state dict; loading restores the others through the model's own tying.
* ``config.json``: the stock config with the layout (``pre_ln``, ``heads_per_layer``, ``ffn_per_layer``),
  ``model_type`` ``tickettune_bert`` and an ``auto_map``; `model.load_model` rebuilds the model at those
  widths and then calls `load_weights_into` (weights.py) (version 1 kept the layout under a ``tickettune``
  key).
* ``configuration_tickettune.py`` and ``modeling_tickettune.py`` (version 2): the model code that lets
  plain transformers load the folder with ``trust_remote_code=True`` (see hf_code.py).
* ``README.md``: the model card (model_card.py).
  Every family has this code (its adapter names its layer template), so tickets are saved as version 2.
  Version 1 tickets (written before the code existed: the stock config.json with the layout under
  ``tickettune``, no model code and no card) still load (`load_ticket`, `load_model`).
* tokenizer files.
* ``ticket.json``: head type, num_labels, layout, parameter counts and everything passed in `info`
  (masks as lists of booleans, ratios, λs, ε, window, the step at which the early bird was found,
  metrics... — `ticket_info` builds the usual set).

Writes are atomic: everything goes into a temporary directory beside `out_dir`, which is then renamed
into place. An existing `out_dir` is refused (FileExistsError) unless `overwrite=True`, in which case the
new directory is swapped in with one atomic renameat2(RENAME_EXCHANGE) where the OS and file system offer
it, and otherwise by two renames (old -> `.<name>.old-*`, new -> `out_dir`), the old one then deleted. A
failure before the swap leaves the old directory as it was and removes the temporary one.

Slimming coefficients are never saved: a model that still has them is refused (`detach_coefficients`).
"""

from __future__ import annotations

import copy
import ctypes
import errno
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

import torch
from safetensors.torch import save_file
from torch import nn
from transformers import PreTrainedTokenizerBase

from ..model.build import count_parameters, head_of, layout, load_model
from ..model.encoder import has_coefficients
from ..model.families import family_of
from ..model.weights import TICKET_JSON, WEIGHTS, check_weights, load_weights_into
from . import hf_code
from .model_card import CARD_FILE, CardFacts, render

__all__ = [
    "head_of",
    "ticket_info",
    "masks_of",
    "save_ticket",
    "read_info",
    "load_ticket",
    "load_weights_into",
    "check_weights",
    "publish_dir",
]

CONFIG = "config.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
FORMAT = "tickettune-ticket"
VERSION = 2  # saved: hf_code.CODE_VERSION's code, model_type tickettune_*, README.md; 1 (no code) still loads
RESERVED = ("format", "version", "head", "num_labels", "layout", "parameters")


def ticket_info(
    head_masks: Sequence[torch.Tensor],
    ffn_masks: Sequence[torch.Tensor],
    *,
    mask_config: Any = None,
    lambda_head: float | None = None,
    lambda_ffn: float | None = None,
    eps: float | None = None,
    window: int | None = None,
    mask_interval: int | None = None,
    found_at_step: int | None = None,
    rewind: bool | None = None,
    metrics: dict | None = None,
    **extra: Any,
) -> dict:
    """The usual `info` for `save_ticket` (any other key may be added through **extra)."""
    if hasattr(mask_config, "to_dict"):
        mask_config = mask_config.to_dict()
    info = {
        "head_masks": [torch.as_tensor(m).bool().tolist() for m in head_masks],
        "ffn_masks": [torch.as_tensor(m).bool().tolist() for m in ffn_masks],
        "heads_kept": [int(torch.as_tensor(m).sum()) for m in head_masks],
        "ffn_kept": [int(torch.as_tensor(m).sum()) for m in ffn_masks],
        "mask_config": mask_config,
        "lambda_head": lambda_head,
        "lambda_ffn": lambda_ffn,
        "eps": eps,
        "window": window,
        "mask_interval": mask_interval,
        "found_at_step": found_at_step,
        "rewind": rewind,
        "metrics": metrics or {},
    }
    info.update(extra)
    return info


def masks_of(info: dict) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The masks recorded in a ticket.json (as `load_ticket` returns it)."""
    return (
        [torch.tensor(m, dtype=torch.bool) for m in info["head_masks"]],
        [torch.tensor(m, dtype=torch.bool) for m in info["ffn_masks"]],
    )


# --------------------------------------------------------------------------------------------------
# saving


def card_facts(model: nn.Module, head: str, lay: dict, info: dict) -> CardFacts:
    """What the model card says about `model`: its widths, and its size against the dense model it was cut
    from (the config's head count and FFN width in every layer)."""
    from ..model.build import build_from_layout
    from ..model.flops import Shape, shape_of, train_flops_per_sequence

    cfg = model.config
    dense_widths = family_of(cfg).widths(cfg.to_dict())
    dense_lay = {
        "pre_ln": lay["pre_ln"],
        "heads_per_layer": dense_widths["heads"],
        "ffn_per_layer": dense_widths["ffn"],
    }
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        dense = build_from_layout(type(model), copy.deepcopy(cfg), dense_lay)
    seq = int((info.get("flow") or {}).get("max_length") or 128)
    base = shape_of(model)

    def flops(layout: dict) -> float:
        shape = Shape(
            hidden=base.hidden,
            head_dim=base.head_dim,
            gated_ffn=base.gated_ffn,
            heads_per_layer=tuple(layout["heads_per_layer"]),
            ffn_per_layer=tuple(layout["ffn_per_layer"]),
            num_labels=int(cfg.num_labels),
            vocab=cfg.vocab_size,
            mlm=head == "mlm",
        )
        return train_flops_per_sequence(shape, seq)

    return CardFacts(
        head=head,
        auto_class=hf_code.AUTO_CLASSES[head],
        family=cfg.model_type,
        layout=lay,
        dense_heads=dense_widths["heads"][0],
        dense_ffn=dense_widths["ffn"][0],
        parameters=count_parameters(model),
        dense_parameters=count_parameters(dense),
        flop_ratio=flops(lay) / flops(dense_lay),
        seq_len=seq,
        format_version=VERSION,
        info=info,
    )


def _jsonable(value: Any, where: str) -> Any:
    if isinstance(value, torch.Tensor):
        return _jsonable(value.detach().cpu().tolist(), where)
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        return None  # strict JSON has no NaN / Infinity
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return _jsonable(value.tolist(), where)
    raise TypeError(f"ticket info {where} = {value!r} ({type(value).__name__}) cannot be written as JSON")


def _unique_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with every shared tensor kept once (first name wins), contiguous, on the CPU."""
    out: dict[str, torch.Tensor] = {}
    seen: set[tuple] = set()
    for name, t in model.state_dict().items():
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype, t.device)
        if t.numel() and key in seen:
            continue
        seen.add(key)
        out[name] = t.detach().to("cpu").contiguous().clone()
    return out


def _fsync_tree(path: Path, recursive: bool = True) -> None:
    for p in (sorted(path.rglob("*")) if recursive else []) + [path]:
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, f"renameat2({a}, {b}, RENAME_EXCHANGE): {os.strerror(err)}")


def publish_dir(tmp: Path, out: Path, overwrite: bool) -> None:
    """Move the finished folder `tmp` to `out` (same file system); an existing `out` is swapped out whole."""
    if not out.exists():
        os.rename(tmp, out)
        return
    if not overwrite:
        raise FileExistsError(f"{out} appeared while the ticket was being written")
    if _exchange(tmp, out):  # tmp now holds the old ticket
        shutil.rmtree(tmp, ignore_errors=True)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    os.rename(out, old / "d")
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old / "d", out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def save_ticket(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    out_dir: str | os.PathLike,
    info: dict | None = None,
    overwrite: bool = False,
) -> Path:
    """Write `model` (pruned, no coefficients) with its tokenizer and `info` to `out_dir`, atomically.

    Returns the directory. Refuses an existing `out_dir` (FileExistsError) unless overwrite=True, and a
    model with slimming coefficients (ValueError); bad info (not JSON-able, a reserved key) is refused
    before anything is written.
    """
    out = Path(out_dir).expanduser().absolute()
    if has_coefficients(model):
        raise ValueError(
            "the model still has slimming coefficients: call slimming.detach_coefficients(model, "
            "fold=...) or build it with ticket.make_ticket before saving"
        )
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a directory")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists: pass overwrite=True to replace it")
    if tokenizer is None:
        raise ValueError("a ticket needs its tokenizer (load_model reads it from the directory)")
    head, num_labels = head_of(model)
    lay = layout(model)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "head": head,
        "num_labels": num_labels,
        "layout": lay,
        "parameters": count_parameters(model),
    }
    info = _jsonable(dict(info or {}), "info")
    clash = [k for k in RESERVED if k in info and info[k] != meta[k]]
    if clash:
        raise ValueError(
            f"info sets {clash}, which the ticket derives from the model: { {k: (info[k], meta[k]) for k in clash} }"
        )
    ticket = {**info, **meta}
    text = json.dumps(ticket, indent=1, allow_nan=False)
    config = hf_code.ticket_config(model.config.to_dict(), lay, head)
    card = render(card_facts(model, head, lay, ticket))

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        save_file(_unique_tensors(model), str(tmp / WEIGHTS), metadata={"format": "pt"})
        (tmp / CONFIG).write_text(hf_code.config_text(config))
        hf_code.write_code(tmp, model.config.model_type)
        (tmp / CARD_FILE).write_text(card)
        tokenizer.save_pretrained(str(tmp))
        (tmp / TICKET_JSON).write_text(text)
        _fsync_tree(tmp)
        publish_dir(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_tree(out.parent, recursive=False)  # the rename itself
    return out


# --------------------------------------------------------------------------------------------------
# loading


def read_info(path: str | os.PathLike) -> dict:
    return read_versioned_json(Path(path) / TICKET_JSON, "tickettune ticket", FORMAT, versions=(1, VERSION))


def read_versioned_json(p: Path, what: str, fmt: str, versions: tuple[int, int]) -> dict:
    """The JSON that says what a folder is (its `format`, and a `version` in `versions`, both ends included),
    refused with the file and the reason: missing, cut short while being written, or another format."""
    if not p.is_file():
        raise FileNotFoundError(f"{p.parent} has no {p.name}: not a {what}")
    try:
        info = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{p} is corrupt (cut short while being written?): {e}") from None
    if not isinstance(info, dict) or info.get("format") != fmt:
        raise ValueError(f"{p}: format {info.get('format') if isinstance(info, dict) else info!r}, expected {fmt!r}")
    low, high = versions
    if not isinstance(info.get("version"), int) or not low <= info["version"] <= high:
        reads = f"{low}" if low == high else f"{low} to {high}"
        raise ValueError(f"{p}: {what} version {info.get('version')!r}; this tickettune reads {reads}")
    return info


def required_files(version: int) -> tuple[str, ...]:
    """The files a ticket of this format version cannot load without."""
    return (CONFIG, WEIGHTS, TICKET_JSON, TOKENIZER_CONFIG) + (hf_code.CODE_FILES if version >= 2 else ())


def check_files(path: str | os.PathLike, version: int = VERSION) -> None:
    """Refuse a half-written or damaged ticket folder, naming what is missing, before anything loads."""
    path = Path(path)
    missing = [f for f in required_files(version) if not (path / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{path} is not a complete ticket (format {version}): missing {', '.join(missing)}")


def load_ticket(path: str | os.PathLike) -> tuple[nn.Module, PreTrainedTokenizerBase, dict]:
    """(model in eval mode, tokenizer, ticket.json as a dict) with the head the ticket was saved with."""
    info = read_info(path)
    check_files(path, info["version"])
    model, tokenizer = load_model(str(Path(path).absolute()), head=info["head"], num_labels=info["num_labels"])
    return model, tokenizer, info
