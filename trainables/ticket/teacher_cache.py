"""The teacher-logits cache on disk: a dense model's outputs for every training row, written once, read by tickets.

A cache is a folder beside the tickets it serves (in a search: ``<experiment>/teacher_cache``):

* ``teacher.json``: format, version, the fingerprint of what it was made for, how long it took;
* ``logits.safetensors``: fp32 ``logits`` (rows x labels), or for QA ``start_logits`` / ``end_logits`` flat with
  ``offsets`` (window i's tokens at offsets[i]:offsets[i+1], its own length, no padding).

Row i is row i of the tokenized train dataset (`tasks/example_index.py`): the same tokenization, truncation and
QA windows as training, since the writer runs on the training loader's own dataset. The fingerprint names the
task (name, head, labels), the rows (how many, the subset, a hash of every token and label), the tokenizer (its
class and a hash of its vocabulary) and max_length; reading a cache made for anything else is refused with a
message naming each difference (`TeacherCacheMismatch`). Writes are atomic (a temporary folder renamed into
place, ticket/format.publish_dir): a reader sees a whole cache or none.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader

from ..tasks.sampler import length_order
from ..training.callbacks import EXAMPLE_INDEX
from ..training.device import to_device
from ..training.distill_loss import TeacherLogits, student_kind
from ..training.loop import unwrap
from ..training.precision import Precision
from .format import publish_dir, read_versioned_json

FORMAT = "tickettune-teacher-cache"
VERSION = 1
INFO = "teacher.json"
LOGITS = "logits.safetensors"
IDENTITY = ("task", "tokenizer", "max_length", "rows", "data_sha")  # what must match; `subset` only explains


class TeacherCacheMismatch(ValueError):
    """A cache made for other data, tokenizer, max_length, task or labels."""


# ------------------------------------------------------------------------------------------------ fingerprint


def tokenizer_fingerprint(tokenizer) -> dict:
    vocab = json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False).encode()
    return {
        "class": type(tokenizer).__name__.removesuffix("Fast"),
        "vocab_sha": hashlib.sha256(vocab).hexdigest()[:16],
        "name": os.path.basename(str(tokenizer.name_or_path).rstrip("/")),  # shown, not compared
    }


def data_sha(ds) -> str:
    """A hash of every column of a tokenized dataset (tokens, types, labels, answer positions), row order kept."""
    table = ds.with_format("arrow")[:]  # the rows as the dataset presents them (a subset's indices applied)
    h = hashlib.sha256()
    for name in sorted(c for c in table.column_names if c != EXAMPLE_INDEX):
        col = table.column(name).combine_chunks()
        h.update(name.encode())
        if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
            h.update(np.ascontiguousarray(pc.list_value_length(col).to_numpy(zero_copy_only=False)).tobytes())
            col = pc.list_flatten(col)
        h.update(np.ascontiguousarray(col.to_numpy(zero_copy_only=False)).tobytes())
    return h.hexdigest()[:16]


def fingerprint(task_info: dict, tokenizer, ds, max_length: int, max_samples: int | None, seed: int) -> dict:
    """What a cache is for: `task_info` (Task.info()), the tokenizer, the tokenized train dataset `ds` and the
    DataArgs that cut it."""
    keep = ("name", "head", "num_labels", "labels", "version")
    return {
        "task": {k: task_info[k] for k in keep if k in task_info},
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "max_length": int(max_length),
        "rows": len(ds),
        "subset": {"max_train_samples": max_samples, "seed": seed if max_samples is not None else None},
        "data_sha": data_sha(ds),
    }


def differences(made_for: dict, wanted: dict) -> list[str]:
    """Each way the run `wanted` differs from what the cache was `made_for` (empty: the cache fits)."""
    out = []
    for key in IDENTITY:
        a, b = made_for.get(key), wanted.get(key)
        if key == "tokenizer":
            a, b = {k: v for k, v in (a or {}).items() if k != "name"}, {k: v for k, v in b.items() if k != "name"}
        if a != b:
            out.append(f"{key}: cache {_show(made_for.get(key))}, this run {_show(wanted.get(key))}")
    if out and made_for.get("subset") != wanted.get("subset"):
        out.append(f"subset: cache {_show(made_for.get('subset'))}, this run {_show(wanted.get('subset'))}")
    return out


def _show(value) -> str:
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else repr(value)


# ---------------------------------------------------------------------------------------------------- writing


@torch.no_grad()
def teacher_logits(model: nn.Module, ds, collator, precision: str = "auto", batch_size: int = 64) -> TeacherLogits:
    """`model`'s outputs (eval mode, fp32) for every row of the tokenized dataset `ds`, in its row order."""
    model = unwrap(model)
    kind = student_kind(model)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    amp = Precision.of(precision, device)
    columns = [c for c in ds.column_names if c != EXAMPLE_INDEX]
    ds = ds.select_columns(columns)
    ids = ds.with_format("arrow")[:]["input_ids"]
    order = length_order(pc.list_value_length(ids).to_numpy(zero_copy_only=False))  # longest first: little padding
    loader = DataLoader(ds, batch_size=batch_size, sampler=order.tolist(), collate_fn=collator)
    outs: dict[str, list] = {}
    lengths: list[int] = []
    for batch in loader:
        real = batch["attention_mask"].sum(-1).tolist()
        with amp.autocast():
            out = model(**to_device(batch, device))
        names = ("start_logits", "end_logits") if kind == "qa" else ("logits",)
        for name in names:
            rows = getattr(out, name).float().cpu()
            outs.setdefault(name, []).extend(rows[i, :n] if kind == "qa" else rows[i] for i, n in enumerate(real))
        lengths += real
    model.train(was_training)
    back = np.argsort(order, kind="stable")  # dataset order again
    if kind != "qa":
        logits = torch.stack(outs["logits"])[torch.from_numpy(back)]
        return TeacherLogits(kind, {"logits": logits.reshape(len(ds), -1).contiguous()})
    sizes = torch.tensor([lengths[i] for i in back], dtype=torch.long)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), sizes.cumsum(0)])
    tables = {name: torch.cat([outs[name][i] for i in back]) for name in ("start_logits", "end_logits")}
    return TeacherLogits(kind, tables, offsets)


