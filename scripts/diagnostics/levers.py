"""Train-step time of each fast-path lever alone vs today's path, dense MiniLM and its ticket, one process.

Real SST-2 training batches as the flow makes them (length-grouped, dynamic padding: ~16 tokens at
batch 32), the same fixed list of batches for every arm. A step is `train.train`'s own loop (forward,
backward, clipping, optimizer), timed per step by a callback; arms run interleaved in rounds so a busy
machine slows them alike. Figures are medians of per-step times; ratios are taken inside this process.

Arms (TrainConfig fields, as the flow sets them): ``today`` (fp32, embeddings train, the model's dropout),
``bf16`` (autocast: today's mixed precision), ``bf16-master``, ``embeddings=sparse``, ``embeddings=freeze``,
``dropout=0``, ``float-mask`` (dropout as the model's, masks drawn by `FloatMaskDropout` below), ``all``
(sparse + dropout 0, fp32) and ``all+bf16-master``. On a CPU without bf16 instructions (AVX2) the bf16 arms
are slower than fp32: there they only show that the code path runs.

    python scripts/diagnostics/levers.py --json bench/levers.json          # the lead, alone on the machine
    python scripts/diagnostics/levers.py --smoke                            # < 60 s

Time here: --smoke < 60 s; the full run not timed
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tickettune.trainables.earlybert.draw import make_ticket, snapshot
from tickettune.trainables.earlybert.masks import MaskConfig, draw_masks
from tickettune.trainables.model.build import load_model
from tickettune.trainables.tasks import DataArgs, get_task
from tickettune.trainables.training.callbacks import Callback
from tickettune.trainables.training.loop import TrainConfig, make_optimizer, train

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # scripts/: the root of benchkit and the rooms
from benchkit.bench import cpu, finish

ARMS = {
    "today": {},
    "bf16": {"precision": "bf16"},
    "bf16-master": {"precision": "bf16-master"},
    "embeddings=sparse": {"embeddings": "sparse"},
    "embeddings=freeze": {"embeddings": "freeze"},
    "dropout=0": {"dropout": 0.0},
    "float-mask": {"float_mask": True},
    "all": {"embeddings": "sparse", "dropout": 0.0},
    "all+bf16-master": {"embeddings": "sparse", "dropout": 0.0, "precision": "bf16-master"},
}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="minilm-l6")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--batches", type=int, default=24, help="distinct real batches, cycled")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds over the arms")
    ap.add_argument("--steps", type=int, default=6, help="timed steps per arm per round")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per arm before the first round")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--smoke", action="store_true", help="a short run (< 60 s) that exercises every arm")
    args = ap.parse_args(argv)
    if args.smoke:
        args.batches, args.rounds, args.steps, args.warmup = 4, 2, 1, 1
    if "today" not in args.arms:
        args.arms = ["today", *args.arms]
    for name in ("batches", "rounds", "steps"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be >= 1")
    return args


def real_batches(tokenizer, args) -> list[dict]:
    task = get_task("sst2")
    data = DataArgs(
        root=args.data_root,
        max_length=args.max_length,
        batch_size=args.batch_size,
        max_train_samples=args.batches * args.batch_size,
        seed=args.seed,
        group_by_length=True,
    )
    return [dict(b) for b, _ in zip(task.train_loader(tokenizer, data), range(args.batches))]


class FloatMaskDropout(nn.Dropout):
    """Dropout with its mask drawn as a float Bernoulli tensor (vectorised on CPU) instead of ATen's dropout.

    Same distribution (kept with probability 1 − p, scaled by 1/(1 − p)); only the random stream differs.
    An experiment, not a lever: measured here at 0.98 / 0.99 of today's step (dense / ticket), it did not pay
    enough to enter the package. CUDA, eval mode and p = 0 go to `F.dropout`.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.is_cuda or self.inplace:
            return F.dropout(x, self.p, self.training, self.inplace)
        return x * torch.empty_like(x).bernoulli_(1 - self.p).mul_(1 / (1 - self.p))


def use_float_masks(model: nn.Module) -> int:
    """Every plain `nn.Dropout` of `model` becomes a `FloatMaskDropout` (in place); returns how many."""
    n = 0
    for module in model.modules():
        if type(module) is nn.Dropout:
            module.__class__ = FloatMaskDropout
            n += 1
    return n


class StepClock(Callback):
    """Wall-clock and process CPU time of each step (CPU time: less swayed by other loads on a shared machine,
    exact for the work done with --threads 1)."""

    def __init__(self):
        self.times: list[float] = []
        self.cpu: list[float] = []
        self._start = self._cpu = 0.0

    def before_step(self, step: int) -> None:
        self._start, self._cpu = time.perf_counter(), time.process_time()

    def after_step(self, step: int, logs: dict) -> bool:
        self.times.append(time.perf_counter() - self._start)
        self.cpu.append(time.process_time() - self._cpu)
        return False


