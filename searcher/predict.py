"""`tickettune predict`: a model applied to a file, one prediction per row, in the rows' order.

Input: CSV, TSV, JSON lines or parquet with a header (read as own data is: trainables/tasks/own_data.py).
Output (by its extension): JSON lines (``.jsonl`` / ``.json``) or CSV, one row per input row carrying the
input's columns plus

* classification: ``label`` (the class name: the ticket's task's label set, else the config's id2label, else
  the class index) and ``score`` (its probability);
* regression: ``label`` (empty) and ``score`` (the predicted value);
* question answering (question + context columns): ``answer`` (the context's text), ``answer_start`` and
  ``answer_end`` (its character span: ``context[answer_start:answer_end] == answer``) and ``answer_score``
  (start + end logit); an empty answer (0, 0) where none was found (or, for a SQuAD v2 ticket, where "no
  answer" scores higher).

An input column with one of those names (a dev file's gold ``label``) is kept as ``input_<name>``.
Everything that can be wrong with the request (file, format, columns, an empty file, a model with no head for
this input) is found before the model is loaded; the output is written to a temporary file beside it and
renamed into place, so it is never half written.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tickettune.trainables.inference import (
    DEFAULT_MAX_LENGTH,
    SERVED_HEADS,
    ModelFacts,
    answer,
    classify,
    label_scores,
    load_served,
    model_facts,
)
from tickettune.trainables.tasks.own_data import read_table

OUT_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv"}
QA_COLUMNS = ("question", "context")
PREDICTED = {
    "qa": ("answer", "answer_start", "answer_end", "answer_score"),
    "classification": ("label", "score"),
    "regression": ("label", "score"),
}


@dataclass(frozen=True)
class PredictArgs:
    model: str
    input: str
    out: str
    text_columns: str | None = None  # "a" or "a,b"
    batch_size: int = 32
    max_length: int | None = None
    precision: str = "auto"
    progress: bool = True


def _columns(args: PredictArgs, facts: ModelFacts) -> tuple[str, ...]:
    """The text columns: given, else the ticket's task's (own data records them; GLUE by task name), else
    `text` (QA: question,context)."""
    if args.text_columns is not None:
        cols = tuple(c.strip() for c in args.text_columns.split(","))
        if not 1 <= len(cols) <= 2 or not all(cols):
            raise ValueError(f"--text-columns {args.text_columns!r}: give one column or a pair a,b")
    elif facts.head == "qa":
        cols = QA_COLUMNS
    elif facts.task.get("text_columns"):
        cols = tuple(facts.task["text_columns"])
    else:
        from tickettune.trainables.tasks.glue import TASKS

        spec = TASKS.get(str(facts.task.get("name", "")))
        cols = spec.text_columns if spec else ("text",)
    if facts.head == "qa" and len(cols) != 2:
        raise ValueError(
            f"{facts.source} answers questions: --text-columns needs question,context columns, got {','.join(cols)}"
        )
    return cols


def _check_model(facts: ModelFacts) -> None:
    if facts.head in SERVED_HEADS:
        return
    what = (
        f"a masked-LM head ({facts.architecture or 'mlm'})"
        if facts.head == "mlm"
        else f"no task head (architectures: {facts.architecture or 'none recorded'})"
    )
    raise ValueError(
        f"{facts.source} has {what}: predict needs a classification, regression or question-"
        "answering model (fine-tune it first: tickettune finetune / earlybert)"
    )


def _texts(df: pd.DataFrame, path: Path, cols: tuple[str, ...]) -> list[list[str]]:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(
            f"{path}: no column {', '.join(map(repr, missing))}; it has {[str(c) for c in df.columns]}"
            " (choose with --text-columns)"
        )
    out = []
    for c in cols:
        s = df[c]
        bad = s.isna().to_numpy().nonzero()[0]
        if len(bad):
            raise ValueError(f"{path}: row {int(bad[0]) + 1} has no text in column {c!r}")
        out.append(s.astype(str).tolist())
    return out


def _out_format(out: Path, inp: Path) -> str:
    fmt = OUT_FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise ValueError(f"--out {str(out)!r}: unknown format {out.suffix!r}; expected one of {sorted(OUT_FORMATS)}")
    if out.exists() and out.resolve() == inp.resolve():
        raise ValueError(f"--out {str(out)!r} is the input file")
    if out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a folder")
    return fmt


def _progress(enabled: bool, what: str):
    if not enabled:
        return lambda it, total: it
    from tqdm.auto import tqdm

    return lambda it, total: tqdm(it, total=total, desc=what, unit="batch", file=sys.stderr)


def write_atomic(df: pd.DataFrame, out: Path, fmt: str) -> None:
    """`df` to `out` through a temporary file in the same folder and one rename."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.tmp-", dir=out.parent)
    os.close(fd)
    try:
        if fmt == "csv":
            df.to_csv(name, index=False)
        else:
            df.to_json(name, orient="records", lines=True, force_ascii=False)
        with open(name, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(name, out)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def predict_file(args: PredictArgs) -> dict:
    """Check the request, load the model, predict every row, write the output; {rows, path, head}."""
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.max_length is not None and args.max_length < 8:
        raise ValueError(f"--max-length must be >= 8, got {args.max_length}")
    out = Path(args.out).expanduser()
    df, path, _ = read_table(args.input, "input file")
    fmt = _out_format(out, path)
    facts = model_facts(args.model)
    _check_model(facts)
    cols = _columns(args, facts)
    texts = _texts(df, path, cols)
    limit = min(
        x
        for x in (
            args.max_length or facts.max_length or DEFAULT_MAX_LENGTH.get(facts.head, 128),
            facts.max_positions or 512,
            512,
        )
        if x
    )
    import torch

    from tickettune.trainables.training.precision import resolve_precision

    resolve_precision(args.precision, "cuda" if torch.cuda.is_available() else "cpu")  # fp16 without CUDA: refused now

    model, tokenizer = load_served(facts)
    progress = _progress(args.progress, f"predict {path.name}")
    result = df.rename(columns={c: f"input_{c}" for c in PREDICTED[facts.head] if c in df.columns})
    if facts.head == "qa":
        spans = answer(
            model,
            tokenizer,
            texts[0],
            texts[1],
            args.batch_size,
            limit,
            args.precision,
            allow_empty=str(facts.task.get("name", "")).lower() in ("squad_v2", "squadv2"),
            progress=progress,
        )
        result["answer"] = [ctx[lo:hi] for ctx, (lo, hi, _) in zip(texts[1], spans)]
        result["answer_start"] = [lo for lo, _, _ in spans]
        result["answer_end"] = [hi for _, hi, _ in spans]
        result["answer_score"] = [s for _, _, s in spans]
    else:
        logits = classify(model, tokenizer, texts, args.batch_size, limit, args.precision, progress)
        result["label"], result["score"] = label_scores(logits, facts.head, facts.labels)
    write_atomic(result, out, fmt)
    return {"rows": len(result), "path": str(out), "head": facts.head}


__all__ = ["OUT_FORMATS", "PredictArgs", "predict_file", "write_atomic"]
