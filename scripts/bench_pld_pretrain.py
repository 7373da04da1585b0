#!/usr/bin/env python
"""MLM pre-training from scratch, PLD vs baseline, for the same wall-clock budget each.

Data: WikiText-2 as shipped in the shared data folder (the train split is not there). Training uses
the blocks of valid.txt (shuffled, 15% dynamic masking); the held-out score uses test.txt — a
different set of articles — cut into the same blocks and masked once with a fixed seed, so every arm
is scored on exactly the same masked tokens (a seeded subset of `--eval-blocks` blocks; 0 = all).
Reported: MLM loss per masked token and its perplexity on those blocks, at full depth (PLD is off in
eval); "train" is the mean training loss of the last 20 steps (for PLD: of the thinned network).

Model: a small pre-LN BERT (the layout PLD is meant for) with the masked-only MLM head, trained with
`train.train` (AdamW, weight decay 0.01, clipping at 1.0; lr schedule below).

Paired settings (methods.md, scaled down): PLD trains at a higher peak lr than the baseline
(paper: 1e-3 vs 4e-4 for BERT-base at batch 4k, 2.5x). Defaults here: 5e-4 for the baseline, a usual
peak for a small pre-LN BERT at batch 32, and 1e-3 for PLD (2x: a conservative step up, not tuned;
--lr-base/--lr-pld change them). The optional arm ``base_hilr`` trains the baseline at the PLD lr, to
separate the effect of the lr from that of dropping layers.

Budget and schedule: each arm gets `--seconds` of training wall-clock (evaluation not included), and
its lr schedule runs on that clock, not on a step count (as in budget-limited "cramming" setups):
linear warm-up over the first 2% of the budget, then linear decay to 0 at the end of it. Every arm
thus ends its schedule exactly when its time is up, however fast its steps are. PLD's γ needs a step
count: a short calibration (a throw-away copy of the model) times a few PLD steps at the settled
rate, T = seconds / time per step, and γ = 100 / T (the heuristic γ ≈ 100/T: θ within e^-5 of θ̄
after 5% of training) unless `--gamma` is given. The estimate only decides how soon θ settles.

    python scripts/bench_pld_pretrain.py --seconds 600 --json results/pld_pretrain.json
"""
from __future__ import annotations

import argparse
import copy
import sys
import platform
import statistics
import time
from pathlib import Path

import torch

from tickettune.trainables.data import mlm_loader
from tickettune.trainables.model import ScratchConfig, count_parameters, scratch_model
from tickettune.trainables.pld import PLDCallback, PLDConfig, attach, detach, gamma_for_steps
from tickettune.trainables.train import Callback, TrainConfig, make_optimizer, mlm_eval, train
sys.path.insert(0, str(Path(__file__).parent))
from _bench import finish  # noqa: E402

ARMS = ("base", "pld", "base_hilr")


