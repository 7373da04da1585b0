"""The `tickettune` command."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # trainables.precision.PRECISIONS, without importing torch here
PRECISION_HELP = "autocast dtype: auto = bf16 where the CPU (AMX/AVX512-BF16) or GPU runs it fast, else fp32"


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _key_values(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set expects KEY=VALUE, got {pair!r}")
        out[key] = _parse_value(value)
    return out


def cmd_finetune(args: argparse.Namespace) -> int:
    from tickettune.trainables.data import TASKS, glue_loader
    from tickettune.trainables.device import place
    from tickettune.trainables.model import load_model
    from tickettune.trainables.train import TrainConfig, evaluate, train

    if args.task not in TASKS:
        raise SystemExit(f"unknown task {args.task!r}; expected one of {sorted(TASKS)}")
    spec = TASKS[args.task]
    cfg = TrainConfig(lr=args.lr, epochs=args.epochs, max_steps=args.max_steps, seed=args.seed,
                      precision=args.precision)
    model, tokenizer = load_model(args.model, head=spec.head, num_labels=spec.num_labels)
    model = model.to(place("auto").device)  # the GPU when torch sees one (batches follow the model)
    train_loader = glue_loader(args.task, "train", tokenizer, batch_size=args.batch_size,
                               max_length=args.max_length, max_samples=args.max_train_samples,
                               shuffle=True, seed=args.seed, root=args.data_root)
    dev_loader = glue_loader(args.task, "dev", tokenizer, batch_size=64, max_length=args.max_length,
                             max_samples=args.max_eval_samples, shuffle=False, root=args.data_root)
    print(f"fine-tuning {args.model} on {args.task}: {len(train_loader.dataset)} train rows, "
          f"{len(dev_loader.dataset)} dev rows", flush=True)
    result = train(model, train_loader, cfg)
    start = time.perf_counter()
    metrics = evaluate(model, dev_loader, args.task, args.precision)
    print(f"trained {result.steps} steps in {result.seconds:.1f}s "
          f"(loss {result.losses[0]:.4f} -> {sum(result.losses[-10:]) / len(result.losses[-10:]):.4f}); "
          f"eval {time.perf_counter() - start:.1f}s")
    print("dev " + "  ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"metrics": metrics, "steps": result.steps, "train_seconds": result.seconds}, f, indent=2)
    return 0


def cmd_earlybert(args: argparse.Namespace) -> int:
    from tickettune.trainables.flow import FlowConfig, run_flow

    settings = _key_values(args.set)
    if args.precision is not None:
        settings["precision"] = args.precision
    cfg = FlowConfig.from_dict(settings)
    result = run_flow(cfg, ticket_dir=args.out)
    print(f"{result.metric_name}={result.val_metric:.4f} converged={result.converged} "
          f"early_bird_step={result.early_bird_step} relative_cost={result.relative_cost:.3f} "
          f"seconds={ {k: round(v, 1) for k, v in result.seconds.items()} }")
    if result.ticket_dir:
        print(f"ticket written to {result.ticket_dir}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from tickettune.spaces import load_spec
    from tickettune.searcher.search import run_search

    spec = load_spec(args.config)  # every problem in the config is reported before Ray starts
    if args.wandb_project:
        spec.search.wandb_project = args.wandb_project
    if args.num_samples:
        spec.search.num_samples = args.num_samples
    result = run_search(spec, address=args.address, overwrite=args.overwrite)
    print(f"experiment: {result.experiment_dir}")
    if result.exported:
        print(f"best ticket(s): {result.exported}")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from tickettune.searcher.resume import resume_search

    result = resume_search(args.experiment_dir, address=args.address)
    print(f"experiment: {result.experiment_dir}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from tickettune.searcher.export import export_best

    for entry in export_best(args.experiment_dir, args.out, metric=args.metric, pareto=args.pareto):
        print(f"{entry['trial_id']}: {entry['metrics']} -> {entry['path']}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from tickettune.searcher.report import write_report

    out = write_report(args.experiment_dir, out_dir=args.out)
    print("\n".join(f"wrote {p}" for p in [out["csv"], *out["plots"]]))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tickettune", description="EarlyBERT + PLD search on Ray")
    sub = p.add_subparsers(dest="command", required=True)

    f = sub.add_parser("finetune", help="fine-tune a model or ticket on a GLUE task, print dev metrics")
    f.add_argument("--model", default="minilm-l6", help="alias (minilm-l6), local dir, ticket dir or hub id")
    f.add_argument("--task", default="sst2")
    f.add_argument("--max-train-samples", type=int, default=None)
    f.add_argument("--max-eval-samples", type=int, default=None)
    f.add_argument("--epochs", type=float, default=1.0)
    f.add_argument("--max-steps", type=int, default=None)
    f.add_argument("--lr", type=float, default=1e-4)
    f.add_argument("--batch-size", type=int, default=32)
    f.add_argument("--max-length", type=int, default=64)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--data-root", default=None, help="defaults to $TICKETTUNE_DATA or ../shared/data")
    f.add_argument("--json", default=None, help="also write the metrics here")
    f.add_argument("--precision", default="auto", choices=PRECISIONS, help=PRECISION_HELP)
    f.set_defaults(run=cmd_finetune)

    e = sub.add_parser("earlybert", help="one EarlyBERT(+PLD) run without Ray: search, draw, prune, train")
    e.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a FlowConfig field, e.g. --set task=sst2 --set pld=true")
    e.add_argument("--out", default=None, help="write the ticket here")
    e.add_argument("--precision", default=None, choices=PRECISIONS, help=PRECISION_HELP + " (default: auto)")
    e.set_defaults(run=cmd_earlybert)

    address = {"default": None, "help": "join a running cluster (HOST:PORT); default: $RAY_ADDRESS or a local Ray"}
    sr = sub.add_parser("search", help="run a search from a YAML config (see spaces/README.md)")
    sr.add_argument("config")
    sr.add_argument("--address", **address)
    sr.add_argument("--wandb-project", default=None, help="log every trial to this W&B project")
    sr.add_argument("--num-samples", type=int, default=None, help="override search.num_samples")
    sr.add_argument("--overwrite", action="store_true", help="replace an experiment of the same name")
    sr.set_defaults(run=cmd_search)

    rs = sub.add_parser("resume", help="continue an interrupted search; finished trials are not rerun")
    rs.add_argument("experiment_dir")
    rs.add_argument("--address", **address)
    rs.set_defaults(run=cmd_resume)

    ex = sub.add_parser("export", help="write the best ticket (or every Pareto ticket) of a search")
    ex.add_argument("experiment_dir")
    ex.add_argument("--out", required=True)
    ex.add_argument("--metric", default=None)
    ex.add_argument("--pareto", action="store_true")
    ex.set_defaults(run=cmd_export)

    rp = sub.add_parser("report", help="print the trial table and write PNG plots")
    rp.add_argument("experiment_dir")
    rp.add_argument("--out", default=None, help="default: EXPERIMENT_DIR/report")
    rp.set_defaults(run=cmd_report)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
