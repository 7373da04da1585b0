#!/usr/bin/env python
"""The steps of scripts/gpu_check.sh that are Python: bundle, CUDA probe, random BERT-base, flow, DDP, summary.

The GPU machines have torch (CUDA), transformers, numpy, pyarrow, pandas, scikit-learn, scipy and
pytest, but no Ray, Optuna, W&B or `datasets`, no network, and no shared data folder. `prepare` (run
here, online) fills a git-ignored bundle folder that travels with the working tree:

    gpu_bundle/wheels/     py3.12 manylinux wheels of `datasets` and the packages it needs that a
                           transformers install lacks (dill, multiprocess, xxhash, fsspec), at the versions
                           tested here; `install` puts the missing ones into a temporary folder
    gpu_bundle/tokenizer/  the MiniLM (bert-base-uncased) vocabulary; the models themselves are random
    gpu_bundle/data/       the shared SST-2 (train, dev) and WikiText-2 (valid, test) files, unchanged

Every step writes JSON into the output folder; `summary` gathers them with the GPU's name.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bundle import install, prepare, write_json  # scripts/gpu/bundle.py: this script's folder is on sys.path

BERT_BASE = {"layers": 12, "heads": 12, "hidden": 768, "ffn": 3072}
TINY = {"layers": 2, "heads": 4, "hidden": 64, "ffn": 128}  # --smoke: the script's logic, not a measurement


# ------------------------------------------------------------------------------------------ the device


def cuda_info() -> dict:
    import torch

    info = {
        "torch": torch.__version__,
        "cuda_build": torch.version.cuda,
        "python": platform.python_version(),
        "cuda_available": torch.cuda.is_available(),
    }
    if info["cuda_available"]:
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu=torch.cuda.get_device_name(0),
            gpus=torch.cuda.device_count(),
            memory_gib=round(props.total_memory / 2**30, 1),
            capability=f"{props.major}.{props.minor}",
            bf16=torch.cuda.is_bf16_supported(),
            nccl=torch.distributed.is_nccl_available(),
            cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
        )
    return info


def random_bert(out: Path, tokenizer: Path, size: dict) -> None:
    """A BERT with random weights at `size`, saved as a Hugging Face folder with the bundled vocabulary."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tok = AutoTokenizer.from_pretrained(str(tokenizer))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=size["hidden"],
        num_hidden_layers=size["layers"],
        num_attention_heads=size["heads"],
        intermediate_size=size["ffn"],
        num_labels=2,
        pad_token_id=tok.pad_token_id,
    )
    BertForSequenceClassification(config).save_pretrained(out)
    tok.save_pretrained(out)


# ------------------------------------------------------------------------------------------ flow and DDP


def flow_config(args, **extra):
    from tickettune.trainables.config import FlowConfig

    steps = 20 if args.smoke else 150
    return FlowConfig(
        model=str(args.model),
        task="sst2",
        data_root=str(args.data_root),
        max_train_samples=256 if args.smoke else 4000,
        max_eval_samples=64 if args.smoke else None,
        max_length=64,
        batch_size=8 if args.smoke else 32,
        lr=1e-4,
        ticket_lr=1e-4,
        search_max_steps=steps,
        ticket_steps=steps,
        mask_interval=5 if args.smoke else 10,
        window=4,
        eps=0.2,
        unconverged="ticket",
        precision=args.precision,
        **extra,
    )


def _result(res, seconds: float, device: str) -> dict:
    return {
        "val_metric": res.val_metric,
        "metric": res.metric_name,
        "converged": res.converged,
        "early_bird_step": res.early_bird_step,
        "search_steps": res.search_steps,
        "ticket_steps": res.ticket_steps,
        "relative_cost": res.relative_cost,
        "seconds": res.seconds,
        "wall_seconds": seconds,
        "device": device,
    }


def flow(args) -> dict:
    """One EarlyBERT trial (search -> early bird -> prune -> ticket -> eval -> save) on the device."""
    from tickettune.trainables.flow import run_flow
    from tickettune.trainables.reporter import LocalReporter

    reporter = LocalReporter(verbose=False, device=args.device)
    if args.device == "cuda" and reporter.device.type != "cuda":
        raise SystemExit(f"flow: asked for CUDA, got {reporter.placement.reason}")
    ticket = Path(tempfile.mkdtemp(prefix="gpu_check_ticket_")) / "ticket"
    start = time.perf_counter()
    try:
        res = run_flow(flow_config(args), reporter, ticket_dir=str(ticket))
        out = _result(res, time.perf_counter() - start, str(reporter.device))
        out["ticket_files"] = sorted(p.name for p in ticket.iterdir())
    finally:
        shutil.rmtree(ticket.parent, ignore_errors=True)  # hundreds of MB at BERT-base: the figures stay
    return out