class BudgetSchedule(Callback):
    """Sets the lr from the elapsed fraction of a wall-clock budget and stops training when it is spent.

    lr = peak · min(f / warmup, (1 − f) / (1 − warmup)), f = elapsed / seconds, clamped at 0. It is written
    into the optimizer before every step, overriding `train`'s step-based schedule (run that one with
    warmup_ratio=0 and a step count far beyond reach, so it never acts)."""

    def __init__(self, optimizer: torch.optim.Optimizer, seconds: float, warmup_ratio: float):
        self.optimizer, self.seconds, self.warmup = optimizer, seconds, warmup_ratio
        self.peaks = [g["lr"] for g in optimizer.param_groups]
        self.start: float | None = None

    def fraction(self) -> float:
        return 0.0 if self.start is None else (time.perf_counter() - self.start) / self.seconds

    def factor(self) -> float:
        f = self.fraction()
        up = f / self.warmup if self.warmup > 0 else 1.0
        return max(0.0, min(up, (1.0 - f) / (1.0 - self.warmup)))

    def before_step(self, step: int) -> None:
        if self.start is None:
            self.start = time.perf_counter()
        k = self.factor()
        for group, peak in zip(self.optimizer.param_groups, self.peaks):
            group["lr"] = peak * max(k, 1e-3)  # not exactly 0 at the first step

    def after_step(self, step: int, logs: dict) -> bool:
        logs["lr"] = self.optimizer.param_groups[0]["lr"]
        return self.fraction() >= 1.0


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=300.0, help="training wall-clock budget of each arm")
    ap.add_argument("--arms", default="base,pld", help=f"comma-separated, from {ARMS}")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ffn", type=int, default=None, help="default: 4 * hidden")
    ap.add_argument("--lr-base", type=float, default=5e-4)
    ap.add_argument("--lr-pld", type=float, default=1e-3)
    ap.add_argument("--warmup-ratio", type=float, default=0.02)
    ap.add_argument("--theta-bar", type=float, default=0.5)
    ap.add_argument("--gamma", type=float, default=None, help="default: 100 / expected PLD steps")
    ap.add_argument("--calib-steps", type=int, default=6, help="timed PLD steps to estimate T (for γ)")
    ap.add_argument("--eval-blocks", type=int, default=512, help="held-out test.txt blocks scored (0: all)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-root", default=None, help="shared data folder (default: $TICKETTUNE_DATA, ../shared/data)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    args.ffn = args.ffn or 4 * args.hidden
    args.arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    bad = [a for a in args.arms if a not in ARMS]
    if bad or not args.arms:
        ap.error(f"unknown arm(s) {bad}; choose from {ARMS}")
    if args.seconds <= 0 or args.calib_steps < 1:
        ap.error("--seconds must be > 0 and --calib-steps >= 1")
    return args


def arm_settings(arm: str, args) -> tuple[bool, float]:
    """(uses PLD, peak lr)."""
    return {"base": (False, args.lr_base), "pld": (True, args.lr_pld), "base_hilr": (False, args.lr_pld)}[arm]


def fresh_model(args):
    torch.manual_seed(args.seed)
    cfg = ScratchConfig(layers=args.layers, heads=args.heads, hidden=args.hidden, ffn=args.ffn,
                        max_positions=max(512, args.seq_len), pre_ln=True)
    return scratch_model(cfg, head="mlm")


def train_loader(tok, args):
    return mlm_loader(tok, "valid", batch_size=args.batch_size, max_length=args.seq_len, seed=args.seed,
                      root=args.data_root)


def pld_time_per_step(model, tok, args, gamma: float) -> float:
    """Median seconds of a PLD training step at the settled rate, on a throw-away copy of `model`."""
    model = copy.deepcopy(model)
    pld = attach(model, PLDConfig(theta_bar=args.theta_bar, gamma=gamma, seed=args.seed))
    opt = make_optimizer(model, TrainConfig(lr=1e-4))
    model.train()
    times = []
    for i, batch in enumerate(train_loader(tok, args)):
        if i >= args.calib_steps + 2:  # the first two steps are warm-up
            break
        pld.set_step(int(30 / gamma) + i if gamma > 0 else 0)
        t0 = time.perf_counter()
        model(**batch).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(args) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    model0, tok = fresh_model(args)
    n_params = count_parameters(model0)
    eval_loader = mlm_loader(tok, "test", batch_size=args.batch_size, max_length=args.seq_len, seed=12345,
                             root=args.data_root, shuffle=False, max_samples=args.eval_blocks or None)
    eval_batches = list(eval_loader)  # masked once: every arm sees the same held-out targets
    calib = None
    if any(arm_settings(a, args)[0] for a in args.arms) and args.gamma is None:
        calib = pld_time_per_step(model0, tok, args, 0.001)
    del model0
    results = {}
    for arm in args.arms:
        use_pld, lr = arm_settings(arm, args)
        model, _ = fresh_model(args)
        cfg = TrainConfig(lr=lr, warmup_ratio=0.0, max_steps=10**9, weight_decay=0.01, seed=args.seed,
                          progress=False, log_every=0)
        optimizer = make_optimizer(model, cfg)
        budget = BudgetSchedule(optimizer, args.seconds, args.warmup_ratio)
        callbacks: list[Callback] = [budget]
        gamma = expected_steps = None
        if use_pld:
            expected_steps = int(args.seconds / calib) if calib else None
            gamma = args.gamma if args.gamma is not None else gamma_for_steps(max(1, expected_steps))
            pld = attach(model, PLDConfig(theta_bar=args.theta_bar, gamma=gamma, seed=args.seed))
            callbacks.insert(0, PLDCallback(pld, num_layers=args.layers))
        res = train(model, train_loader(tok, args), cfg, callbacks=callbacks, optimizer=optimizer)
        ev = mlm_eval(model, eval_batches)
        row = {"pld": use_pld, "lr": lr, "steps": res.steps, "seconds": res.seconds, "samples": res.samples,
               "samples_per_sec": res.samples / res.seconds, "train_loss_last": statistics.fmean(res.losses[-20:]),
               "heldout_mlm_loss": ev["mlm_loss"], "heldout_perplexity": ev["perplexity"]}
        if use_pld:
            row.update(gamma=gamma, expected_steps=expected_steps, calib_sec_per_step=calib,
                       final_theta=pld.theta(), layer_fraction=pld.realized_fraction())
            detach(model)
        results[arm] = row
        print(f"[{arm}] {res.steps} steps in {res.seconds:.0f}s: held-out MLM loss {ev['mlm_loss']:.4f}", flush=True)
    masked = sum(int((b["labels"] != -100).sum()) for b in eval_batches)
    return {"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "machine": {"platform": platform.platform(), "torch": torch.__version__,
                        "threads": torch.get_num_threads()},
            "parameters": n_params,
            "eval": {"split": "wikitext-2 test.txt", "blocks": sum(len(b["input_ids"]) for b in eval_batches),
                     "masked_tokens": masked},
            "arms": results}


def print_table(res: dict) -> None:
    c = res["config"]
    print(f"\npre-LN BERT {c['layers']}L H{c['hidden']} A{c['heads']} F{c['ffn']} ({res['parameters'] / 1e6:.1f}M "
          f"params), seq {c['seq_len']}, batch {c['batch_size']}, {c['seconds']:.0f}s per arm, "
          f"{res['machine']['threads']} threads; held-out: {res['eval']['blocks']} test.txt blocks, "
          f"{res['eval']['masked_tokens']} masked tokens")
    head = f"{'arm':<10}{'lr':>8}{'steps':>7}{'samples/s':>11}{'layers':>8}{'gamma':>9}{'train':>8}{'MLM loss':>10}{'ppl':>9}"
    print(head)
    for arm, r in res["arms"].items():
        frac = f"{r['layer_fraction']:.3f}" if r["pld"] else "1"
        gamma = f"{r['gamma']:.2e}" if r["pld"] else "-"
        print(f"{arm:<10}{r['lr']:>8.0e}{r['steps']:>7}{r['samples_per_sec']:>11.1f}{frac:>8}{gamma:>9}"
              f"{r['train_loss_last']:>8.3f}{r['heldout_mlm_loss']:>10.4f}{r['heldout_perplexity']:>9.1f}")


def main(argv=None) -> dict:
    args = parse_args(argv)
    return finish(run(args), args.json, print_table)


if __name__ == "__main__":
    main()
