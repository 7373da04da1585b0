"""One training step of a ticket and of its dense model, timed in phases, rounds alternating which goes first: the
timing of bench/ticket_speed.py, and its variants (each a change made to both models alike)."""

from __future__ import annotations

import copy
import resource
import statistics
import time

import torch

from tickettune.trainables.training.loop import TrainConfig, make_optimizer
from tickettune.trainables.training.optimizer import TrainOptimizer
from tickettune.trainables.training.precision import Precision

from .bench import now

# base: the recipe as trained; unrounded: FFN widths not rounded (the caller builds that ticket); foreach: AdamW's
# multi-tensor path; no_dropout, frozen_word_emb and fast_path (both): recipe changes, measured, not settings
VARIANTS = ("base", "unrounded", "foreach", "no_dropout", "frozen_word_emb", "fast_path")


def prepare(model, variant: str, fused: bool, amp: Precision):
    """A copy of `model` in `variant` (fast_path: no dropout + frozen word embedding) and its optimizer, which
    for bf16-master casts the working weights and keeps fp32 masters, as train.train's does."""
    model = copy.deepcopy(model).train()
    if variant in ("no_dropout", "fast_path"):
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0  # the attention-probability dropout reads attention.self.dropout.p too
    frozen = variant in ("frozen_word_emb", "fast_path")  # make_optimizer puts the embedding in this mode
    cfg = TrainConfig(
        lr=2e-5, fused=fused and variant != "foreach", precision=amp.name, embeddings="freeze" if frozen else "train"
    )
    opt = make_optimizer(model, cfg)
    params = [p for g in opt.param_groups for p in g["params"]]
    return model, opt, params


def step(model, opt, params, batch, amp: Precision) -> tuple[float, float, float, float, int]:
    """Wall seconds of (forward, backward, clip + optimizer + zero_grad), the process's CPU seconds and
    minor page faults for the whole step. The forward runs under `amp.train_autocast()`, as train.train does."""
    dev = batch["input_ids"].device
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    c0 = time.process_time()
    t0 = now(dev)
    with amp.train_autocast():
        loss = model(**batch).loss
    t1 = now(dev)
    loss.backward()
    t2 = now(dev)
    if isinstance(opt, TrainOptimizer):  # fp32 master grads, as train.train clips them
        opt.clip_grad_norm_(1.0)
    else:
        torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    t3 = now(dev)
    return (
        t1 - t0,
        t2 - t1,
        t3 - t2,
        time.process_time() - c0,
        resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults,
    )


def fused_available() -> bool:
    p = torch.nn.Parameter(torch.zeros(2))
    p.grad = torch.zeros(2)
    try:
        torch.optim.AdamW([p], fused=True).step()
        return True
    except (RuntimeError, TypeError):
        return False


def time_variant(args, variant: str, dense0, ticket0, batches, fused: bool, amp: Precision) -> dict:
    arms = {"dense": prepare(dense0, variant, fused, amp), "ticket": prepare(ticket0, variant, fused, amp)}
    rows = {arm: [] for arm in arms}
    for i in range(args.warmup + args.steps):
        batch = batches[i % len(batches)]
        order = ("dense", "ticket") if i % 2 == 0 else ("ticket", "dense")  # no arm always first
        got = {arm: step(*arms[arm], batch, amp) for arm in order}
        if i >= args.warmup:
            for arm in arms:
                rows[arm].append(got[arm])
    med = statistics.median
    res = {"optimizer": "fused" if fused and variant != "foreach" else "foreach"}
    for arm, r in rows.items():
        total = [sum(x[:3]) for x in r]
        res[arm] = {
            "step_ms": 1e3 * med(total),
            "step_ms_mean": 1e3 * statistics.fmean(total),
            "step_ms_min": 1e3 * min(total),
            "step_ms_all": [1e3 * t for t in total],
            "cpu_ms": 1e3 * med(x[3] for x in r),
            "forward_ms": 1e3 * med(x[0] for x in r),
            "backward_ms": 1e3 * med(x[1] for x in r),
            "optimizer_ms": 1e3 * med(x[2] for x in r),
            "page_faults": int(med(x[4] for x in r)),
            "trainable_parameters": sum(p.numel() for p in arms[arm][2]),
        }
    d, t = res["dense"], res["ticket"]
    res["step_time_ratio"] = t["step_ms"] / d["step_ms"]
    # each round's two steps ran back to back: their ratio is less exposed to slow drifts in load
    res["round_ratio_median"] = med(a / b for a, b in zip(t["step_ms_all"], d["step_ms_all"]))
    res["cpu_time_ratio"] = t["cpu_ms"] / d["cpu_ms"]
    res["phase_ratios"] = {k: t[f"{k}_ms"] / d[f"{k}_ms"] for k in ("forward", "backward", "optimizer")}
    return res
