#!/usr/bin/env python
"""MLM pre-training from scratch: time to the baseline's loss, for PLD, EarlyBERT and both, same wall-clock each.

Arms (every one trains `--seconds` of wall-clock; held-out scoring is paused out of it):
* ``base``          — the dense pre-LN BERT at its lr (`--lr-base`);
* ``base_hilr``     — the same at PLD's higher lr (`--lr-pld`): separates the lr's effect from dropping layers;
* ``pld``           — Progressive Layer Dropping at `--lr-pld`;
* ``earlybert``     — EarlyBERT: slimming coefficients under L1 from the first step; at the early bird (or
  at `--search-fraction` of the budget) the masks are drawn, the model pruned with the coefficients folded
  in, and the ticket trains on with the AdamW moments pruned like the weights (ticket_mode "continue"), on
  the same clock and lr schedule, at `--lr-base`;
* ``earlybert_pld`` — the same with PLD in both phases, at `--lr-pld`.
Reported per arm: its held-out curve (every `--eval-every` training seconds), its final held-out loss, and
the training seconds at which it first reaches the ``base`` arm's final held-out loss (linear between the
two scores that bracket it), over ``base``'s own such time: the figure PLD's paper reports ("2.5x faster
to similar accuracy").

Data: WikiText-2 as shipped in the shared data folder (the train split is not there). Training uses
the blocks of valid.txt (shuffled, 15% dynamic masking); the held-out score uses test.txt — a
different set of articles — cut into the same blocks and masked once with a fixed seed, so every arm
is scored on exactly the same masked tokens (a seeded subset of `--eval-blocks` blocks; 0 = all).
Reported: MLM loss per masked token and its perplexity on those blocks, at full depth (PLD is off in
eval); "train" is the mean training loss of the last 20 steps (for PLD: of the thinned network).
Precision: the project's default (`--precision auto`: bf16 on this CPU), for training and scoring.

Model: a small pre-LN BERT (the layout PLD is meant for) with the masked-only MLM head, trained with
`train.train` (AdamW, weight decay 0.01, clipping at 1.0; lr schedule below).

Paired settings (methods.md, scaled down): PLD trains at a higher peak lr than the baseline
(paper: 1e-3 vs 4e-4 for BERT-base at batch 4k, 2.5x). Defaults here: 5e-4 for the baseline, a usual
peak for a small pre-LN BERT at batch 32, and 1e-3 for PLD (2x: a conservative step up, not tuned;
--lr-base/--lr-pld change them).

Budget and schedule: each arm gets `--seconds` of training wall-clock (evaluation not included), and
its lr schedule runs on that clock, not on a step count (as in budget-limited "cramming" setups):
linear warm-up over the first 2% of the budget, then linear decay to 0 at the end of it. Every arm
thus ends its schedule exactly when its time is up, however fast its steps are. PLD's γ needs a step
count: a short calibration (a throw-away copy of the model) times a few PLD steps at the settled
rate, T = seconds / time per step, and γ = 100 / T (the heuristic γ ≈ 100/T: θ within e^-5 of θ̄
after 5% of training) unless `--gamma` is given. The estimate only decides how soon θ settles.

    python scripts/bench/pld_pretrain.py --seconds 480 --json bench/pld_pretrain.json --plot bench/pld_pretrain.png
    python scripts/bench/pld_pretrain.py --seconds 20 --layers 2 --hidden 64 --eval-every 5   # smoke

Time here: ~48 min for `make bench-pretrain` (5 arms x 480 s of training, plus scoring: README)
"""

from __future__ import annotations

import argparse
import copy
import math
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from tickettune.trainables.earlybert import optimizer_carry as carry
from tickettune.trainables.earlybert import slimming
from tickettune.trainables.earlybert.draw import make_ticket
from tickettune.trainables.earlybert.earlybird import EarlyBirdCallback, EarlyBirdDetector
from tickettune.trainables.earlybert.masks import MaskConfig, draw_masks
from tickettune.trainables.model.build import ScratchConfig, count_parameters, scratch_model
from tickettune.trainables.pld import PLDCallback, PLDConfig, attach, detach, gamma_for_steps
from tickettune.trainables.tasks.data import mlm_loader
from tickettune.trainables.training.loop import Callback, TrainConfig, make_optimizer, mlm_eval, train
from tickettune.trainables.training.precision import Precision

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # scripts/: the root of benchkit and the rooms
from benchkit.bench import finish
from benchkit.budget_clock import BudgetSchedule, HeldOutCurve, StopAtFraction, plot_loss_curves, time_to_loss

