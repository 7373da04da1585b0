"""The `tickettune` command."""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from .cli_args import (  # noqa: E402
    FAST_PATH_NOTE,
    PRECISION_HELP,
    PRECISIONS,
    CliError,
    distill_args,
    distill_settings,
    key_values,
    lever_args,
    own_data,
    own_data_args,
)
from .finetune_cmd import cmd_finetune  # noqa: E402


def cmd_earlybert(args: argparse.Namespace) -> int:
    from tickettune.trainables.config import FlowConfig
    from tickettune.trainables.flow import run_flow

    settings = key_values(args.set)
    for key in ("precision", "embeddings", "dropout"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    settings.update(distill_settings(args))
    own = own_data(args)
    if own is not None:
        if "task" in settings:
            raise CliError("--set task=... and your own data (--train-file/--text-files) both given; choose one")
        settings["task"] = own
    cfg = FlowConfig.from_dict(settings)
    result = run_flow(cfg, ticket_dir=args.out)
    print(
        f"{result.metric_name}={result.val_metric:.4f} converged={result.converged} "
        f"early_bird_step={result.early_bird_step} relative_cost={result.relative_cost:.3f} "
        f"seconds={ {k: round(v, 1) for k, v in result.seconds.items()} }"
    )
    if result.ticket_dir:
        print(f"ticket written to {result.ticket_dir}")
    return 0


def _verbosity(args: argparse.Namespace) -> int:
    """search/resume: 1 (quiet: our lines and Tune's progress), 2 with -v (what the libraries log too)."""
    from tickettune.searcher import console

    level = console.VERBOSE if args.verbose else console.QUIET
    console.prepare_driver(level)  # before Ray is imported: some of its switches are read at import
    return level


def cmd_search(args: argparse.Namespace) -> int:
    verbose = _verbosity(args)
    from tickettune.searcher.search import run_search
    from tickettune.spaces import load_spec

    spec = load_spec(args.config)  # every problem in the config is reported before Ray starts
    if args.wandb_project:
        spec.search.wandb_project = args.wandb_project
    if args.num_samples:
        spec.search.num_samples = args.num_samples
    result = run_search(spec, address=args.address, overwrite=args.overwrite, verbose=verbose, auth=args.ray_auth)
    return _ended(result)


def _ended(result) -> int:
    """Where the search is, its best, and last the outcome's line; non-zero when no trial finished or the
    export failed."""
    from tickettune.searcher.outcome import exit_status

    print(f"experiment: {result.experiment_dir}")
    if result.exported:
        print(f"best ticket(s): {result.exported}")
    status = exit_status(result.outcome)
    if result.outcome is not None:
        name = os.path.basename(result.experiment_dir.rstrip("/"))
        print(result.outcome.line(name), file=sys.stderr if status else sys.stdout, flush=True)
    return status


def cmd_resume(args: argparse.Namespace) -> int:
    verbose = _verbosity(args)
    from tickettune.searcher.resume import resume_search

    result = resume_search(args.experiment_dir, address=args.address, verbose=verbose, auth=args.ray_auth)
    return _ended(result)


def cmd_export(args: argparse.Namespace) -> int:
    from tickettune.searcher.export import export_best

    if args.onnx:
        from tickettune.trainables.ticket.onnx_export import require_onnx

        require_onnx()  # a missing extra is named before anything is copied
    for entry in export_best(args.experiment_dir, args.out, metric=args.metric, pareto=args.pareto, trial=args.trial):
        print(f"{entry['trial_id']}: {entry['metrics']} -> {entry['path']}")
        if args.onnx:
            _print_onnx(entry["path"])
    return 0


def _print_onnx(ticket_dir: str) -> None:
    from tickettune.trainables.ticket.onnx_export import export_ticket_onnx

    r = export_ticket_onnx(ticket_dir)
    print(
        f"wrote {r['path']} (inputs {r['inputs']}, outputs {r['outputs']}; ONNX Runtime vs PyTorch max |diff| "
        f"{r['max_abs_diff']:.2g})"
    )


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from tickettune.trainables.ticket.onnx_export import require_onnx

    require_onnx()
    for ticket_dir in args.ticket_dir:
        _print_onnx(ticket_dir)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from tickettune.searcher.predict import PredictArgs, predict_file

    out = predict_file(
        PredictArgs(
            model=args.model,
            input=args.input,
            out=args.out,
            text_columns=args.text_columns,
            batch_size=args.batch_size,
            max_length=args.max_length,
            precision=args.precision,
            progress=not args.no_progress,
        )
    )
    print(f"wrote {out['rows']} predictions to {out['path']}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from tickettune.searcher.report import write_report

    out = write_report(args.experiment_dir, out_dir=args.out)
    print("\n".join(f"wrote {p}" for p in [out["csv"], *out["plots"]]))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tickettune", description="EarlyBERT + PLD search on Ray")
    p.add_argument(
        "--debug", action="store_true", help="on an error, show the traceback too (also: TICKETTUNE_DEBUG=1)"
    )
    sub = p.add_subparsers(dest="command", required=True)

    f = sub.add_parser("finetune", help="fine-tune a model or ticket on a task or your own data, print dev metrics")
    f.add_argument("--model", default="minilm-l6", help="alias (minilm-l6), local dir, ticket dir or hub id")
    f.add_argument(
        "--task",
        default=None,
        help="a task name (default sst2): sst2 cola stsb mrpc qqp mnli qnli rte wnli squad squad_v2 wikitext",
    )
    own_data_args(f)
    f.add_argument("--max-train-samples", type=int, default=None)
    f.add_argument("--max-eval-samples", type=int, default=None)
    f.add_argument("--epochs", type=float, default=1.0)
    f.add_argument("--max-steps", type=int, default=None)
    f.add_argument("--lr", type=float, default=1e-4)
    f.add_argument("--batch-size", type=int, default=32)
    f.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="tokens per sequence (default: the task's: 384 for squad/squad_v2 as run_qa, else 64)",
    )
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--data-root", default=None, help="defaults to $TICKETTUNE_DATA or ../shared/data")
    f.add_argument("--json", default=None, help="also write the metrics here")
    f.add_argument("--precision", default="auto", choices=PRECISIONS, help=PRECISION_HELP)
    lever_args(f, fast_path=False)
    f.add_argument(
        "--group-by-length",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="batch sentences of similar length together (less padding; Trainer's group_by_length)",
    )
    f.add_argument(
        "--pad-to-multiple-of",
        type=int,
        default=0,
        help="pad train batches to a multiple of this many tokens: few shapes (default 0: off; 8 with --compile)",
    )
    f.add_argument("--compile", action="store_true", help="torch.compile the training step (slow to start on CPU)")
    distill_args(f)
    f.set_defaults(run=cmd_finetune)

    e = sub.add_parser("earlybert", help="one EarlyBERT(+PLD) run without Ray: search, draw, prune, train")
    e.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a FlowConfig field, e.g. --set task=sst2 --set pld=true",
    )
    e.add_argument("--out", default=None, help="write the ticket here")
    e.set_defaults(task=None)
    own_data_args(e)
    e.add_argument(
        "--precision",
        default=None,
        choices=PRECISIONS,
        help=PRECISION_HELP + FAST_PATH_NOTE % ("bf16-master where the CPU runs bf16 fast, else auto", "auto"),
    )
    lever_args(e, fast_path=True)
    distill_args(e)
    e.set_defaults(run=cmd_earlybert)

    address = {"default": None, "help": "join a running cluster (HOST:PORT); default: $RAY_ADDRESS or a local Ray"}
    ray_auth = {
        "default": None,
        "choices": ("token", "disabled"),
        "help": "the cluster's Ray token auth; default: $RAY_AUTH_MODE, else asked of the cluster",
    }
    verbose = {
        "action": "store_true",
        "help": "also show what Ray, Tune, transformers and Optuna log (load "
        "reports, checkpoint and snapshot messages, every trial result)",
    }
    sr = sub.add_parser("search", help="run a search from a YAML config (see spaces/README.md)")
    sr.add_argument("config")
    sr.add_argument("--address", **address)
    sr.add_argument("--ray-auth", **ray_auth)
    sr.add_argument("--wandb-project", default=None, help="log every trial to this W&B project")
    sr.add_argument("--num-samples", type=int, default=None, help="override search.num_samples")
    sr.add_argument("--overwrite", action="store_true", help="replace an experiment of the same name")
    sr.add_argument("-v", "--verbose", **verbose)
    sr.set_defaults(run=cmd_search)

    rs = sub.add_parser("resume", help="continue an interrupted search; finished trials are not rerun")
    rs.add_argument("experiment_dir")
    rs.add_argument("--address", **address)
    rs.add_argument("--ray-auth", **ray_auth)
    rs.add_argument("-v", "--verbose", **verbose)
    rs.set_defaults(run=cmd_resume)

    ex = sub.add_parser("export", help="write the best ticket (or every Pareto ticket) of a search")
    ex.add_argument("experiment_dir")
    ex.add_argument("--out", required=True)
    ex.add_argument("--metric", default=None)
    ex.add_argument("--pareto", action="store_true", help="every ticket on the Pareto front")
    ex.add_argument(
        "--trial",
        default=None,
        metavar="ID",
        help="this trial's ticket (an ID `tickettune report` prints on the front)",
    )
    ex.add_argument(
        "--onnx",
        action="store_true",
        help="also write model.onnx into each exported ticket (needs the extra: pip install 'tickettune[onnx]')",
    )
    ex.set_defaults(run=cmd_export)

    eo = sub.add_parser("export-onnx", help="write model.onnx (dynamic batch and sequence axes) into ticket folders")
    eo.add_argument("ticket_dir", nargs="+")
    eo.set_defaults(run=cmd_export_onnx)

    pr = sub.add_parser("predict", help="apply a ticket or model to a file: a label and score (or an answer) per row")
    pr.add_argument("model", help="ticket dir, fine-tuned model dir (with its head), alias or hub id")
    pr.add_argument("--input", required=True, help=".csv, .tsv, .jsonl or .parquet with a header")
    pr.add_argument("--out", required=True, help="predictions: .jsonl (or .json) or .csv")
    pr.add_argument(
        "--text-columns",
        default=None,
        help="one column, or two as a,b (a pair; QA: question,context); "
        "default: the ticket's task's columns, else text (QA: question,context)",
    )
    pr.add_argument("--batch-size", type=int, default=32)
    pr.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="tokens per sequence (QA: per window); default: the ticket's training length, else 128 (QA: 384)",
    )
    pr.add_argument("--precision", default="auto", choices=PRECISIONS, help=PRECISION_HELP)
    pr.add_argument("--no-progress", action="store_true", help="no progress bar")
    pr.set_defaults(run=cmd_predict)

    rp = sub.add_parser("report", help="print the trial table and write PNG plots")
    rp.add_argument("experiment_dir")
    rp.add_argument("--out", default=None, help="default: EXPERIMENT_DIR/report")
    rp.set_defaults(run=cmd_report)
    return p


def main(argv: list[str] | None = None) -> int:
    """Runs a command; any error becomes one line on stderr and exit status 2 (1 for an unexpected one), the
    traceback only with --debug or TICKETTUNE_DEBUG=1."""
    args = parser().parse_args(argv)
    debug = args.debug or os.environ.get("TICKETTUNE_DEBUG", "").strip() not in ("", "0")
    try:
        return args.run(args)
    except KeyboardInterrupt:
        if debug:
            raise
        print("tickettune: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the whole point: one message, not a traceback
        if debug:
            raise
        expected = isinstance(
            e, (CliError, ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError)
        )
        kind = "" if expected else f"{type(e).__name__}: "
        hint = "" if expected else " (run with --debug for the traceback)"
        print(f"tickettune {args.command}: error: {kind}{e}{hint}", file=sys.stderr)
        return 2 if expected else 1


if __name__ == "__main__":
    sys.exit(main())