def save(path: str | os.PathLike, teacher: TeacherLogits, made_for: dict, seconds: float) -> Path:
    """Write the cache atomically; an existing `path` is refused (FileExistsError): a cache is never replaced."""
    out = Path(path).expanduser().absolute()
    if out.exists():
        raise FileExistsError(f"teacher cache {out} already exists")
    if made_for.get("rows") != teacher.rows:
        raise ValueError(f"{teacher.rows} teacher rows for a dataset of {made_for.get('rows')}")
    tensors = {k: v.contiguous() for k, v in teacher.tables.items()}
    if teacher.offsets is not None:
        tensors["offsets"] = teacher.offsets.contiguous()
    info = {"format": FORMAT, "version": VERSION, "kind": teacher.kind, "made_for": made_for, "seconds": seconds}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        save_file(tensors, str(tmp / LOGITS))
        (tmp / INFO).write_text(json.dumps(info, indent=1))
        publish_dir(tmp, out, overwrite=False)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def write(path, model: nn.Module, loader: DataLoader, made_for: dict, precision: str = "auto") -> float:
    """Run `model` over the train `loader`'s dataset and save the cache; returns the seconds it took."""
    start = time.perf_counter()
    teacher = teacher_logits(model, loader.dataset, loader.collate_fn, precision)
    seconds = time.perf_counter() - start
    save(path, teacher, made_for, seconds)
    return time.perf_counter() - start


# ---------------------------------------------------------------------------------------------------- reading


def read_info(path: str | os.PathLike) -> dict:
    return read_versioned_json(Path(path) / INFO, "teacher cache", FORMAT, versions=(VERSION, VERSION))


def check(path: str | os.PathLike, wanted: dict) -> dict:
    """The cache's teacher.json, refused (TeacherCacheMismatch) unless it was made for `wanted` (a `fingerprint`)."""
    info = read_info(path)
    diff = differences(info["made_for"], wanted)
    if diff:
        raise TeacherCacheMismatch(f"teacher cache {path} was made for other data: " + "; ".join(diff))
    return info


def load(path: str | os.PathLike, wanted: dict) -> TeacherLogits:
    """The cache at `path` (`check`ed against `wanted`)."""
    info = check(path, wanted)
    tensors = load_file(str(Path(path) / LOGITS))
    offsets = tensors.pop("offsets", None)
    teacher = TeacherLogits(info["kind"], tensors, offsets)
    if teacher.rows != wanted["rows"]:
        raise ValueError(f"teacher cache {path}: {teacher.rows} rows in {LOGITS}, {wanted['rows']} in teacher.json")
    return teacher
