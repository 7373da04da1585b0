#!/usr/bin/env python
"""SQuAD parity: tickettune's fine-tune and EarlyBERT against HF `Trainer` with the `run_qa` recipe.

Arms, per seed, one after the other in one process (same threads, same machine):
* ``hf``        — HF ``Trainer`` on the stock ``AutoModelForQuestionAnswering``, with run_qa's preprocessing and
  post-processing written here (torch + transformers + datasets only): windows of max_length tokens padded to
  max_length, overlapping by --doc-stride tokens (``truncation="only_second"``, overflowing tokens, offsets),
  start/end labels on the first answer ([CLS] when the window does not hold it whole), n-best 20, answers of at
  most 30 tokens; 10% warm-up, linear decay, weight decay 0.01, fused AdamW. The reference of every ratio.
* ``dense``     — ``tickettune finetune --task squad`` itself (searcher.cli.main: its defaults, length-grouped
  batches).
* ``dense_ungrouped`` (not run by default) — the same with ``--no-group-by-length``: what grouping costs or buys.
* ``earlybert`` — ``tickettune earlybert``'s flow: the paper's ratios (heads 1/3, FFN 0.4), ticket_mode
  continue, the budget = the dense run's epochs; every other setting a FlowConfig default (``unconverged:
  ticket``, so a search that never converges still gives a score).
Every arm trains the same questions (seed s: the seeded subset ``tickettune finetune --seed s
--max-train-samples N`` takes), for the same epochs, lr, batch, max_length and precision, and is scored on the
same dev questions by ONE function (``squad_eval.squad_scores``, the official v1.1 evaluation). Times: ``train_
seconds`` is the training loop alone (Trainer's train_runtime; tickettune's loop; EarlyBERT's search + ticket
training), ``total_seconds`` the arm's whole run (loading, tokenising, training, scoring).

    python scripts/bench_qa_parity.py --json bench/qa_parity.json        # 3000 questions, 1 epoch, 2 seeds
    python scripts/bench_qa_parity.py --smoke                              # < 60 s, a tiny run of every arm
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from tickettune.trainables.tasks import DataArgs, get_task
from tickettune.trainables.tasks import squad as S
from tickettune.trainables.tasks.squad_eval import squad_scores

sys.path.insert(0, str(Path(__file__).parent))
from _bench import finish, flow_config  # noqa: E402

ARMS = ("hf", "dense", "dense_ungrouped", "earlybert")
DEFAULT_ARMS = ("hf", "dense", "earlybert")
N_BEST, MAX_ANSWER = 20, 30


# ------------------------------------------------------------------------------ run_qa's recipe, written here


def _windows(examples: dict, tokenizer, max_length: int, stride: int):
    """run_qa's windowing: question + context, the context cut in overlapping windows padded to max_length."""
    return tokenizer(
        [q.lstrip() for q in examples["question"]],
        examples["context"],
        truncation="only_second",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length",
    )


def hf_train_windows(examples: dict, tokenizer, max_length: int, stride: int) -> dict:
    """Windows padded to max_length with start/end token labels; [CLS] (its index) when the window's context
    does not cover the first answer from its first to its last character, or there is no answer."""
    enc = _windows(examples, tokenizer, max_length, stride)
    owner = enc.pop("overflow_to_sample_mapping")
    enc["start_positions"], enc["end_positions"] = [], []
    for w, offsets in enumerate(enc.pop("offset_mapping")):
        cls = enc["input_ids"][w].index(tokenizer.cls_token_id)
        answers = examples["answers"][owner[w]]
        context = [t for t, sid in enumerate(enc.sequence_ids(w)) if sid == 1]
        start = end = cls
        if answers["answer_start"]:
            first_char = answers["answer_start"][0]
            last_char = first_char + len(answers["text"][0])  # one past the answer
            if offsets[context[0]][0] <= first_char and offsets[context[-1]][1] >= last_char:
                start = max(t for t in context if offsets[t][0] <= first_char)  # the token the answer starts in
                end = min(t for t in context if offsets[t][1] >= last_char)  # the token it ends in
        enc["start_positions"].append(start)
        enc["end_positions"].append(end)
    return enc


