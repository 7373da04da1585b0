"""The `random` arm of scripts/bench/time_to_accuracy.py: a ticket of the EarlyBERT ticket's per-layer widths with
its heads and FFN neurons drawn at random, no search, trained the whole budget: what the search itself buys."""

from __future__ import annotations

import dataclasses
import math
import time

import torch

from tickettune.trainables.earlybert.draw import make_ticket, snapshot
from tickettune.trainables.model.build import load_model
from tickettune.trainables.model.encoder import encoder_of
from tickettune.trainables.tasks import get_task
from tickettune.trainables.training.loop import TrainConfig, train

from .curves import EvalEvery
from .trainer_arm import loaders


def arm_random(args, task: str, seed: int, epochs: float, every: int, layout: dict) -> dict:
    """A ticket at `layout`'s widths with random heads and neurons, rewound, trained the whole budget."""
    spec = get_task(task)
    torch.manual_seed(seed)
    model, tokenizer = load_model(args.model, head=spec.head, num_labels=spec.num_labels)
    train_loader, dev_loader = loaders(args, task, tokenizer, seed, args.sets.get("pad_to_multiple_of"))
    g = torch.Generator().manual_seed(seed)
    layers = encoder_of(model).blocks
    heads = [_random_mask(l.num_heads, k, g) for l, k in zip(layers, layout["heads_per_layer"])]
    ffn = [_random_mask(l.ffn_width, k, g) for l, k in zip(layers, layout["ffn_per_layer"])]
    ticket = make_ticket(snapshot(model), model, heads, ffn, rewind=True)
    del model
    budget = max(1, math.ceil(epochs * len(train_loader)))
    evals = EvalEvery(every, budget, lambda: spec.evaluate(ticket, dev_loader, args.precision)[spec.main_metric])
    start = time.perf_counter()
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"lr", "max_steps", "seed", "warmup_ratio"}
    extra = {k: v for k, v in args.sets.items() if k in train_fields}
    res = train(
        ticket,
        train_loader,
        TrainConfig(
            **{
                "lr": args.lr,
                "max_steps": budget,
                "seed": seed,
                "warmup_ratio": 0.1,
                "progress": False,
                "precision": args.precision,
                **extra,
            }
        ),
        [evals],
    )
    metric = spec.evaluate(ticket, dev_loader, args.precision)[spec.main_metric]
    total = time.perf_counter() - start
    train_seconds = res.seconds - evals.eval_seconds
    curve = evals.curve + [{"step": res.steps, "train_seconds": train_seconds, "metric": metric}]
    return {
        "steps": res.steps,
        "search_steps": 0,
        "train_seconds": train_seconds,
        "total_seconds": total,
        "metric": float(metric),
        "ticket_layout": layout,
        "curve": curve,
    }


def _random_mask(n: int, keep: int, g: torch.Generator) -> torch.Tensor:
    mask = torch.zeros(n, dtype=torch.bool)
    mask[torch.randperm(n, generator=g)[:keep]] = True
    return mask