ARMS = ("base", "base_hilr", "pld", "earlybert", "earlybert_pld")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=480.0, help="training wall-clock budget of each arm")
    ap.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, from {ARMS} (base is always run)")
    ap.add_argument("--eval-every", type=float, default=30.0, help="training seconds between held-out scores")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--head-ratio", type=float, default=1 / 3, help="EarlyBERT: heads pruned in every layer")
    ap.add_argument("--ffn-ratio", type=float, default=0.4, help="EarlyBERT: FFN neurons pruned, model-wide")
    ap.add_argument("--coef-lr", type=float, default=1e-2)
    ap.add_argument("--lambda-l1", type=float, default=1e-4)
    ap.add_argument("--eps", type=float, default=0.2)
    ap.add_argument("--window", type=int, default=4)
    ap.add_argument("--mask-interval", type=int, default=10)
    ap.add_argument(
        "--search-fraction",
        type=float,
        default=0.25,
        help="EarlyBERT: the search ends here (fraction of the budget) if no early bird came first",
    )
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
    ap.add_argument("--plot", type=Path, default=None, help="PNG of every arm's held-out loss against time")
    args = ap.parse_args(argv)
    args.ffn = args.ffn or 4 * args.hidden
    args.arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    args.arms = ["base"] + [a for a in args.arms if a != "base"]  # every other arm is measured against it
    bad = [a for a in args.arms if a not in ARMS]
    if bad or not args.arms:
        ap.error(f"unknown arm(s) {bad}; choose from {ARMS}")
    if args.seconds <= 0 or args.calib_steps < 1 or args.eval_every <= 0:
        ap.error("--seconds and --eval-every must be > 0 and --calib-steps >= 1")
    if not 0 < args.search_fraction < 1:
        ap.error(f"--search-fraction must be in (0, 1), got {args.search_fraction}")
    return args


def arm_settings(arm: str, args) -> tuple[bool, float]:
    """(uses PLD, peak lr)."""
    return {
        "base": (False, args.lr_base),
        "pld": (True, args.lr_pld),
        "base_hilr": (False, args.lr_pld),
        "earlybert": (False, args.lr_base),
        "earlybert_pld": (True, args.lr_pld),
    }[arm]


def fresh_model(args):
    torch.manual_seed(args.seed)
    cfg = ScratchConfig(
        layers=args.layers,
        heads=args.heads,
        hidden=args.hidden,
        ffn=args.ffn,
        max_positions=max(512, args.seq_len),
        pre_ln=True,
    )
    return scratch_model(cfg, head="mlm")


def train_loader(tok, args):
    return mlm_loader(
        tok, "valid", batch_size=args.batch_size, max_length=args.seq_len, seed=args.seed, root=args.data_root
    )


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
        with Precision.of(args.precision).train_autocast():
            loss = model(**batch).loss
        loss.float().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run_arm(arm: str, args, tok, eval_batches, calib: float | None) -> dict:
    """One arm on its own wall-clock budget; its held-out curve is scored on that clock."""
    use_pld, lr = arm_settings(arm, args)
    eb = arm.startswith("earlybert")
    model, _ = fresh_model(args)
    if eb:
        slimming.attach(model)  # before the optimizer is built: the coefficients train from the first step
    cfg = TrainConfig(
        lr=lr,
        coef_lr=args.coef_lr,
        warmup_ratio=0.0,
        max_steps=10**9,
        weight_decay=0.01,
        seed=args.seed,
        progress=False,
        log_every=0,
        precision=args.precision,
    )
    optimizer = make_optimizer(model, cfg)
    budget = BudgetSchedule(optimizer, args.seconds, args.warmup_ratio)

    def score(net) -> Callable[[], float]:
        return lambda: mlm_eval(net, eval_batches, args.precision)["mlm_loss"]

    curve = HeldOutCurve(budget, args.eval_every, score(model))
    row: dict = {"pld": use_pld, "lr": lr}
    gamma = expected_steps = pld = None
    if use_pld:
        expected_steps = int(args.seconds / calib) if calib else None
        gamma = args.gamma if args.gamma is not None else gamma_for_steps(max(1, expected_steps))
        pld = attach(model, PLDConfig(theta_bar=args.theta_bar, gamma=gamma, seed=args.seed))
        row.update(gamma=gamma, expected_steps=expected_steps, calib_sec_per_step=calib)

    def phase(net, opt, extra: list[Callback], offset: int):
        cbs = ([PLDCallback(pld, num_layers=args.layers, offset=offset)] if pld is not None else []) + extra
        return train(net, train_loader(tok, args), cfg, callbacks=cbs + [budget, curve], optimizer=opt)

    if not eb:
        res = phase(model, optimizer, [], 0)
        steps, losses = res.steps, res.losses
    else:
        masks_cfg = MaskConfig(head_ratio=args.head_ratio, ffn_ratio=args.ffn_ratio)
        detector = EarlyBirdDetector(window=args.window, eps=args.eps)
        bird = EarlyBirdCallback(masks_cfg, detector, interval=args.mask_interval)
        search = phase(
            model,
            optimizer,
            [
                slimming.SlimmingCallback(args.lambda_l1, args.lambda_l1),
                bird,
                StopAtFraction(budget, args.search_fraction),
            ],
            0,
        )
        search_seconds = budget.elapsed()
        heads, ffn = draw_masks(*slimming.coefficients(model), masks_cfg)
        moments = carry.prune_state(model, carry.state_by_name(model, search.optimizer), heads, ffn)
        if pld is not None:
            detach(model)
        ticket = make_ticket(None, model, heads, ffn, rewind=False)  # coefficients folded in
        del model
        opt2 = make_optimizer(ticket, cfg)
        carry.load_state(opt2, ticket, moments)
        budget.drive(opt2)
        if pld is not None:
            pld = attach(ticket, PLDConfig(theta_bar=args.theta_bar, gamma=gamma, seed=args.seed))
        curve.score = score(ticket)  # from now on the curve scores the ticket
        res = phase(ticket, opt2, [], search.steps)
        model = ticket
        steps, losses = search.steps + res.steps, search.losses + res.losses
        row.update(
            search_steps=search.steps,
            early_bird=detector.found,
            early_bird_step=detector.found_at_step,
            search_seconds=search_seconds,
            ticket_parameters=count_parameters(ticket),
            kept_heads=[int(m.sum()) for m in heads],
            kept_ffn=[int(m.sum()) for m in ffn],
        )
    final = curve.record(steps)  # the final score, at the end of the budget
    seconds = budget.elapsed()
    row.update(
        steps=steps,
        seconds=seconds,
        samples=steps * args.batch_size,
        samples_per_sec=steps * args.batch_size / seconds,
        train_loss_last=statistics.fmean(losses[-20:]),
        heldout_mlm_loss=final,
        heldout_perplexity=math.exp(min(final, 50.0)),
        curve=curve.points,
    )
    if pld is not None:
        row.update(final_theta=pld.theta(), layer_fraction=pld.realized_fraction())
        detach(model)
    print(f"[{arm}] {steps} steps in {seconds:.0f}s: held-out MLM loss {final:.4f}", flush=True)
    return row