def hf_eval_windows(examples: dict, tokenizer, max_length: int, stride: int) -> dict:
    """Windows padded to max_length, each with its question id and its context tokens' character offsets
    (None for every other token)."""
    enc = _windows(examples, tokenizer, max_length, stride)
    owner = enc.pop("overflow_to_sample_mapping")
    enc["example_id"] = [examples["id"][i] for i in owner]
    enc["offset_mapping"] = [
        [o if sid == 1 else None for o, sid in zip(offs, enc.sequence_ids(w))]
        for w, offs in enumerate(enc["offset_mapping"])
    ]
    return enc


def hf_answers(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    example_ids: list[str],
    offsets: list,
    contexts: dict[str, str],
    n_best: int = N_BEST,
    max_answer: int = MAX_ANSWER,
) -> dict[str, str]:
    """run_qa's v1 post-processing: over a question's windows, the `n_best` highest start and end logits are
    paired; a pair counts when both tokens are context tokens, end >= start and it spans <= `max_answer` tokens;
    the highest start + end logit wins and its characters are the answer ("" when no pair counts)."""
    windows = defaultdict(list)
    for w, qid in enumerate(example_ids):
        windows[qid].append(w)
    answers = {}
    for qid, ws in windows.items():
        candidates = []
        for w in ws:
            offs = offsets[w]
            top_starts = np.argsort(start_logits[w])[-1 : -n_best - 1 : -1]
            top_ends = np.argsort(end_logits[w])[-1 : -n_best - 1 : -1]
            for s in top_starts:
                for e in top_ends:
                    if s >= len(offs) or e >= len(offs) or offs[s] is None or offs[e] is None:
                        continue
                    if e < s or e - s + 1 > max_answer:
                        continue
                    candidates.append((start_logits[w][s] + end_logits[w][e], offs[s][0], offs[e][1]))
        if candidates:
            _, lo, hi = max(candidates, key=lambda c: c[0])
            answers[qid] = contexts[qid][lo:hi]
        else:
            answers[qid] = ""
    return answers


def arm_hf(args, seed: int, train_ds, dev_ds) -> dict:
    """HF Trainer with run_qa's recipe on the same questions."""
    from datasets import Dataset
    from transformers import (
        AutoModelForQuestionAnswering,
        AutoTokenizer,
        Trainer,
        TrainingArguments,
        default_data_collator,
    )

    from tickettune.trainables.model.build import model_path
    from tickettune.trainables.training.precision import Precision

    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_path(args.model))
    cols = train_ds.column_names
    train_feats = train_ds.map(
        hf_train_windows,
        batched=True,
        remove_columns=cols,
        desc="run_qa train windows",
        fn_kwargs={"tokenizer": tokenizer, "max_length": args.max_length, "stride": args.doc_stride},
    )
    dev_feats = dev_ds.map(
        hf_eval_windows,
        batched=True,
        remove_columns=cols,
        desc="run_qa eval windows",
        fn_kwargs={"tokenizer": tokenizer, "max_length": args.max_length, "stride": args.doc_stride},
    )
    model_inputs = Dataset.from_dict(
        {k: dev_feats[k] for k in dev_feats.column_names if k not in ("example_id", "offset_mapping")}
    )
    torch.manual_seed(seed)
    model = AutoModelForQuestionAnswering.from_pretrained(model_path(args.model), attn_implementation="sdpa")
    amp = Precision.of(args.precision)
    with tempfile.TemporaryDirectory() as out:
        targs = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=args.batch_size,
            per_device_eval_batch_size=64,
            learning_rate=args.lr,
            num_train_epochs=args.epochs,
            max_steps=args.max_steps or -1,
            warmup_steps=0.1,
            weight_decay=0.01,
            max_grad_norm=1.0,
            lr_scheduler_type="linear",
            optim="adamw_torch_fused",
            bf16=amp.name == "bf16",
            fp16=amp.name == "fp16",
            save_strategy="no",
            logging_strategy="no",
            report_to="none",
            seed=seed,
            data_seed=seed,
            disable_tqdm=True,
            use_cpu=not torch.cuda.is_available(),
            dataloader_num_workers=0,
        )
        trainer = Trainer(model=model, args=targs, train_dataset=train_feats, data_collator=default_data_collator)
        trained = trainer.train()
        start_logits, end_logits = trainer.predict(model_inputs).predictions
    predictions = hf_answers(
        start_logits,
        end_logits,
        dev_feats["example_id"],
        dev_feats["offset_mapping"],
        dict(zip(dev_ds["id"], dev_ds["context"])),
    )
    metrics = squad_scores(predictions, golds_of(dev_ds), v2=False)
    return {
        "train_seconds": float(trained.metrics["train_runtime"]),
        "total_seconds": time.perf_counter() - t0,
        "steps": int(trained.global_step),
        "train_windows": len(train_feats),
        **metrics,
    }


