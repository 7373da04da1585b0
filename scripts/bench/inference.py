#!/usr/bin/env python
"""Inference speed of a ticket against its dense model, in one process: PyTorch eager, torch.compile, ONNX Runtime.

Pairs (ticket vs dense, classification heads):
* ``paper``: all-MiniLM-L6-v2 (the packaged ``minilm-l6``) against a ticket at EarlyBERT's ratios: 4 of 12 heads
  pruned in every layer (head_ratio 1/3) and 40% of the FFN neurons over the whole model (widths rounded to
  multiples of 8), masks from seeded random scores, rewound to the pre-trained weights, as
  scripts/bench/ticket_speed.py builds it. Random masks change nothing about speed.
* ``--ticket DIR`` (e.g. an exported ticket): that ticket against a model of the same config at its dense widths
  (random weights: the same arithmetic).

Inputs: real SST-2 dev sentences (batch 1: one sentence per request; batch 32: dev order, padded to the longest
of the batch) and fixed 128-token inputs (SST-2 dev text run together and cut into 128-token rows, no padding).
Figures: batch-1 latency (p50, p95 over the requests) and batch-32 throughput (sequences/s from the median
batch time). Each repetition runs dense and ticket back to back, alternating which goes first; warm-up passes
(one over every input, more for torch.compile, which compiles then) are not timed. Precisions: fp32, and bf16
(autocast) where the CPU has fast bf16 (AMX / AVX512-BF16); on other CPUs bf16 is recorded as skipped unless
``--bf16`` asks to measure it anyway (then labelled emulated). ONNX Runtime runs the fp32 export (onnx_export.py).

Checks: the ticket saved and loaded back (what ``tickettune predict`` serves) predicts exactly what the pruned
model in memory predicts, through ``tickettune predict`` itself on SST-2 dev sentences, and ONNX Runtime's
predicted classes equal PyTorch's. The headline (batch 32 x 128, fp32) is written into the ticket's model card
(``--save-ticket DIR`` keeps the paper ticket; ``--write-card`` writes into ``--ticket DIR``).

    python scripts/bench/inference.py --threads 4 --json bench/inference_speed.json       # the full run
    python scripts/bench/inference.py --smoke                                              # < 60 s

Time here: --smoke < 60 s; the full run not timed
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from tickettune.trainables.earlybert.draw import make_ticket, snapshot
from tickettune.trainables.earlybert.masks import MaskConfig, draw_masks
from tickettune.trainables.model.build import build_from_layout, layout, load_model
from tickettune.trainables.ticket.format import load_ticket, save_ticket, ticket_info
from tickettune.trainables.training.precision import cpu_has_fast_bf16

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # scripts/: the root of benchkit and the rooms
from benchkit.bench import cpu, finish
from benchkit.inference_timing import inputs, time_pair

RUNTIMES = ("eager", "compile", "ort")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ticket", type=Path, default=None, help="also time this ticket folder against its dense twin")
    ap.add_argument("--write-card", action="store_true", help="write the measured speed into --ticket's model card")
    ap.add_argument("--save-ticket", type=Path, default=None, help="keep the paper-ratio ticket here (with its card)")
    ap.add_argument("--model", default="minilm-l6", help="the dense model of the paper pair")
    ap.add_argument("--head-ratio", type=float, default=1 / 3)
    ap.add_argument("--ffn-ratio", type=float, default=0.4)
    ap.add_argument("--runtimes", default=",".join(RUNTIMES), help=f"comma-separated, from {','.join(RUNTIMES)}")
    ap.add_argument("--bf16", action="store_true", help="measure bf16 even where the CPU only emulates it")
    ap.add_argument("--requests", type=int, default=200, help="batch-1 requests timed per model and input")
    ap.add_argument("--batches", type=int, default=20, help="batch-32 batches timed per model and input")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--check-rows", type=int, default=256, help="SST-2 dev rows for the prediction checks")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--smoke", action="store_true", help="tiny counts, no torch.compile: a < 60 s check that it runs")
    ap.add_argument(
        "--json",
        type=Path,
        default=None,
        help="default: bench/inference_speed.json (--smoke: bench/inference_speed_smoke.json)",
    )
    args = ap.parse_args(argv)
    args.runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    if not args.runtimes or any(r not in RUNTIMES for r in args.runtimes):
        ap.error(f"--runtimes: expected some of {RUNTIMES}")
    if args.smoke:
        args.requests, args.batches, args.batch_size, args.check_rows = 6, 3, 8, 16
        args.runtimes = [r for r in args.runtimes if r != "compile"]
    if args.json is None:
        args.json = Path("bench/inference_speed_smoke.json" if args.smoke else "bench/inference_speed.json")
    if args.write_card and args.ticket is None:
        ap.error("--write-card writes into --ticket's card: give --ticket DIR")
    if min(args.requests, args.batches, args.batch_size, args.check_rows) < 1 or args.seq_len < 8:
        ap.error("counts must be >= 1 and --seq-len >= 8")
    return args


# ------------------------------------------------------------------------------------------ machine


def cpu_info() -> dict:
    return {**cpu(), "fast_bf16": cpu_has_fast_bf16()}


# ------------------------------------------------------------------------------------------ models


def paper_pair(args) -> tuple[torch.nn.Module, torch.nn.Module, object, tuple]:
    torch.manual_seed(args.seed)
    dense, tok = load_model(args.model, head="classification", num_labels=2)
    g = torch.Generator().manual_seed(args.seed)
    from tickettune.trainables.model.encoder import encoder_of

    blocks = encoder_of(dense).blocks
    cfg = MaskConfig(
        head_ratio=args.head_ratio, ffn_ratio=args.ffn_ratio, head_scope="layer", ffn_scope="global", ffn_multiple=8
    )
    heads, ffn = draw_masks(
        [torch.rand(b.num_heads, generator=g) for b in blocks],
        [torch.rand(b.ffn_width, generator=g) for b in blocks],
        cfg,
    )
    ticket = make_ticket(snapshot(dense), dense, heads, ffn, rewind=True)
    return dense.eval(), ticket.eval(), tok, (heads, ffn)


def dense_twin(ticket: torch.nn.Module) -> torch.nn.Module:
    """A model of the ticket's class and config at the config's full widths (random weights)."""
    import copy

    from tickettune.trainables.model.families import family_of

    cfg = copy.deepcopy(ticket.config)
    widths = family_of(cfg).widths(cfg.to_dict())
    lay = {"pre_ln": layout(ticket)["pre_ln"], "heads_per_layer": widths["heads"], "ffn_per_layer": widths["ffn"]}
    torch.manual_seed(0)
    return build_from_layout(type(ticket), cfg, lay).eval()


# ------------------------------------------------------------------------------------------ checks


def check_predictions(
    pruned, ticket_dir: Path, sentences: list[str], rows: int, onnx_path: str | None, tok, work: Path
) -> dict:
    """`tickettune predict` on the saved ticket gives the in-memory pruned model's classes; ORT's too."""
    import pandas as pd

    from tickettune.searcher.predict import PredictArgs, predict_file
    from tickettune.trainables.inference import length_order

    texts = sentences[:rows]
    pd.DataFrame({"sentence": texts}).to_csv(work / "check.csv", index=False)
    predict_file(
        PredictArgs(
            str(ticket_dir),
            str(work / "check.csv"),
            str(work / "check.jsonl"),
            "sentence",
            batch_size=16,
            max_length=128,
            precision="fp32",
            progress=False,
        )
    )
    served = [json.loads(line)["label"] for line in (work / "check.jsonl").read_text().splitlines()]
    labels = ["negative", "positive"]
    with torch.no_grad():
        mem = [
            labels[int(pruned(**tok(t, return_tensors="pt", truncation=True, max_length=128)).logits.argmax())]
            for t in texts
        ]
    out = {
        "rows": len(texts),
        "predict_equals_pruned_model": served == mem,
        "mismatches": sum(a != b for a, b in zip(served, mem)),
    }
    if onnx_path:
        from tickettune.trainables.ticket.onnx_export import run_onnx

        order = length_order([len(t) for t in texts])
        ort_labels = [None] * len(texts)
        for i in range(0, len(texts), 16):
            idx = order[i : i + 16]
            batch = tok([texts[j] for j in idx], padding=True, truncation=True, max_length=128, return_tensors="pt")
            batch = {k: v for k, v in batch.items() if k in tok.model_input_names}
            for j, c in zip(idx, run_onnx(onnx_path, batch)[0].argmax(-1)):
                ort_labels[j] = labels[int(c)]
        out["ort_equals_pytorch"] = ort_labels == mem
    return out


def card_speed(pair: dict, cpu: dict, args, threads: int) -> dict:
    rows = []
    for key, label in (
        ("eager_fp32", "PyTorch eager, fp32"),
        ("compile_fp32", "torch.compile, fp32"),
        ("ort_fp32", "ONNX Runtime, fp32"),
        ("eager_bf16", "PyTorch eager, bf16 autocast"),
    ):
        if key in pair["runs"]:
            r = pair["runs"][key]["fixed128"]
            rows.append({"runtime": label, "dense": r["dense"]["throughput"], "ticket": r["ticket"]["throughput"]})
    b1 = pair["runs"].get("eager_fp32", {}).get("fixed128", {}).get("latency_p50_ratio")
    return {
        "command": "scripts/bench/inference.py" + (" --smoke" if args.smoke else ""),
        "cpu": cpu["model_name"],
        "threads": threads,
        "batch": args.batch_size,
        "seq_len": args.seq_len,
        "flop_ratio": pair["flop_ratio"],
        "rows": rows,
        "batch1_latency_ratio": b1,
        "note": "Smoke-mode counts: not a measurement." if args.smoke else "",
    }


# ------------------------------------------------------------------------------------------ main


def run(args) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    cpu = cpu_info()
    res = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {"cpu": cpu, "platform": platform.platform(), "torch": torch.__version__, "threads": threads},
        "pairs": {},
    }
    work = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    try:
        if args.smoke:  # a tiny random BERT stands in for MiniLM: the code paths, not the figures
            from tickettune.trainables.testing.random_models import Size, write_random_model

            args.model = str(write_random_model("bert", work / "tiny-bert", size=Size(64, 2, 4, 128, 512)))
        dense, ticket, tok, (heads, ffn) = paper_pair(args)
        data, sentences = inputs(tok, args)
        print(
            f"paper pair: {args.model}, ticket heads {layout(ticket)['heads_per_layer']}, "
            f"FFN {layout(ticket)['ffn_per_layer']}; {threads} threads",
            flush=True,
        )
        pair = time_pair("paper", dense, ticket, tok, data, args, work)
        ticket_dir = save_ticket(
            ticket,
            tok,
            work / "paper-ticket",
            ticket_info(
                heads,
                ffn,
                task={"name": "sst2", "labels": ["negative", "positive"]},
                base_model=args.model if not args.smoke else "tiny random BERT",
                flow={"max_length": args.seq_len},
            ),
        )
        onnx_path = str(work / "paper-ticket.onnx") if "ort" in args.runtimes else None
        pair["checks"] = check_predictions(ticket, ticket_dir, sentences, args.check_rows, onnx_path, tok, work)
        from tickettune.trainables.ticket.card_speed import record_inference_speed

        pair["card"] = card_speed(pair, cpu, args, threads)
        record_inference_speed(ticket_dir, pair["card"])
        if args.save_ticket:
            if args.save_ticket.exists():
                shutil.rmtree(args.save_ticket)
            shutil.copytree(ticket_dir, args.save_ticket)
        res["pairs"]["paper"] = pair
        if args.ticket is not None:
            own, own_tok, info = load_ticket(args.ticket)
            if info["head"] not in ("classification", "regression"):
                raise SystemExit(f"--ticket {args.ticket}: a {info['head']} ticket; this benchmark times classifiers")
            own_data, _ = inputs(own_tok, args)
            mine = time_pair("ticket", dense_twin(own.eval()), own.eval(), own_tok, own_data, args, work)
            mine["card"] = card_speed(mine, cpu, args, threads)
            if args.write_card:
                record_inference_speed(args.ticket, mine["card"])
            res["pairs"]["ticket"] = mine
    finally:
        shutil.rmtree(work, ignore_errors=True)
    head = res["pairs"]["paper"]
    runs = head["runs"]
    get = lambda key, field: runs[key]["fixed128"][field] if key in runs else None  # noqa: E731
    target = 1 / (1.10 * head["flop_ratio"])
    res["headline"] = {
        "flop_ratio": head["flop_ratio"],
        "torch_fp32_throughput_ratio": get("eager_fp32", "throughput_ratio"),
        "ort_throughput_ratio": get("ort_fp32", "throughput_ratio"),
        "batch1_latency_ratio": get("eager_fp32", "latency_p50_ratio"),
        "compile_fp32_throughput_ratio": get("compile_fp32", "throughput_ratio"),
        "target_throughput_ratio": target,
    }
    h = res["headline"]
    h["meets_target"] = {
        k: bool(h[k] >= target) for k in ("torch_fp32_throughput_ratio", "ort_throughput_ratio") if h[k] is not None
    }
    return res


def print_table(res: dict) -> None:
    m = res["machine"]
    print(f"\n{m['cpu']['model_name']}, {m['threads']} threads, torch {m['torch']}")
    for name, pair in res["pairs"].items():
        print(f"[{name}] flop ratio {pair['flop_ratio']:.3f}, parameters {pair['parameters']}")
        print(
            f"  {'run':<14}{'input':<10}{'dense seq/s':>12}{'ticket seq/s':>13}{'ratio':>7}"
            f"{'dense p50/p95 ms':>18}{'ticket p50/p95 ms':>19}{'ratio':>7}"
        )
        for key, by_input in pair["runs"].items():
            for kind, r in by_input.items():
                d, t = r["dense"], r["ticket"]
                print(
                    f"  {key:<14}{kind:<10}{d['throughput']:>12.1f}{t['throughput']:>13.1f}"
                    f"{r['throughput_ratio']:>7.3f}"
                    f"{d['latency_p50_ms']:>10.2f}/{d['latency_p95_ms']:<7.2f}{t['latency_p50_ms']:>11.2f}/"
                    f"{t['latency_p95_ms']:<7.2f}{r['latency_p50_ratio']:>7.3f}"
                )
        if "bf16" in pair:
            print(f"  bf16: {pair['bf16']}")
        if "checks" in pair:
            print(f"  checks: {pair['checks']}")
    h = res["headline"]
    print(
        "headline (batch 32 x 128, fp32): "
        + ", ".join(f"{k}={v:.3f}" for k, v in h.items() if isinstance(v, float))
        + f"; meets {h['meets_target']}"
    )


def main(argv=None) -> dict:
    args = parse_args(argv)
    return finish(run(args), args.json, print_table)


if __name__ == "__main__":
    main()
