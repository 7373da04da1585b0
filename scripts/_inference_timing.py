"""Timing one model against another for inference (scripts/bench_inference.py): a Runner per model, runtime and
precision; batch-1 latency and batch-N throughput measured request by request, alternating which goes first."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch


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
