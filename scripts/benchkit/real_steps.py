"""Training steps timed on real SST-2 batches, dense against a ticket made as the flow makes it: the step timers,
the loader and the flags that bench/fast_path.py, diagnostics/step_gap.py and the other diagnostics share."""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Iterable
from pathlib import Path

import torch

from tickettune.trainables.earlybert import slimming
from tickettune.trainables.earlybert.draw import make_ticket
from tickettune.trainables.earlybert.masks import MaskConfig, draw_masks
from tickettune.trainables.tasks import DataArgs, get_task
from tickettune.trainables.training.callbacks import Callback, Every
from tickettune.trainables.training.loop import TrainConfig, make_optimizer, train
from tickettune.trainables.training.precision import Precision
from tickettune.trainables.trial_run import CostMeter


def clock() -> tuple[float, float]:
    """(wall, process CPU) seconds: on a shared machine with one torch thread, CPU time is the steadier."""
    return time.perf_counter(), time.process_time()


class StepTimer(Callback):
    """(wall, CPU) time of each optimizer step as the loop sees it (after_step to after_step)."""

    def __init__(self):
        self.times: list[float] = []
        self._last = None

    def before_step(self, step: int) -> None:
        if self._last is None:
            self._last = clock()

    def after_step(self, step: int, logs: dict) -> bool:
        now = clock()
        self.times.append((now[0] - self._last[0], now[1] - self._last[1]))
        self._last = now
        return False


class Skip1:
    """The real loader minus its first (longest) batch, collated as it is iterated."""

    def __init__(self, loader, n: int):
        self.loader, self.n = loader, n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        it = iter(self.loader)
        next(it)
        for _ in range(self.n):
            yield next(it)


def flow_ticket(dense: torch.nn.Module, seed: int) -> torch.nn.Module:
    """The ticket as the flow makes it in `continue` mode: coefficients attached (random |c|, as a search
    ends with), masks drawn with the flow's defaults, coefficients folded and dropped, pruned."""
    model = slimming.attach(copy.deepcopy(dense))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for c in slimming.coefficient_params(model):
            c.copy_(torch.rand(c.shape, generator=g) + 0.5)
    heads, ffn = draw_masks(*slimming.coefficients(model), MaskConfig(ffn_multiple=8))
    return make_ticket(None, model, heads, ffn, rewind=False)


def bare_steps(model, batches: Iterable[dict], amp: Precision) -> list[float]:
    opt = make_optimizer(model, TrainConfig(lr=1e-5))
    params = [p for g in opt.param_groups for p in g["params"]]
    times = []
    for b in batches:
        t0 = clock()
        with amp.train_autocast():
            loss = model(**b).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        t1 = clock()
        times.append((t1[0] - t0[0], t1[1] - t0[1]))
    return times


def loop_steps(model, loader, n: int, precision: str, seq: int, batch: int) -> list[float]:
    timer = StepTimer()
    cost = CostMeter(model, seq, batch, 1.0)
    cbs = [timer, cost, Every([10], lambda step, logs: logs["loss"])]
    # the loop's own allocator tuning off: the *_malloc arms turn it on for the process, explicitly
    train(model, loader, TrainConfig(lr=1e-5, max_steps=n, progress=False, precision=precision, tune_malloc=False), cbs)
    return timer.times


def sst2_loader(tokenizer, data_root: str | None, train_samples: int | None, pad: int | None = None):
    """The sst2 task's real train loader as the flow builds it: length-grouped, batch 32, max_length 64."""
    args = DataArgs(
        root=data_root,
        max_length=64,
        batch_size=32,
        group_by_length=True,
        max_train_samples=train_samples,
        pad_to_multiple_of=pad,
    )
    return get_task("sst2").train_loader(tokenizer, args)


def parse_real_batch_args(
    doc: str, argv, steps: int, smoke_steps: int, min_steps: int = 1, extra: list[tuple[str, str]] = ()
) -> argparse.Namespace:
    """The flags of a script that times real SST-2 batches (and `extra` string options: (flag, help)); --smoke:
    `smoke_steps` steps on 640 rows."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--steps", type=int, default=steps)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train-samples", type=int, default=None, help="default: the whole SST-2 train split")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--smoke", action="store_true", help=f"{smoke_steps} steps on 640 rows")
    ap.add_argument("--json", type=Path, default=None)
    for flag, help_ in extra:
        ap.add_argument(flag, default=None, help=help_)
    args = ap.parse_args(argv)
    if args.smoke:
        args.steps, args.train_samples = smoke_steps, args.train_samples or 640
    if args.steps < min_steps:
        ap.error(f"--steps must be >= {min_steps}, got {args.steps}")
    return args
