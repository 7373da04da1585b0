"""What the `tickettune` command's subcommands share: errors a user caused, `--set` values, the own-data and
fast-path flags. Plain argparse, no torch: `tickettune --help` stays instant."""

from __future__ import annotations

import argparse
import json

PRECISIONS = (
    "auto",
    "fp32",
    "bf16",
    "fp16",
    "bf16-master",
)  # trainables.precision.PRECISIONS, without importing torch here
PRECISION_HELP = (
    "autocast dtype: auto = bf16 where the CPU (AMX/AVX512-BF16) or GPU runs it fast, else fp32; "
    "bf16-master: bf16 block weights with fp32 master weights, no autocast"
)


def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def key_values(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--set expects KEY=VALUE, got {pair!r}")
        out[key] = parse_value(value)
    return out


class CliError(Exception):
    """A problem with what the user asked for: printed as one line, exit status 2."""


OWN_DATA = ("train_file", "validation_file", "text_columns", "label_column")


def own_data(args: argparse.Namespace) -> dict | None:
    """The task dict the own-data flags describe (tasks.get_task reads it), or None when none is given."""
    given = {k: getattr(args, k) for k in OWN_DATA if getattr(args, k) is not None}
    if args.regression:
        given["regression"] = True
    if args.text_files:
        if given:
            raise CliError(
                "--text-files (MLM on your text) cannot be combined with --train-file/--validation-file/"
                "--text-columns/--label-column (classification or regression)"
            )
        return {"text_files": args.text_files, "line_by_line": args.line_by_line}
    if not given:
        return None
    missing = [f"--{k.replace('_', '-')}" for k in ("train_file", "validation_file") if k not in given]
    if missing:
        raise CliError(f"own data needs {' and '.join(missing)} too")
    return given


def task_setting(args: argparse.Namespace, default):
    own = own_data(args)
    if own is not None and args.task is not None:
        raise CliError(f"--task {args.task} and your own data (--train-file/--text-files) both given; choose one")
    return own if own is not None else (args.task if args.task is not None else default)


def own_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("your own data (instead of a task name)")
    g.add_argument("--train-file", default=None, help=".csv, .tsv, .jsonl or .parquet with a header")
    g.add_argument("--validation-file", default=None)
    g.add_argument("--text-columns", default=None, help="one column, or two as a,b (a sentence pair)")
    g.add_argument("--label-column", default=None, help="default: label; strings/ints: classes, floats: regression")
    g.add_argument("--regression", action="store_true", help="treat the labels as scores even if integers")
    g.add_argument("--text-files", nargs="+", default=None, help="MLM on your text: .txt files or folders")
    g.add_argument(
        "--line-by-line",
        action="store_true",
        help="with --text-files: one sequence per line (default: lines grouped into max-length blocks)",
    )


EMBEDDINGS = (
    "train",
    "sparse",
    "freeze",
)  # trainables.training.word_embeddings.EMBEDDINGS, without importing torch here


def dropout_arg(text: str) -> float:
    try:
        p = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0 <= p < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return p


FAST_PATH_NOTE = " (default: the fast path, trainables/fast_path.py: %s; pre-training: %s)"


def lever_args(p: argparse.ArgumentParser, fast_path: bool) -> None:
    """--embeddings and --dropout; `fast_path`: unset, the trial config's fast path decides (earlybert)."""
    p.add_argument(
        "--embeddings",
        default=None if fast_path else "train",
        choices=EMBEDDINGS,
        help="word embedding: train (dense), sparse (only the rows a batch uses get a gradient and an "
        "AdamW step), freeze (not trained)" + (FAST_PATH_NOTE % ("freeze", "train") if fast_path else ""),
    )
    p.add_argument(
        "--dropout",
        default=None,
        type=dropout_arg,
        help="every dropout of the model (hidden, attention probabilities, head); 0 removes them "
        + (FAST_PATH_NOTE % ("0", "the model's own config") if fast_path else "(default: the model's own config)"),
    )


def distill_args(p: argparse.ArgumentParser) -> None:
    """--teacher and its settings: the teacher's logits cached over the training rows before training, then a
    distillation term on them (trainables/ticket/distill.py)."""
    g = p.add_argument_group("distillation from a teacher (its logits cached once, before training)")
    g.add_argument("--teacher", default=None, metavar="DIR", help="a fine-tuned model or ticket folder of this task")
    g.add_argument(
        "--teacher-cache",
        default=None,
        metavar="DIR",
        help="keep the cache here (default: a temporary folder); one made for other data is refused",
    )
    g.add_argument("--distill-weight", type=float, default=None, help="the term's weight (default with --teacher: 1)")
    g.add_argument("--distill-temperature", type=float, default=None, help="softmax temperature (default 2)")


def distill_settings(args: argparse.Namespace) -> dict:
    """The FlowConfig fields the distillation flags set (only those given; --teacher alone weighs 1)."""
    out = {
        k: getattr(args, k)
        for k in ("teacher", "teacher_cache", "distill_weight", "distill_temperature")
        if getattr(args, k) is not None
    }
    if args.teacher is not None:
        out.setdefault("distill_weight", 1.0)
    elif out:
        raise CliError(f"{', '.join('--' + k.replace('_', '-') for k in out)} without --teacher: nothing to cache")
    return out
