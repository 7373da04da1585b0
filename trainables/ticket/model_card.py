"""The model card (README.md, the hub's convention) written into every ticket folder.

It says what the ticket is and how to load it without tickettune; everything in it comes from the
model (widths, sizes) and the ticket's `info` (task, base model, metrics, search settings), passed in
as plain values so that this module knows nothing of torch or of how a ticket is built.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

CARD_FILE = "README.md"
PIPELINE_TAGS = {
    "classification": "text-classification",
    "regression": "text-classification",
    "mlm": "fill-mask",
    "qa": "question-answering",
}
# info keys that are search settings (besides the flow config, which holds the rest)
SETTING_KEYS = (
    "budget_steps",
    "mask_config",
    "lambda_head",
    "lambda_ffn",
    "eps",
    "window",
    "mask_interval",
    "found_at_step",
    "early_bird_step",
    "converged",
    "rewind",
)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class CardFacts:
    head: str
    auto_class: str  # the transformers Auto class that loads the head
    family: str  # stock model_type: "bert"
    layout: dict  # pre_ln, heads_per_layer, ffn_per_layer
    dense_heads: int  # per layer, in the model the ticket was cut from
    dense_ffn: int
    parameters: int
    dense_parameters: int
    flop_ratio: float  # training FLOPs per sequence, ticket / dense
    seq_len: int  # ... at this sequence length
    format_version: int
    info: dict = field(default_factory=dict)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return f"`{json.dumps(value, separators=(',', ':'))}`"
    return f"`{value}`" if isinstance(value, str) else str(value)


def _origin(info: dict) -> tuple[str, str | None]:
    """(base model as the user named it, its hub id when it looks like one)."""
    flow = info.get("flow") or {}
    base = info.get("base_model") or flow.get("model")
    if flow.get("scratch"):
        return f"none: pre-trained from random weights by tickettune ({_fmt(flow['scratch'])})", None
    if not base:
        return "not recorded", None
    return f"`{base}`", base if _HUB_ID.match(str(base)) else None


def _metrics(info: dict) -> dict[str, Any]:
    out = dict(info.get("metrics") or {})
    if info.get("metric") and "val_metric" in info:
        out[str(info["metric"])] = info["val_metric"]
    if "relative_cost" in info:
        out["relative_cost (training FLOPs of the whole run / the dense run it replaces)"] = info["relative_cost"]
    if "relative_time" in info:
        out["relative_time (training time / the dense run's)"] = info["relative_time"]
    return out


def _settings(info: dict) -> dict[str, Any]:
    flow = info.get("flow") or {}
    out = {
        k: v
        for k, v in flow.items()
        if v is not None and not isinstance(v, (dict, list)) and not (k == "model" and flow.get("scratch"))
    }  # a scratch model names only its tokenizer's source
    out.update({k: info[k] for k in SETTING_KEYS if info.get(k) is not None})
    return out


def _table(rows: dict[str, Any], head: tuple[str, str]) -> list[str]:
    return [f"| {head[0]} | {head[1]} |", "|---|---|"] + [f"| {k} | {_fmt(v)} |" for k, v in rows.items()]


def render(f: CardFacts) -> str:
    info = f.info
    flow = info.get("flow") or {}
    task = info.get("task") or flow.get("task") or "not recorded"
    if isinstance(task, dict):  # the task's own record (tasks.Task.info) or a user's own-data description
        task = task.get("name") or "own data"
    base, hub_id = _origin(info)
    lay = f.layout
    n = len(lay["heads_per_layer"])
    meta = [
        "---",
        "library_name: transformers",
        f"pipeline_tag: {PIPELINE_TAGS.get(f.head, 'feature-extraction')}",
        "tags:",
        "- tickettune",
        "- earlybert",
        "- structured-pruning",
        f"- {f.family}",
    ]
    if hub_id:
        meta.append(f"base_model: {hub_id}")
    lines = meta + [
        "---",
        "",
        f"# tickettune ticket: {f.family}, {f.head} head, task {task}",
        "",
        f"A structurally pruned {f.family} model found by tickettune (EarlyBERT: slimming coefficients "
        f"under L1 during training select the attention heads and FFN neurons to keep). Each layer "
        f"keeps its own number of heads and FFN neurons, so the model code travels with the folder "
        f"(`configuration_tickettune.py`, `modeling_tickettune.py`, ticket format {f.format_version}); "
        "it needs only torch and transformers.",
        "",
        f"- base model: {base}",
        f"- task: `{task}`, head: `{f.head}`",
        f"- {'pre' if lay['pre_ln'] else 'post'}-LayerNorm blocks, {n} layers",
        "",
        "## Loading",
        "",
        "```python",
        f"from transformers import {f.auto_class}, AutoTokenizer",
        'tokenizer = AutoTokenizer.from_pretrained("path/to/ticket", trust_remote_code=True)',
        f'model = {f.auto_class}.from_pretrained("path/to/ticket", trust_remote_code=True)',
        "```",
        "",
        "Any other Auto class in `config.json`'s `auto_map` loads the same encoder with a new head "
        "(e.g. an MLM ticket as a classifier for fine-tuning). tickettune loads it too "
        "(`tickettune.trainables.ticket.format.load_ticket`).",
        "",
        "## Size",
        "",
        "| | ticket | dense | ratio |",
        "|---|---|---|---|",
        f"| parameters | {f.parameters:,} | {f.dense_parameters:,} | {f.parameters / f.dense_parameters:.3f} |",
        f"| training FLOPs per sequence of {f.seq_len} tokens (matmuls) | | | {f.flop_ratio:.3f} |",
        "",
        "## Heads and FFN width per layer",
        "",
        "| layer | heads kept | FFN neurons kept |",
        "|---|---|---|",
    ]
    lines += [
        f"| {i} | {h} / {f.dense_heads} | {w} / {f.dense_ffn} |"
        for i, (h, w) in enumerate(zip(lay["heads_per_layer"], lay["ffn_per_layer"]))
    ]
    metrics, settings = _metrics(info), _settings(info)
    lines += ["", "## Metrics", ""] + (_table(metrics, ("metric", "value")) if metrics else ["not recorded"])
    lines += ["", "## Search settings", ""] + (_table(settings, ("setting", "value")) if settings else ["not recorded"])
    lines += _inference_speed(info.get(SPEED_KEY))
    lines += ["", "The masks themselves and every other recorded value are in `ticket.json`.", ""]
    return "\n".join(lines)


SPEED_KEY = "inference_speed"  # written by scripts/bench/inference.py (ticket ./ dense, same process)


def _inference_speed(speed: dict | None) -> list[str]:
    """The optional section: measured inference throughput of the ticket against its dense model."""
    if not speed:
        return []
    lines = [
        "",
        "## Inference speed",
        "",
        f"Measured by `{speed.get('command', 'scripts/bench/inference.py')}` on {speed.get('cpu', 'a CPU')}, "
        f"{speed.get('threads', '?')} threads, batch {speed.get('batch', '?')} x {speed.get('seq_len', '?')} "
        f"tokens, medians after warm-up (matmul FLOP ratio {_fmt(speed.get('flop_ratio'))}). "
        f"{speed.get('note', '')}".rstrip(),
        "",
        "| runtime | dense seq/s | ticket seq/s | speedup |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['runtime']} | {r['dense']:.1f} | {r['ticket']:.1f} | {r['ticket'] / r['dense']:.2f}x |"
        for r in speed.get("rows", [])
    ]
    if speed.get("batch1_latency_ratio") is not None:
        lines += ["", f"Batch-1 latency (p50), ticket / dense: {speed['batch1_latency_ratio']:.3f}."]
    return lines