class OneProcessDDP:
    """A `Reporter` over a torch.distributed group of one process: DDP-wrapped model, batches on the
    device, the early-bird decision broadcast from rank 0: the code path of a multi-GPU Ray Train trial."""

    rank, world_size = 0, 1
    takes_checkpoints = False  # the Reporter protocol's: this check times a trial, it never resumes one

    def __init__(self, device):
        from tickettune.trainables.training.device import DeviceLoader

        self.device, self._loader = device, DeviceLoader
        self.reports = 0

    def report(self, metrics: dict, checkpoint_dir: str | None = None) -> None:
        self.reports += 1

    def checkpoint(self) -> str | None:
        return None

    def checkpoint_dir(self) -> str:
        return tempfile.mkdtemp(prefix="gpu_check_ckpt_")

    def agree(self, flag: bool) -> bool:
        import torch
        import torch.distributed as dist

        t = torch.tensor([int(flag)], device=self.device)
        dist.broadcast(t, src=0)
        return bool(t.item())

    def prepare_model(self, model, find_unused: bool = False):
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = model.to(self.device)
        ids = [self.device] if self.device.type == "cuda" else None
        return DDP(model, device_ids=ids, find_unused_parameters=find_unused)

    def prepare_loader(self, loader):
        return self._loader(loader, self.device) if self.device.type == "cuda" else loader


def ddp(args) -> dict:
    """The flow inside a one-process nccl group (gloo in --smoke), PLD in both phases: DDP with
    find_unused_parameters, AMP, the collective early-bird agreement."""
    import socket

    import torch
    import torch.distributed as dist

    from tickettune.trainables.flow import run_flow
    from tickettune.trainables.training.device import place

    placement = place(args.device == "cuda")
    backend = "nccl" if placement.device.type == "cuda" else "gloo"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kw = {"device_id": placement.device} if backend == "nccl" else {}
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1, **kw)
    try:
        reporter = OneProcessDDP(placement.device)
        start = time.perf_counter()
        cfg = flow_config(args, pld=True, pld_phase="both", theta_bar=0.5, gamma=0.01)
        res = run_flow(cfg, reporter)
        t = torch.ones(4, device=placement.device)
        dist.all_reduce(t)
        out = _result(res, time.perf_counter() - start, str(placement.device))
        out.update(backend=dist.get_backend(), reports=reporter.reports, all_reduce_ok=t.tolist() == [1.0] * 4)
        return out
    finally:
        dist.destroy_process_group()


# ------------------------------------------------------------------------------------------ summary


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _bench_figures(res: dict | None) -> dict | None:
    if res is None:
        return None
    keys = (
        "step_time_ratio",
        "flop_ratio",
        "bf16_over_fp32",
        "ratio_median",
        "realized_layer_fraction",
        "expected_flop_fraction",
        "headline_precision",
    )
    out = {k: res[k] for k in keys if k in res}
    for prec, pr in (res.get("precisions") or {}).items():
        if "variants" not in pr:  # bench/pld_speed.py: per precision, its ratio and times per sample
            out[prec] = {k: pr[k] for k in ("ratio_median", "sec_per_sample") if k in pr}
            continue
        head = pr["variants"][next(iter(pr["variants"]))]  # bench/ticket_speed.py: per precision
        out[prec] = {
            "dense_ms": head["dense"]["step_ms"],
            "ticket_ms": head["ticket"]["step_ms"],
            "step_time_ratio": pr["step_time_ratio"],
        }
    if "variants" in res and "precisions" not in res:
        head = res["variants"][next(iter(res["variants"]))]
        out["dense_ms"], out["ticket_ms"] = head["dense"]["step_ms"], head["ticket"]["step_ms"]
    if "sec_per_sample" in res:
        out["ms_per_sample"] = {k: 1e3 * v for k, v in res["sec_per_sample"]["median"].items()}
    for k, v in res.items():  # bench/pld_speed.py: per precision, whatever its layout
        if isinstance(v, dict) and "ratio_median" in v:
            out[k] = {kk: v[kk] for kk in ("ratio_median", "sec_per_sample") if kk in v}
    return out


