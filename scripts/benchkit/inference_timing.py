"""Timing one model against another for inference (scripts/bench/inference.py): a Runner per model, runtime and
precision; batch-1 latency and batch-N throughput measured request by request, alternating which goes first; the
inputs (SST-2 dev sentences, fixed 128-token rows) and a pair's runs over every runtime and precision."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch

from tickettune.trainables.model.build import count_parameters, layout
from tickettune.trainables.model.flops import shape_of, train_flops_per_sequence
from tickettune.trainables.tasks.glue import load_glue
from tickettune.trainables.training.precision import cpu_has_fast_bf16


class Runner:
    """One model in one runtime at one precision: __call__(batch) -> logits as numpy."""

    def __init__(self, model, runtime: str, precision: str, onnx_path: Path | None, threads: int):
        self.runtime, self.precision = runtime, precision
        if runtime == "ort":
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            self.sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        else:
            self.model = torch.compile(model) if runtime == "compile" else model

    @torch.no_grad()
    def __call__(self, batch: dict) -> np.ndarray:
        if self.runtime == "ort":
            return self.sess.run(None, {k: v.numpy() for k, v in batch.items()})[0]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            return self.model(**batch).logits.float().numpy()


def timed(run, batch) -> float:
    t = time.perf_counter()
    run(batch)
    return time.perf_counter() - t


def measure(runners: dict[str, Runner], data: dict[str, list[dict]], batch_size: int, warm: int) -> dict:
    """Batch-1 latency and batch-N throughput of each arm, interleaved request by request."""
    for _ in range(warm):  # every input once (torch.compile compiles its shapes here)
        for batches in data.values():
            for b in batches:
                for r in runners.values():
                    r(b)
    out = {arm: {} for arm in runners}
    for kind, batches in data.items():
        times = {arm: [] for arm in runners}
        for i, b in enumerate(batches):
            for arm in list(runners) if i % 2 == 0 else list(runners)[::-1]:
                times[arm].append(timed(runners[arm], b))
        for arm, t in times.items():
            ms = 1e3 * np.asarray(t)
            if kind == "b1":
                out[arm].update(
                    latency_p50_ms=float(np.percentile(ms, 50)), latency_p95_ms=float(np.percentile(ms, 95))
                )
            else:
                out[arm].update(
                    batch_ms=float(statistics.median(ms)), throughput=batch_size / (statistics.median(ms) / 1e3)
                )
    return out


def ratios(res: dict) -> dict:
    d, t = res["dense"], res["ticket"]
    return {
        "throughput_ratio": t["throughput"] / d["throughput"],
        "latency_p50_ratio": t["latency_p50_ms"] / d["latency_p50_ms"],
    }


def flop_ratio(dense, ticket, seq: int) -> float:
    return train_flops_per_sequence(shape_of(ticket), seq) / train_flops_per_sequence(shape_of(dense), seq)


def inputs(tok, args) -> dict[str, dict[str, list[dict]]]:
    """{"sst2": {"b1": [...], "b32": [...]}, "fixed128": {...}}: tokenised batches (dicts of tensors)."""
    need = max(args.requests, args.batches * args.batch_size, args.check_rows)
    sentences = list(load_glue("sst2", "dev", root=args.data_root)["sentence"])
    names = [n for n in tok.model_input_names if n in ("input_ids", "attention_mask", "token_type_ids")]

    def enc(texts, **kw):
        e = tok(texts, return_tensors="pt", truncation=True, max_length=args.seq_len, **kw)
        return {k: e[k] for k in names}

    b1 = [enc([s]) for s in (sentences * (need // len(sentences) + 1))[: args.requests]]
    b32 = [
        enc(sentences[i : i + args.batch_size], padding=True)
        for i in range(0, args.batches * args.batch_size, args.batch_size)
    ]
    ids = [i for row in tok(sentences, add_special_tokens=False)["input_ids"] for i in row]  # run together
    body = args.seq_len - 2
    rows = [[tok.cls_token_id, *ids[i : i + body], tok.sep_token_id] for i in range(0, len(ids) - body, body)]
    rows = (rows * (need // len(rows) + 1))[: max(args.requests, args.batches * args.batch_size)]

    def fixed(chunk):
        t = torch.tensor(chunk)
        out = {"input_ids": t, "attention_mask": torch.ones_like(t), "token_type_ids": torch.zeros_like(t)}
        return {k: out[k] for k in names}

    f1 = [fixed(rows[i : i + 1]) for i in range(args.requests)]
    f32 = [fixed(rows[i : i + args.batch_size]) for i in range(0, args.batches * args.batch_size, args.batch_size)]
    return {"sst2": {"b1": b1, "b32": b32}, "fixed128": {"b1": f1, "b32": f32}}, sentences


def time_pair(name, dense, ticket, tok, data, args, work: Path) -> dict:
    threads = torch.get_num_threads()
    onnx = {}
    if "ort" in args.runtimes:
        from tickettune.trainables.ticket.onnx_export import export_onnx

        for arm, m in (("dense", dense), ("ticket", ticket)):
            onnx[arm] = export_onnx(m, tok, "classification", work / f"{name}-{arm}.onnx")["path"]
    precisions = ["fp32"] + (["bf16"] if cpu_has_fast_bf16() or args.bf16 else [])
    out = {
        "flop_ratio": flop_ratio(dense, ticket, args.seq_len),
        "layout": layout(ticket),
        "parameters": {"dense": count_parameters(dense), "ticket": count_parameters(ticket)},
        "runs": {},
    }
    if "bf16" not in precisions:
        out["bf16"] = (
            "skipped: this CPU has no AMX / AVX512-BF16 (bf16 is emulated and slower than fp32); --bf16 "
            "measures it anyway"
        )
    elif not cpu_has_fast_bf16():
        out["bf16"] = "measured on request; emulated on this CPU (no AMX / AVX512-BF16)"
    for runtime in args.runtimes:
        for prec in precisions if runtime != "ort" else ["fp32"]:
            runners = {
                arm: Runner(m, runtime, prec, Path(onnx.get(arm, ".")), threads)
                for arm, m in (("dense", dense), ("ticket", ticket))
            }
            key = f"{runtime}_{prec}"
            out["runs"][key] = {}
            for kind, d in data.items():
                t0 = time.perf_counter()
                res = measure(runners, d, args.batch_size, 2 if runtime == "compile" else 1)
                out["runs"][key][kind] = {**res, **ratios(res), "seconds": time.perf_counter() - t0}
                print(
                    f"  {name} {key:<13} {kind:<9} throughput ticket/dense "
                    f"{out['runs'][key][kind]['throughput_ratio']:.3f}"
                    f"  batch-1 p50 ticket/dense {out['runs'][key][kind]['latency_p50_ratio']:.3f}",
                    flush=True,
                )
    return out
