"""`tickettune finetune`: one plain fine-tune without Ray or EarlyBERT (the dense reference a user compares
against), optionally distilled from a teacher whose logits are cached first."""

from __future__ import annotations

import argparse
import json
import time

from .cli_args import CliError, distill_settings, task_setting


def torch_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def cmd_finetune(args: argparse.Namespace) -> int:
    from tickettune.trainables.model.build import load_model
    from tickettune.trainables.tasks import DataArgs, get_task
    from tickettune.trainables.training.loop import TrainConfig, train

    task = get_task(task_setting(args, "sst2"))
    problems = task.problems()
    if problems:
        raise CliError("; ".join(problems))
    distilled = distill_settings(args)
    from tickettune.trainables.training.precision import resolve_precision

    resolve_precision(args.precision, "cuda" if torch_cuda() else "cpu")  # fp16 without CUDA: refused before loading
    if args.pad_to_multiple_of < 0:
        raise CliError(f"--pad-to-multiple-of {args.pad_to_multiple_of}: must be >= 0 (0: off)")
    cfg = TrainConfig(
        lr=args.lr,
        epochs=args.epochs,
        max_steps=args.max_steps,
        seed=args.seed,
        precision=args.precision,
        embeddings=args.embeddings,
        dropout=args.dropout,
        compile=args.compile,
    )
    max_length = args.max_length or task.default_max_length  # SQuAD: run_qa's 384, else 64
    data = DataArgs(
        root=args.data_root,
        max_length=max_length,
        batch_size=args.batch_size,
        max_train_samples=args.max_train_samples,
        max_eval_samples=args.max_eval_samples,
        seed=args.seed,
        group_by_length=args.group_by_length,
        pad_to_multiple_of=args.pad_to_multiple_of or (8 if args.compile else None),
    )
    task.check(data)  # every row read and checked before the model loads
    model, tokenizer = load_model(args.model, head=task.head, num_labels=task.num_labels)
    from tickettune.trainables.training.device import place

    model = model.to(place("auto").device)  # the GPU when torch sees one (batches follow the model)
    train_loader = task.train_loader(tokenizer, data)
    dev = task.eval_data(tokenizer, data)
    rows = task.size(train_loader)
    callbacks, teacher = [], None
    if distilled:  # --teacher: its logits cached first, their time counted in the run's
        from tickettune.trainables.ticket.distill import Distill, distilled_loader

        d = Distill(distilled["distill_weight"], args.distill_temperature or 2.0, args.teacher, args.teacher_cache)
        train_loader, callbacks, teacher = distilled_loader(d, task, tokenizer, train_loader, data, args.precision)
        print(f"teacher {args.teacher}: its logits of every train row cached in {teacher.seconds:.1f}s", flush=True)
    print(
        f"fine-tuning {args.model} on {task.name}: {rows if rows >= 0 else 'streamed'} train rows, "
        f"{task.size(dev)} dev rows",
        flush=True,
    )
    result = train(model, train_loader, cfg, callbacks)
    result.seconds += teacher.seconds if teacher else 0.0
    start = time.perf_counter()
    metrics = task.evaluate(model, dev, args.precision)
    print(
        f"trained {result.steps} steps in {result.seconds:.1f}s "
        f"(loss {result.losses[0]:.4f} -> {sum(result.losses[-10:]) / len(result.losses[-10:]):.4f}); "
        f"eval {time.perf_counter() - start:.1f}s"
    )
    print("dev " + "  ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    if args.json:  # train_seconds: the teacher cache's included
        out = {"task": task.info(), "metrics": metrics, "steps": result.steps, "train_seconds": result.seconds}
        with open(args.json, "w") as f:
            json.dump({**out, "teacher": teacher.to_dict() if teacher else None}, f, indent=2)
    return 0