class Arm:
    """One lever setting on one model: its own copy, optimizer and step times."""

    def __init__(self, model, settings: dict, batches: list[dict], seed: int):
        settings = dict(settings)
        self.model = copy.deepcopy(model)
        if settings.pop("float_mask", False):
            use_float_masks(self.model)
        self.cfg = TrainConfig(lr=2e-5, seed=seed, progress=False, **settings)
        self.optimizer = make_optimizer(self.model, self.cfg)
        self.batches, self.at, self.clock = batches, 0, StepClock()

    def run(self, steps: int, timed: bool = True) -> None:
        data = [self.batches[(self.at + i) % len(self.batches)] for i in range(steps)]
        self.at += steps
        clock = self.clock if timed else StepClock()
        cfg = TrainConfig(**{**vars(self.cfg), "max_steps": steps})
        train(self.model, data, cfg, [clock], optimizer=self.optimizer)


def run(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dense, tok = load_model(args.model, head="classification", num_labels=2)
    g = torch.Generator().manual_seed(args.seed)
    layers = dense.config.num_hidden_layers
    heads, ffn = draw_masks(
        [torch.rand(dense.config.num_attention_heads, generator=g) for _ in range(layers)],
        [torch.rand(dense.config.intermediate_size, generator=g) for _ in range(layers)],
        MaskConfig(head_ratio=1 / 3, ffn_ratio=0.4, ffn_multiple=8),
    )
    ticket = make_ticket(snapshot(dense), dense, heads, ffn, rewind=True)
    batches = real_batches(tok, args)
    tokens = [int(b["input_ids"].shape[1]) for b in batches]
    arms = {
        (m, a): Arm(model, ARMS[a], batches, args.seed)
        for m, model in (("dense", dense), ("ticket", ticket))
        for a in args.arms
    }
    t0 = time.perf_counter()
    print(f"{len(arms)} arms built, batches ready; warming up", flush=True)
    for arm in arms.values():
        arm.run(args.warmup, timed=False)
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds} ({time.perf_counter() - t0:.0f} s)", flush=True)
        for arm in arms.values():
            arm.run(args.steps)
    ms = {m: {a: 1e3 * statistics.median(arms[m, a].clock.times) for a in args.arms} for m in ("dense", "ticket")}
    cpu_ms = {m: {a: 1e3 * statistics.median(arms[m, a].clock.cpu) for a in args.arms} for m in ("dense", "ticket")}
    return {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {
            "cpu": cpu(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
        "note": "noisy when the machine is shared: compare ratios inside one run only",
        "batch_tokens": {"median": statistics.median(tokens), "min": min(tokens), "max": max(tokens)},
        "ticket_layout": {"heads": [int(h.sum()) for h in heads], "ffn": [int(f.sum()) for f in ffn]},
        "step_ms_median": ms,
        "lever_over_today": {m: {a: ms[m][a] / ms[m]["today"] for a in args.arms} for m in ms},
        "ticket_over_dense": {a: ms["ticket"][a] / ms["dense"][a] for a in args.arms},
        "cpu_ms_median": cpu_ms,
        "cpu_lever_over_today": {m: {a: cpu_ms[m][a] / cpu_ms[m]["today"] for a in args.arms} for m in cpu_ms},
        "cpu_ticket_over_dense": {a: cpu_ms["ticket"][a] / cpu_ms["dense"][a] for a in args.arms},
        "steps_timed_per_arm": args.rounds * args.steps,
    }


def print_table(res: dict) -> None:
    c, m = res["config"], res["machine"]
    print(
        f"{c['model']}, real SST-2 batches of {c['batch_size']} (tokens median {res['batch_tokens']['median']}), "
        f"{m['threads']} threads, {m['cpu']['model_name']} {m['cpu']['flags']}; medians of "
        f"{res['steps_timed_per_arm']} steps per arm ({res['note']})"
    )
    for kind, ms, over, td in (
        ("wall", "step_ms_median", "lever_over_today", "ticket_over_dense"),
        ("cpu", "cpu_ms_median", "cpu_lever_over_today", "cpu_ticket_over_dense"),
    ):
        print(f"[{kind}] {'arm':<20}{'dense ms':>10}{'/today':>8}{'ticket ms':>11}{'/today':>8}{'ticket/dense':>14}")
        for a in res[over]["dense"]:
            d, t = res[ms]["dense"][a], res[ms]["ticket"][a]
            print(
                f"[{kind}] {a:<20}{d:>10.1f}{res[over]['dense'][a]:>8.3f}{t:>11.1f}"
                f"{res[over]['ticket'][a]:>8.3f}{res[td][a]:>14.3f}"
            )


def main(argv=None) -> dict:
    args = parse_args(argv)
    return finish(run(args), args.json, print_table)


if __name__ == "__main__":
    main()