def summary(out: Path) -> int:
    steps = []
    tsv = out / "steps.tsv"
    for line in tsv.read_text().splitlines() if tsv.exists() else []:
        name, rc, seconds = line.split("\t")[:3]
        steps.append({"step": name, "rc": int(rc), "seconds": float(seconds)})
    device = _load(out / "device.json") or {}
    result = {
        "gpu": device.get("gpu"),
        "device": device,
        "smoke": (out / "SMOKE").exists(),
        "ok": bool(steps) and all(s["rc"] == 0 for s in steps),
        "steps": steps,
        "ticket_speed": _bench_figures(_load(out / "ticket_speed.json")),
        "pld_speed": _bench_figures(_load(out / "pld_speed.json")),
        "fast_path": _load(out / "fast_path.json"),
        "flow": _load(out / "flow.json"),
        "ddp": _load(out / "ddp.json"),
        "install": _load(out / "install.json"),
        "tests": _load(out / "tests.json"),
    }
    write_json(out / "summary.json", result)
    lines = [
        f"GPU check on {result['gpu'] or 'NO GPU'} (torch {device.get('torch')}, CUDA {device.get('cuda_build')})"
        + ("  [SMOKE RUN ON THE CPU: nothing here is a GPU measurement]" if result["smoke"] else "")
    ]
    lines += [
        f"  {s['step']:<14} {'ok' if s['rc'] == 0 else 'FAILED rc=%d' % s['rc']:<12} {s['seconds']:7.1f} s"
        for s in steps
    ]
    for key in ("ticket_speed", "pld_speed", "fast_path", "flow", "ddp", "tests"):
        if result[key]:
            lines.append(f"{key}: {json.dumps(result[key], default=str)}")
    lines.append("all steps passed" if result["ok"] else "SOME STEPS FAILED: see the *.log files")
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if result["ok"] else 1


# ------------------------------------------------------------------------------------------ CLI


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="fill the bundle folder (online, here)")
    p.add_argument("bundle", type=Path)
    p.add_argument("--data-root", type=Path, default=None)
    p = sub.add_parser("install", help="put the bundle's missing wheels into SITE")
    p.add_argument("bundle", type=Path)
    p.add_argument("site", type=Path)
    p.add_argument("--json", type=Path, required=True)
    p = sub.add_parser("cuda", help="write the device's description; exit 3 without CUDA")
    p.add_argument("--json", type=Path, required=True)
    p = sub.add_parser("bert", help="save a random BERT (BERT-base, or tiny with --smoke)")
    p.add_argument("out", type=Path)
    p.add_argument("--tokenizer", type=Path, required=True)
    p.add_argument("--smoke", action="store_true")
    for name in ("flow", "ddp"):
        p = sub.add_parser(name)
        p.add_argument("out", type=Path)
        p.add_argument("--model", type=Path, required=True)
        p.add_argument("--data-root", type=Path, required=True)
        p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
        p.add_argument("--precision", default="auto")
        p.add_argument("--smoke", action="store_true")
    p = sub.add_parser("summary")
    p.add_argument("out", type=Path)
    args = ap.parse_args(argv)

    if args.cmd == "prepare":
        prepare(args.bundle, args.data_root)
    elif args.cmd == "install":
        write_json(args.json, install(args.bundle, args.site))
    elif args.cmd == "cuda":
        info = cuda_info()
        write_json(args.json, info)
        if not info["cuda_available"]:
            print(
                f"NO CUDA DEVICE: torch {info['torch']} (built with CUDA {info['cuda_build']}) sees no GPU; "
                f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}",
                file=sys.stderr,
            )
            return 3
        print(
            f"{info['gpu']} x{info['gpus']}, {info['memory_gib']} GiB, capability {info['capability']}, "
            f"bf16 {info['bf16']}, nccl {info['nccl']}; torch {info['torch']}, CUDA {info['cuda_build']}"
        )
    elif args.cmd == "bert":
        random_bert(args.out, args.tokenizer, TINY if args.smoke else BERT_BASE)
    elif args.cmd in ("flow", "ddp"):
        res = flow(args) if args.cmd == "flow" else ddp(args)
        write_json(args.out / f"{args.cmd}.json", res)
        print(json.dumps(res, default=str))
    elif args.cmd == "summary":
        return summary(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