def run(args) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    model0, tok = fresh_model(args)
    n_params = count_parameters(model0)
    eval_loader = mlm_loader(
        tok,
        "test",
        batch_size=args.batch_size,
        max_length=args.seq_len,
        seed=12345,
        root=args.data_root,
        shuffle=False,
        max_samples=args.eval_blocks or None,
    )
    eval_batches = list(eval_loader)  # masked once: every arm sees the same held-out targets
    calib = None
    if any(arm_settings(a, args)[0] for a in args.arms) and args.gamma is None:
        calib = pld_time_per_step(model0, tok, args, 0.001)
    del model0
    results = {arm: run_arm(arm, args, tok, eval_batches, calib) for arm in args.arms}
    target = results["base"]["heldout_mlm_loss"]
    base_time = time_to_loss(results["base"]["curve"], target)
    for r in results.values():
        t = time_to_loss(r["curve"], target)
        r["seconds_to_base_loss"] = t
        r["time_to_base_loss_ratio"] = t / base_time if t is not None and base_time else None
    masked = sum(int((b["labels"] != -100).sum()) for b in eval_batches)
    return {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {
            "platform": platform.platform(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "precision": Precision.of(args.precision).name,
        },
        "parameters": n_params,
        "eval": {
            "split": "wikitext-2 test.txt",
            "blocks": sum(len(b["input_ids"]) for b in eval_batches),
            "masked_tokens": masked,
        },
        "target": {"loss": target, "base_seconds": base_time},
        "arms": results,
    }


def print_table(res: dict) -> None:
    c = res["config"]
    print(
        f"\npre-LN BERT {c['layers']}L H{c['hidden']} A{c['heads']} F{c['ffn']} ({res['parameters'] / 1e6:.1f}M "
        f"params), seq {c['seq_len']}, batch {c['batch_size']}, {c['seconds']:.0f}s per arm, "
        f"{res['machine']['threads']} threads, {res['machine']['precision']}; held-out: {res['eval']['blocks']} "
        f"test.txt blocks, {res['eval']['masked_tokens']} masked tokens; target: base's final loss "
        f"{res['target']['loss']:.4f}, reached by base at {res['target']['base_seconds']:.0f}s"
    )
    head = (
        f"{'arm':<14}{'lr':>8}{'steps':>7}{'samples/s':>11}{'layers':>8}{'search':>8}{'train':>8}"
        f"{'MLM loss':>10}{'ppl':>9}{'t to base':>11}{'ratio':>7}"
    )
    print(head)
    for arm, r in res["arms"].items():
        frac = f"{r['layer_fraction']:.3f}" if r["pld"] else "1"
        search = str(r.get("search_steps", "-"))
        t = r["seconds_to_base_loss"]
        ratio = r["time_to_base_loss_ratio"]
        print(
            f"{arm:<14}{r['lr']:>8.0e}{r['steps']:>7}{r['samples_per_sec']:>11.1f}{frac:>8}{search:>8}"
            f"{r['train_loss_last']:>8.3f}{r['heldout_mlm_loss']:>10.4f}{r['heldout_perplexity']:>9.1f}"
            f"{'never' if t is None else f'{t:.0f}s':>11}{'-' if ratio is None else f'{ratio:.3f}':>7}"
        )


def main(argv=None) -> dict:
    args = parse_args(argv)
    res = run(args)
    if args.plot:
        plot_loss_curves(res, args.plot)
    return finish(res, args.json, print_table)


if __name__ == "__main__":
    main()