# ------------------------------------------------------------------------------ tickettune's arms


def arm_dense(args, seed: int, grouped: bool = True) -> dict:
    """`tickettune finetune --task squad` as a user types it; its --json has the metrics and the loop's time."""
    from tickettune.searcher.cli import main as cli

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        argv = [
            "finetune",
            "--task",
            "squad",
            "--model",
            args.model,
            "--seed",
            str(seed),
            "--max-train-samples",
            str(args.train_samples),
            "--epochs",
            str(args.epochs),
            "--lr",
            str(args.lr),
            "--batch-size",
            str(args.batch_size),
            "--max-length",
            str(args.max_length),
            "--precision",
            args.precision,
            "--json",
            f"{tmp}/out.json",
        ]
        argv += ["--max-eval-samples", str(args.eval_samples)] if args.eval_samples else []
        argv += ["--max-steps", str(args.max_steps)] if args.max_steps else []
        argv += ["--data-root", args.data_root] if args.data_root else []
        argv += [] if grouped else ["--no-group-by-length"]
        if cli(argv) != 0:
            raise RuntimeError(f"tickettune {' '.join(argv)} failed")
        out = json.loads(Path(f"{tmp}/out.json").read_text())
    # the CLI scores with squad_scores over the same dev questions: the one function every arm uses
    return {
        "train_seconds": out["train_seconds"],
        "total_seconds": time.perf_counter() - t0,
        "steps": out["steps"],
        "exact_match": out["metrics"]["exact_match"],
        "f1": out["metrics"]["f1"],
    }


class RecordedSquad(S.SquadTask):
    """The squad task, keeping the last evaluation's metrics (run_flow hands back only the main one)."""

    last: ClassVar[dict] = {}

    def evaluate(self, model, data, precision="auto"):
        RecordedSquad.last = super().evaluate(model, data, precision)
        return RecordedSquad.last


def arm_earlybert(args, seed: int) -> dict:
    """EarlyBERT through run_flow (what `tickettune earlybert --set task=squad ...` runs)."""
    from tickettune.trainables.flow import run_flow
    from tickettune.trainables.reporter import LocalReporter

    t0 = time.perf_counter()
    task = RecordedSquad(S.SPECS[0])
    extra = {
        k: getattr(args, k)
        for k in ("coef_lr", "eps", "window", "mask_interval", "search_max_steps")
        if getattr(args, k) is not None
    }
    budget = {"budget_steps": args.max_steps} if args.max_steps else {"budget_epochs": args.epochs}
    cfg = flow_config(
        args,
        task,
        seed,
        head_ratio=1 / 3,
        ffn_ratio=0.4,
        ticket_mode="continue",
        unconverged="ticket",
        **budget,
        **extra,
    )
    result = run_flow(cfg, LocalReporter(verbose=False))
    metrics = RecordedSquad.last
    if metrics.get("f1") != result.val_metric:
        raise RuntimeError("the flow's F1 is not the recorded evaluation's")
    return {
        "train_seconds": result.seconds.get("search", 0.0) + result.seconds.get("ticket", 0.0),
        "total_seconds": time.perf_counter() - t0,
        "steps": result.search_steps + result.ticket_steps,
        "search_steps": result.search_steps,
        "early_bird_step": result.early_bird_step,
        "relative_cost": result.relative_cost,
        "exact_match": metrics["exact_match"],
        "f1": metrics["f1"],
    }


