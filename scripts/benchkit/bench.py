"""What every benchmark script shares: the table + --json at the end, and device-aware timing."""

from __future__ import annotations

import functools
import json
import platform
import subprocess
import time
from typing import Callable

import torch


def finish(res: dict, json_path, print_table: Callable[[dict], None]) -> dict:
    """Print the table, and write the JSON with the CPU it ran on (lscpu) where the script has not put it."""
    machine = res.setdefault("machine", {})
    if isinstance(machine, dict) and "model_name" not in machine and "cpu" not in machine:
        machine["cpu"] = cpu()
    print_table(res)
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(res, indent=2))
    return res


CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")


def run_all(procs: list, what: str) -> None:
    """Start every process, wait for all, and raise naming the exit codes if any failed."""
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"{what} processes failed with exit codes {failed}")


def cpu() -> dict:
    """lscpu's model name and those of its flags that decide fast fp32 / bf16 paths: the CPU under these machines
    changes between sessions, so every benchmark JSON records it. lscpu runs once per process."""
    model_name, flags = _lscpu()
    return {"model_name": model_name, "flags": list(flags)}


def machine() -> dict:
    """What a benchmark JSON records of the machine: the CPU (model and fast-path flags), cores, torch, the
    precision tickettune's `auto` picks here, the GPU where there is one."""
    import os

    from tickettune.trainables.training.precision import Precision

    c = cpu()
    info = {
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "precision_auto": Precision.of("auto", "cuda" if torch.cuda.is_available() else "cpu").name,
        "cpu": c["model_name"] or None,
        "flags": c["flags"],
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


@functools.lru_cache(maxsize=1)
def _lscpu() -> tuple[str, tuple[str, ...]]:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        text = ""
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    present = set(fields.get("Flags", "").split())
    return fields.get("Model name", platform.processor()).strip(), tuple(f for f in CPU_FLAGS if f in present)


def now(device: torch.device) -> float:
    """perf_counter once the device has finished its queued work (CUDA kernels run asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def device_of(name: str) -> torch.device:
    """`--device`: "cpu", or "cuda" (the current GPU, TF32 on for fp32 as in the trials); SystemExit without one."""
    if name == "cpu":
        return torch.device("cpu")
    from tickettune.trainables.training.device import place

    if not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: torch {torch.__version__} sees no CUDA device")
    return place(True).device


def device_info(device: torch.device) -> dict:
    if device.type != "cuda":
        return {"device": "cpu"}
    return {
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device.index),
        "cuda": torch.version.cuda,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
    }


def hf_training_args(out: str, *, batch_size: int, lr: float, epochs: float, amp, seed: int, **extra):
    """`TrainingArguments` for every HF arm: the recipe they all hold fixed (10% linear warm-up, weight decay
    0.01, clipping at 1.0, no saving or logging, CPU unless CUDA, batches built in the main process, like
    tickettune's loop); `amp` is a resolved `Precision`; `extra` carries what an arm varies."""
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=out,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=64,
        learning_rate=lr,
        num_train_epochs=epochs,
        warmup_steps=0.1,
        weight_decay=0.01,
        max_grad_norm=1.0,
        lr_scheduler_type="linear",
        optim="adamw_torch_fused",  # transformers' default with torch >= 2.8, spelled out
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
        **extra,
    )


def flow_config(args, task, seed: int, **fields):
    """A FlowConfig on the flags the benchmarks share (model, data, samples, length, batch, precision, lr)."""
    from tickettune.trainables.config import FlowConfig

    shared = dict(
        model=args.model,
        task=task,
        data_root=args.data_root,
        max_train_samples=args.train_samples,
        max_eval_samples=args.eval_samples,
        max_length=args.max_length,
        batch_size=args.batch_size,
        seed=seed,
        precision=args.precision,
        lr=args.lr,
    )
    return FlowConfig(**{**shared, **fields})  # an arm's own fields (e.g. --set precision=bf16-master) win


def parse_sets(items: list[str]) -> dict:
    """`key=value` strings -> FlowConfig overrides (YAML scalars: true, 8, null, bf16), checked against
    FlowConfig's fields and its own validation before anything runs."""
    import dataclasses

    import yaml

    from tickettune.trainables.config import FlowConfig

    fields = {f.name for f in dataclasses.fields(FlowConfig)}
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in fields:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE with KEY a FlowConfig field")
        out[key] = yaml.safe_load(value)
    FlowConfig(**out)  # its own checks name a bad value
    return out
