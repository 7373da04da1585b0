#!/usr/bin/env python
"""Why tickettune's dense fine-tune steps slower than HF `Trainer`'s: the same real batches, one process, arms
that each change one thing, so the arm-to-arm change names the cause.

* ``hf_bare``     — the stock ``AutoModelForSequenceClassification`` (sdpa), a bare step (forward, backward,
  clip, AdamW from ``make_optimizer``, zero_grad): the model HF's Trainer trains.
* ``tt_bare``     — tickettune's model of the same weights (``load_model``: its TicketEncoder), the same bare step.
* ``tt_loop``     — tickettune's loop (``train.train``) on that model and the same pre-collated batches.
* ``hf_trainer``  — HF ``Trainer.train`` on the stock model and the same batches (its DataLoader replaced by the
  list of batches), timed step to step by a callback.

Batches: the task's real train batches as tickettune's loader makes them (length-grouped, max_length 64, batch
32), the first (longest) skipped. Arms alternate over --rounds; medians of per-step wall and process-CPU times
(the first 3 steps of each arm and round dropped); ratios against ``hf_trainer`` and ``hf_bare``.

    python scripts/diagnostics/dense_vs_trainer_step.py --task cola --threads 1 --json bench/dense_vs_trainer_step.json

Time here: not timed
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from tickettune.trainables.model.build import load_model, model_path
from tickettune.trainables.tasks import DataArgs, get_task
from tickettune.trainables.tasks.data import as_tokenizer
from tickettune.trainables.training.precision import Precision

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # scripts/: the root of benchkit and the rooms
from benchkit.bench import cpu, finish
from benchkit.real_steps import Skip1, bare_steps, clock, loop_steps

ARMS = ("hf_bare", "tt_bare", "tt_loop", "hf_trainer")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="cola")
    ap.add_argument("--model", default="minilm-l6")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per arm and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--json", type=Path, default=None)
    return ap.parse_args(argv)


def trainer_steps(model, batches: list[dict], lr: float = 1e-5) -> list[tuple[float, float]]:
    """HF Trainer.train over exactly `batches` (one per step), (wall, CPU) seconds from step end to step end."""
    from transformers import Trainer, TrainerCallback, TrainingArguments

    times, last = [], [None]

    class StepClock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if last[0] is None:
                last[0] = clock()

        def on_step_end(self, args, state, control, **kw):
            now = clock()
            times.append((now[0] - last[0][0], now[1] - last[0][1]))
            last[0] = now

    class Batches(Trainer):
        def get_train_dataloader(self):
            return torch.utils.data.DataLoader(batches, batch_size=None)

    with tempfile.TemporaryDirectory() as out:
        targs = TrainingArguments(
            output_dir=out,
            learning_rate=lr,
            max_steps=len(batches),
            warmup_steps=0.1,
            weight_decay=0.01,
            max_grad_norm=1.0,
            save_strategy="no",
            logging_strategy="no",
            report_to="none",
            disable_tqdm=True,
            use_cpu=True,
            dataloader_num_workers=0,
        )
        Batches(model=model, args=targs, train_dataset=batches, callbacks=[StepClock()]).train()
    return times


def run(args) -> dict:
    from transformers import AutoModelForSequenceClassification

    torch.set_num_threads(args.threads)
    spec = get_task(args.task)
    tok = as_tokenizer(args.model)
    data = DataArgs(
        root=args.data_root, max_length=args.max_length, batch_size=args.batch_size, group_by_length=True, seed=0
    )
    real = list(Skip1(spec.train_loader(tok, data), args.steps))
    amp = Precision.of("fp32", "cpu")

    def hf_model():
        torch.manual_seed(0)
        return AutoModelForSequenceClassification.from_pretrained(
            model_path(args.model), attn_implementation="sdpa", num_labels=spec.num_labels
        ).train()

    def tt():
        torch.manual_seed(0)
        return load_model(args.model, head=spec.head, num_labels=spec.num_labels)[0].train()

    seq = max(b["input_ids"].shape[1] for b in real)
    arms = {
        "hf_bare": lambda: bare_steps(hf_model(), real, amp),
        "tt_bare": lambda: bare_steps(tt(), real, amp),
        "tt_loop": lambda: loop_steps(tt(), real, args.steps, "fp32", seq, args.batch_size),
        "hf_trainer": lambda: trainer_steps(hf_model(), real),
    }
    times: dict[str, list] = {a: [] for a in arms}
    for r in range(args.rounds):
        order = list(arms) if r % 2 == 0 else list(arms)[::-1]
        for arm in order:
            times[arm] += arms[arm]()[3:]
            print(f"  round {r} {arm}: {len(times[arm])} steps", flush=True)
    res = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {**cpu(), "torch": torch.__version__, "threads": torch.get_num_threads()},
        "mean_length": statistics.fmean(b["input_ids"].shape[1] for b in real),
        "arms": {},
    }
    for arm, ts in times.items():
        res["arms"][arm] = {
            "wall_ms": 1e3 * statistics.median(t[0] for t in ts),
            "cpu_ms": 1e3 * statistics.median(t[1] for t in ts),
            "steps": len(ts),
        }
    for ref in ("hf_trainer", "hf_bare"):
        for arm, row in res["arms"].items():
            row[f"wall_vs_{ref}"] = row["wall_ms"] / res["arms"][ref]["wall_ms"]
            row[f"cpu_vs_{ref}"] = row["cpu_ms"] / res["arms"][ref]["cpu_ms"]
    return res


def print_table(res: dict) -> None:
    m = res["machine"]
    print(f"{m['model_name']}, {m['threads']} thread(s); mean padded length {res['mean_length']:.1f}; medians")
    print(f"  {'arm':<12}{'wall ms':>9}{'cpu ms':>9}{'wall/trainer':>14}{'wall/hf_bare':>14}")
    for arm, r in res["arms"].items():
        print(
            f"  {arm:<12}{r['wall_ms']:>9.1f}{r['cpu_ms']:>9.1f}{r['wall_vs_hf_trainer']:>14.3f}"
            f"{r['wall_vs_hf_bare']:>14.3f}"
        )


def main(argv=None) -> dict:
    args = parse_args(argv)
    return finish(run(args), args.json, print_table)


if __name__ == "__main__":
    main()