# ------------------------------------------------------------------------------ the run


def golds_of(ds) -> dict[str, list[str]]:
    return {qid: a["text"] for qid, a in zip(ds["id"], ds["answers"])}


def machine() -> dict:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        out = ""
    info = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    flags = set(info.get("Flags", "").split())
    return {
        "cpu": info.get("Model name", "").strip(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "flags": sorted(flags & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    from tickettune.trainables.training.precision import Precision

    spec = S.SPECS[0]
    out = {
        "config": {k: v for k, v in vars(args).items() if k != "json"},
        "machine": machine(),
        "precision": Precision.of(args.precision).name,
        "tickettune_stride": S.stride_for(args.max_length),
        "runs": {a: [] for a in args.arms},
        "note": "time figures measured on a shared machine are noisy",
    }
    if out["tickettune_stride"] != args.doc_stride:
        print(
            f"note: tickettune's stride at max_length {args.max_length} is {out['tickettune_stride']}, "
            f"the hf arm's --doc-stride {args.doc_stride}",
            flush=True,
        )
    data = DataArgs(root=args.data_root, max_length=args.max_length, max_eval_samples=args.eval_samples)
    get_task("squad").check(data)
    for seed in range(args.seeds):
        # the questions `tickettune finetune --seed <seed> --max-train-samples N` trains on
        train_ds = S.load_squad(spec, "train", args.data_root, args.train_samples, "local", seed)
        dev_ds = S.load_squad(spec, "dev", args.data_root, args.eval_samples, "local", seed)
        for arm in args.arms:
            print(f"[seed {seed}] {arm} ...", flush=True)
            if arm == "hf":
                r = arm_hf(args, seed, train_ds, dev_ds)
            elif arm == "earlybert":
                r = arm_earlybert(args, seed)
            else:
                r = arm_dense(args, seed, grouped=arm == "dense")
            r["seed"] = seed
            out["runs"][arm].append(r)
            print(
                f"  {arm}: EM {r['exact_match']:.2f} F1 {r['f1']:.2f}, train {r['train_seconds']:.1f}s "
                f"({r['steps']} steps), total {r['total_seconds']:.1f}s",
                flush=True,
            )
    out["summary"] = summarize(out["runs"])
    out["headline"] = headline(out["summary"])
    return out


def summarize(runs: dict[str, list[dict]]) -> dict:
    """Per arm: mean and median of EM, F1 and times; against hf: the differences in points and the time ratio."""
    ref = runs.get("hf") or []
    ref_train = statistics.fmean(r["train_seconds"] for r in ref) if ref else math.nan
    out = {}
    for arm, rs in runs.items():
        if not rs:
            continue
        s = {
            f"{stat}_{k}": fn(r[k] for r in rs)
            for k in ("exact_match", "f1", "train_seconds", "total_seconds")
            for stat, fn in (("mean", statistics.fmean), ("median", lambda xs: statistics.median(list(xs))))
        }
        if ref:
            s["f1_diff"] = s["mean_f1"] - statistics.fmean(r["f1"] for r in ref)
            s["em_diff"] = s["mean_exact_match"] - statistics.fmean(r["exact_match"] for r in ref)
            s["time_ratio"] = s["mean_train_seconds"] / ref_train
        out[arm] = s
    return out


def headline(summary: dict) -> dict | None:
    """tickettune dense - HF (points) and its training time over HF's; the EarlyBERT arm's likewise."""
    if "hf" not in summary or "dense" not in summary:
        return None
    d = summary["dense"]
    h = {"f1_diff": d["f1_diff"], "em_diff": d["em_diff"], "time_ratio": d["time_ratio"]}
    if "earlybert" in summary:
        e = summary["earlybert"]
        h["earlybert"] = {
            "f1": e["mean_f1"],
            "f1_diff": e["f1_diff"],
            "em_diff": e["em_diff"],
            "time_ratio": e["time_ratio"],
        }
    return h


def print_table(res: dict) -> None:
    print(
        f"SQuAD v1.1 parity ({res['config']['train_samples']} questions, {res['config']['epochs']:g} epoch(s), "
        f"{res['config']['seeds']} seed(s), {res['precision']}; ratios vs hf; noisy if the machine is shared)"
    )
    print(f"  {'arm':<16}{'EM':>8}{'F1':>8}{'dEM':>8}{'dF1':>8}{'train s':>9}{'total s':>9}{'time ratio':>11}")
    for arm, s in res["summary"].items():
        print(
            f"  {arm:<16}{s['mean_exact_match']:>8.2f}{s['mean_f1']:>8.2f}{s.get('em_diff', math.nan):>+8.2f}"
            f"{s.get('f1_diff', math.nan):>+8.2f}{s['mean_train_seconds']:>9.1f}{s['mean_total_seconds']:>9.1f}"
            f"{s.get('time_ratio', math.nan):>11.3f}"
        )
    if res.get("headline"):
        print("headline: " + json.dumps(res["headline"]))


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arms", default=",".join(DEFAULT_ARMS), help=f"some of {','.join(ARMS)}")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--model", default="minilm-l6")
    ap.add_argument("--train-samples", type=int, default=3000, help="a seeded subset of the train questions")
    ap.add_argument("--eval-samples", type=int, default=None, help="default: every dev question (1,746)")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--max-steps", type=int, default=None, help="instead of epochs (every arm)")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument(
        "--doc-stride",
        type=int,
        default=None,
        help="the hf arm's; default: tickettune's at max_length (128 at 256, run_qa's)",
    )
    ap.add_argument("--precision", default="auto", help="auto: bf16 where fast, else fp32 (every arm)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--data-root", default=None)
    for name in ("coef_lr", "eps"):  # EarlyBERT settings: default None = FlowConfig's default
        ap.add_argument(f"--{name.replace('_', '-')}", type=float, default=None)
    for name in ("window", "mask_interval", "search_max_steps"):
        ap.add_argument(f"--{name.replace('_', '-')}", type=int, default=None)
    ap.add_argument("--json", type=Path, default=Path("bench/qa_parity.json"))
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="< 60 s: 8 questions, 2 steps of 4 windows of 64 tokens, 4 dev questions, 1 seed",
    )
    args = ap.parse_args(argv)
    args.arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    bad = [a for a in args.arms if a not in ARMS]
    if bad:
        ap.error(f"unknown arms {bad}; expected some of {ARMS}")
    if args.smoke:
        args.train_samples, args.eval_samples, args.seeds, args.max_steps = 8, 4, 1, 2
        args.max_length, args.batch_size, args.threads = 64, 4, min(args.threads, 2)
        args.mask_interval, args.window, args.search_max_steps, args.eps = 1, 2, 1, 1.0
        if args.json == Path("bench/qa_parity.json"):
            args.json = None  # a smoke run never overwrites the measured figures
    if args.doc_stride is None:
        args.doc_stride = S.stride_for(args.max_length)
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    res = run(args)
    if args.json:
        res["config"]["json"] = str(args.json)
        tmp = args.json.with_suffix(".tmp")
        finish(res, tmp, print_table)
        os.replace(tmp, args.json)
        return res
    return finish(res, None, print_table)


if __name__ == "__main__":
    main()
