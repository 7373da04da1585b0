"""HF `Trainer` as a user runs it on a GLUE task, and the data every arm of the time benchmarks trains on: the
reference arm of scripts/bench/time_to_accuracy.py; its loaders also feed hf_search.py."""

from __future__ import annotations

import tempfile
import time

import torch

from tickettune.trainables.model.build import model_path
from tickettune.trainables.tasks import DataArgs, get_task
from tickettune.trainables.tasks.data import as_tokenizer
from tickettune.trainables.tasks.glue import glue_metrics
from tickettune.trainables.training.precision import Precision

from .bench import hf_training_args


def arm_trainer(args, task: str, seed: int, epochs: float, every: int, compile: bool = False) -> dict:
    """HF Trainer as a user runs it: the stock model class, group_by_length, bf16 where fast; `compile`:
    torch_compile=True (inductor; its compile time falls inside the measured train())."""
    from transformers import AutoModelForSequenceClassification, Trainer, TrainerCallback

    spec = get_task(task)
    amp = Precision.of(args.precision)
    train_loader, dev_loader = loaders(args, task, as_tokenizer(args.model), seed)
    kwargs = {"num_labels": spec.num_labels}
    if spec.head == "regression":
        kwargs["problem_type"] = "regression"
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_path(args.model), attn_implementation="sdpa", **kwargs
    )
    curve: list[dict] = []
    clock = {"start": 0.0, "eval": 0.0}

    class Curve(TrainerCallback):
        def on_train_begin(self, a, state, control, **kw):
            clock["start"] = time.perf_counter()

        def on_evaluate(self, a, state, control, metrics=None, **kw):
            clock["eval"] += metrics.get("eval_runtime", 0.0)
            now = time.perf_counter() - clock["start"]
            curve.append(
                {
                    "step": state.global_step,
                    "train_seconds": now - clock["eval"],
                    "total_seconds": now,
                    "metric": metrics[f"eval_{spec.main_metric}"],
                }
            )

    def compute_metrics(pred):
        return glue_metrics(task, pred.predictions, pred.label_ids)

    with tempfile.TemporaryDirectory() as out:
        targs = hf_training_args(
            out,
            batch_size=args.batch_size,
            lr=args.lr,
            epochs=epochs,
            amp=amp,
            seed=seed,
            train_sampling_strategy="group_by_length",
            eval_strategy="steps",
            eval_steps=every,
            torch_compile=compile,
        )
        trainer = Trainer(
            model=model,
            args=targs,
            train_dataset=train_loader.dataset,
            eval_dataset=first(dev_loader).dataset,
            data_collator=train_loader.collate_fn,
            compute_metrics=compute_metrics,
            callbacks=[Curve()],
        )
        start = time.perf_counter()
        result = trainer.train()
        final = trainer.evaluate()
        total = time.perf_counter() - start
    train_seconds = total - clock["eval"]
    curve.append(
        {
            "step": result.global_step,
            "train_seconds": train_seconds,
            "total_seconds": total,
            "metric": final[f"eval_{spec.main_metric}"],
        }
    )
    return {
        "steps": result.global_step,
        "search_steps": 0,
        "train_seconds": train_seconds,
        "total_seconds": total,
        "metric": float(final[f"eval_{spec.main_metric}"]),
        "curve": curve,
    }


def loaders(args, task: str, tokenizer, seed: int, pad_to_multiple_of: int | None = None):
    """(train loader, the task's dev data), length-grouped train batches, as every arm trains."""
    t = get_task(task)
    data = DataArgs(
        root=args.data_root,
        max_length=args.max_length,
        batch_size=args.batch_size,
        max_train_samples=args.train_samples,
        max_eval_samples=args.eval_samples,
        seed=seed,
        group_by_length=True,
        pad_to_multiple_of=pad_to_multiple_of,
    )
    return t.train_loader(tokenizer, data), t.eval_data(tokenizer, data)


def first(dev):
    """The main dev loader (GLUE tasks hand back {split: loader})."""
    return next(iter(dev.values())) if isinstance(dev, dict) else dev
