"""Fine-tune an exported tickettune ticket with Hugging Face `Trainer` on a GLUE task, without tickettune.

The model is loaded and saved through plain transformers APIs only (the ticket carries its own model
code: `trust_remote_code=True`); the data is a local GLUE TSV read by `datasets`. Needs torch,
transformers, accelerate (Trainer requires it) and datasets; tickettune need not be installed.

    python scripts/examples/finetune_ticket_with_trainer.py runs/export/best --task sst2 --epochs 1 --out runs/sst2-ft

An MLM ticket (pre-trained by tickettune) works too: it gets a new classification head.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np

# task -> (folder under <data-dir>, text columns, label column, number of labels (1: regression), metric,
#          column names when the file has no header)
TASKS = {
    "sst2": ("SST-2", ("sentence",), "label", 2, "accuracy", None),
    "cola": ("CoLA", ("sentence",), "label", 2, "matthews_correlation", ("source", "label", "original", "sentence")),
    "stsb": ("STS-B", ("sentence1", "sentence2"), "score", 1, "pearson", None),
}


def metric(name: str, predictions: np.ndarray, labels: np.ndarray) -> float:
    if name == "pearson":
        return float(np.corrcoef(predictions.reshape(-1), labels)[0, 1])
    pred = predictions.argmax(-1)
    if name == "accuracy":
        return float((pred == labels).mean())
    tp, tn = np.sum((pred == 1) & (labels == 1)), np.sum((pred == 0) & (labels == 0))
    fp, fn = np.sum((pred == 1) & (labels == 0)), np.sum((pred == 0) & (labels == 1))
    denom = float(np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))
    return float((tp * tn - fp * fn) / denom) if denom else 0.0


def load_split(data_dir: Path, task: str, split: str, limit: int | None):
    from datasets import Value, load_dataset

    folder, _, label, num_labels, _, names = TASKS[task]
    path = data_dir / folder / f"{split}.tsv"
    if not path.is_file():
        raise SystemExit(f"error: {path} not found (GLUE {folder} TSVs go under --data-dir/{folder}/)")
    extra = {"column_names": list(names)} if names else {}
    ds = load_dataset("csv", data_files=str(path), split="train", delimiter="\t", quoting=csv.QUOTE_NONE, **extra)
    ds = ds.rename_column(label, "labels") if label != "labels" else ds
    ds = ds.cast_column("labels", Value("float32" if num_labels == 1 else "int64"))
    return ds.select(range(min(limit, len(ds)))) if limit else ds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("ticket", help="a ticket folder (tickettune export --out ...)")
    p.add_argument("--task", choices=sorted(TASKS), default="sst2")
    p.add_argument(
        "--data-dir",
        default=os.path.join(os.environ.get("TICKETTUNE_DATA", "data"), "glue"),
        help="folder holding SST-2/, CoLA/, STS-B/ (default: $TICKETTUNE_DATA/glue)",
    )
    p.add_argument("--out", required=True, help="Trainer output; the fine-tuned model goes to OUT/final")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--max-steps", type=int, default=-1, help="overrides --epochs when > 0")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--max-train-samples", type=int, default=None)
    p.add_argument("--max-eval-samples", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if importlib.util.find_spec("accelerate") is None:
        print("error: transformers.Trainer needs accelerate: pip install 'accelerate>=1.1'", file=sys.stderr)
        return 2
    ticket = Path(args.ticket)
    if not (ticket / "config.json").is_file():
        print(f"error: {ticket} has no config.json: not a model folder", file=sys.stderr)
        return 2

    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    _, text, _, num_labels, metric_name, _ = TASKS[args.task]
    tokenizer = AutoTokenizer.from_pretrained(ticket, trust_remote_code=True)  # it reads config.json too
    # a ticket saved with another head (MLM, or another label count) gets a fresh classifier
    model = AutoModelForSequenceClassification.from_pretrained(
        ticket,
        trust_remote_code=True,
        num_labels=num_labels,
        ignore_mismatched_sizes=True,
        problem_type="regression" if num_labels == 1 else "single_label_classification",
    )

    def tokenize(batch):
        return tokenizer(*[batch[c] for c in text], truncation=True, max_length=args.max_length)

    data_dir = Path(args.data_dir)
    train, dev = (
        load_split(data_dir, args.task, s, n).map(tokenize, batched=True)
        for s, n in (("train", args.max_train_samples), ("dev", args.max_eval_samples))
    )
    training = TrainingArguments(
        output_dir=args.out,
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=64,
        learning_rate=args.lr,
        warmup_steps=0.06,  # < 1: a fraction of the steps
        seed=args.seed,
        report_to=[],
        save_strategy="no",
        logging_steps=50,
    )
    trainer = Trainer(
        model=model,
        args=training,
        train_dataset=train,
        eval_dataset=dev,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=lambda p: {metric_name: metric(metric_name, p.predictions, p.label_ids)},
    )
    result = trainer.train()
    scores = trainer.evaluate()
    final = Path(args.out) / "final"
    trainer.save_model(str(final))  # config, weights, the ticket's model code and the tokenizer
    summary = {
        "task": args.task,
        "train_loss": result.training_loss,
        "steps": result.global_step,
        metric_name: scores[f"eval_{metric_name}"],
        "model": str(final),
    }
    print(json.dumps(summary))
    (Path(args.out) / "finetune_summary.json").write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
