#!/usr/bin/env python
"""How much can you prune? Each task's tickets on a ladder of FLOP ratios against tickettune's own dense run.

Per task and seed, in one process (scripts/benchkit/flow_arm.py runs every arm as `run_flow` does):
* ``dense`` — the `baseline: true` trial: the dense model fine-tuned for the task's budget (SST-2 1 epoch, CoLA 3).
  With ``--distill`` (the default) it then writes the teacher cache (its logits for every training row).
* ``continue@i`` — EarlyBERT tickets, `ticket_mode: continue` (the default), pruning i twelfths of each layer's
  heads and 0.1·i of the FFN neurons (i = 1..5: FLOP ratio ≈ 0.91, 0.81, 0.72, 0.62 (the paper's point), 0.53 on
  MiniLM at max_length 64); ``rewind@1`` and ``rewind@4`` the paper's mode at the light point and the paper's.
* ``continue@i+distill`` (``--distill``; ``--distill-modes`` adds rewind) — the same tickets whose ticket phase
  adds ``distill_weight · KL(dense/T ‖ ticket/T) · T²`` read from that cache (no teacher runs in a ticket step).
* ``--lever NAME:KEY=VALUE,...`` (repeatable) — one more ticket arm named NAME: `rung` (default 4) and `mode`
  (continue) pick its ladder point, the rest are FlowConfig overrides (e.g. ``ffn_scope=layer``, or ratios of
  its own); one with ``distill_weight`` reads the dense run's cache.
Each arm's dev metric, training seconds (search + ticket; evaluations excluded) and the ticket's FLOP ratio
(model/flops.py, from the ticket's layout, at max_length) are recorded; a distilled arm's time also carries the
cache's seconds (the dense run's teacher pass). `headline`, one entry per task: the lowest FLOP ratio whose mean
is within `tolerance_pt` of dense's mean (any mode, with or without distillation), its metric difference and
time ratio, and `distill_gain_pt`: the best distilled arm's mean minus the same arm's without distillation.

    python scripts/bench/ticket_map.py --tasks cola,sst2 --seeds 2 --json bench/ticket_map.json \
        --plot bench/ticket_map.png
    python scripts/bench/ticket_map.py --smoke  # a few steps on a subset: the script's plumbing, no figure

Time here: hours (2 tasks x 2 seeds x 13 arms, each a fine-tuning run of the budget) on the 2-core CPU; CoLA alone
with `--rungs 3,4 --rewind-rungs 4` (6 arms x 2 seeds) 61 min (2026-12-07, fp32 AVX2).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from tickettune.trainables.model.build import model_path
from tickettune.trainables.model.flops import Shape, train_flops_per_sequence
from tickettune.trainables.tasks import get_task

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # scripts/: the root of benchkit and the rooms
from benchkit.bench import cpu, finish, parse_sets
from benchkit.curves import save_figure
from benchkit.flow_arm import arm_flow

EPOCHS = {"sst2": 1.0, "cola": 3.0}
TOLERANCE_PT = {"cola": 1.5, "sst2": 0.3}  # the targets: MCC points, accuracy points
DEFAULT_TOLERANCE_PT = 1.0
RUNGS = (1, 2, 3, 4, 5)  # twelfths of each layer's heads pruned, with 0.1·i of the FFN: 4 is the paper's point
PAPER, LIGHT = 4, 1
DISTILL = "+distill"


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", default="cola,sst2")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--rungs", default=",".join(map(str, RUNGS)), help="ladder points i: heads i/12, FFN 0.1·i")
    ap.add_argument("--rewind-rungs", default=f"{LIGHT},{PAPER}", help="where the rewind mode is measured too")
    ap.add_argument("--distill", action=argparse.BooleanOptionalAction, default=True, help="the distilled arms")
    ap.add_argument("--distill-modes", default="continue", help="which modes get distilled arms (continue,rewind)")
    ap.add_argument("--distill-weight", type=float, default=1.0)
    ap.add_argument("--distill-temperature", type=float, default=2.0)
    ap.add_argument(
        "--lever",
        dest="levers",
        action="append",
        default=[],
        metavar="NAME:KEY=VALUE,...",
        help="an extra ticket arm, e.g. ffn-by-layer:rung=3,ffn_scope=layer or ffn-only:head_ratio=0,ffn_ratio=0.45",
    )
    ap.add_argument("--tolerance", type=float, default=None, help="pt; default: cola 1.5, sst2 0.3, else 1.0")
    ap.add_argument("--model", default="minilm-l6")
    ap.add_argument("--train-samples", type=int, default=None, help="default: the whole train split")
    ap.add_argument("--eval-samples", type=int, default=None, help="default: the whole dev split")
    ap.add_argument("--epochs", type=float, default=None, help="default: sst2 1, cola 3")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--precision", default="auto", help="unused by the flow arms (their own fast path decides)")
    ap.add_argument("--threads", type=int, default=2)
    # EarlyBERT as scripts/bench/time_to_accuracy.py runs it (the figures the issue starts from)
    ap.add_argument("--coef-lr", type=float, default=1e-2)
    ap.add_argument("--eps", type=float, default=0.2)
    ap.add_argument("--window", type=int, default=4)
    ap.add_argument("--mask-interval", type=int, default=10)
    ap.add_argument("--search-max-steps", type=int, default=400)
    ap.add_argument(
        "--detect",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="--no-detect: no early bird; every ticket is drawn at --search-max-steps (a later draw)",
    )
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument("--smoke", action="store_true", help="a few steps on 64 rows, two rungs: the plumbing only")
    args = ap.parse_args(argv)
    args.tasks = [get_task(t.strip()).name for t in args.tasks.split(",") if t.strip()]
    args.rungs = [int(r) for r in args.rungs.split(",") if r.strip()]
    args.rewind_rungs = [int(r) for r in args.rewind_rungs.split(",") if r.strip()]
    args.distill_modes = [m.strip() for m in args.distill_modes.split(",") if m.strip()]
    bad = [r for r in args.rungs + args.rewind_rungs if not 1 <= r <= 9] + [
        m for m in args.distill_modes if m not in ("continue", "rewind")
    ]
    if bad:
        ap.error(f"rungs are 1..9 and distill modes continue/rewind; got {bad}")
    try:
        args.levers = [parse_lever(text) for text in args.levers]
    except ValueError as e:
        ap.error(str(e))
    names = [arm_name(a) for a in arms_of(args)]
    if len(set(names)) < len(names):
        ap.error(f"two arms share a name: {sorted(n for n in set(names) if names.count(n) > 1)}")
    args.head_ratio, args.ffn_ratio = rung_ratios(PAPER)  # flow_arm's; each ticket arm sets its rung's
    if args.smoke:
        args.rungs, args.rewind_rungs, args.seeds = [LIGHT, PAPER], [PAPER], 1
        args.train_samples, args.eval_samples, args.batch_size, args.max_length = 64, 64, 8, 32
        args.epochs, args.search_max_steps, args.mask_interval, args.window, args.eps = 1.0, 4, 1, 2, 1.0
    return args


# ------------------------------------------------------------------------------------------------ the ladder


def dense_shape(model: str) -> Shape:
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(model_path(model))
    return Shape(
        hidden=c.hidden_size,
        head_dim=c.hidden_size // c.num_attention_heads,
        heads_per_layer=(c.num_attention_heads,) * c.num_hidden_layers,
        ffn_per_layer=(c.intermediate_size,) * c.num_hidden_layers,
    )


def rung_ratios(i: int) -> tuple[float, float]:
    """(head_ratio, ffn_ratio) of rung i: i/12 of each layer's heads, 0.1·i of the FFN (4: EarlyBERT's 1/3, 0.4)."""
    return i / 12, round(0.1 * i, 10)


def flop_ratio(dense: Shape, heads: list[int], ffn: list[int], seq: int) -> float:
    """A layout's training FLOPs per sequence over the dense model's (matmuls only, model/flops.py)."""
    ticket = Shape(dense.hidden, dense.head_dim, tuple(heads), tuple(ffn), dense.num_labels)
    return train_flops_per_sequence(ticket, seq) / train_flops_per_sequence(dense, seq)


def predicted_ratio(dense: Shape, i: int, seq: int) -> float:
    """Rung i's FLOP ratio before any ticket is drawn (floor of the head ratio per layer; FFN as a total)."""
    h, f = rung_ratios(i)
    heads = [n - int(h * n + 1e-9) for n in dense.heads_per_layer]
    ffn = [n * (1 - f) for n in dense.ffn_per_layer]
    return flop_ratio(dense, heads, ffn, seq)


def parse_lever(text: str) -> dict:
    """`NAME:rung=3,mode=continue,KEY=VALUE,...` -> a ticket arm whose other keys are FlowConfig overrides."""
    name, sep, rest = text.partition(":")
    pairs = [p.strip() for p in rest.split(",") if p.strip()]
    if not name.strip() or not sep or not pairs:
        raise ValueError(f"--lever {text!r}: expected NAME:KEY=VALUE,... (e.g. ffn-by-layer:rung=3,ffn_scope=layer)")
    picks, fields = {}, []
    for p in pairs:
        key, _, value = p.partition("=")
        if key.strip() in ("rung", "mode"):
            picks[key.strip()] = value.strip()
        else:
            fields.append(p)
    sets = parse_sets(fields)
    rung, mode = picks.get("rung", str(PAPER)), picks.get("mode", "continue")
    if not rung.isdigit() or not 1 <= int(rung) <= 9 or mode not in ("continue", "rewind"):
        raise ValueError(f"--lever {text!r}: rung is 1..9 and mode continue or rewind")
    rung = int(rung)
    distill = sets.get("distill_weight", 0.0) > 0
    return {"mode": mode, "rung": rung, "distill": distill, "lever": name.strip(), "sets": sets}


def arms_of(args) -> list[dict]:
    """Every ticket arm of a task-seed, in run order: the plain ladder, the distilled one, then the levers."""
    plain = [{"mode": "continue", "rung": i} for i in args.rungs]
    plain += [{"mode": "rewind", "rung": i} for i in args.rewind_rungs]
    arms = [{**a, "distill": False} for a in plain]
    if args.distill:
        arms += [{**a, "distill": True} for a in plain if a["mode"] in args.distill_modes]
    return arms + list(args.levers)


def arm_name(arm: dict) -> str:
    return arm.get("lever") or f"{arm['mode']}@{arm['rung']}" + (DISTILL if arm["distill"] else "")


# ------------------------------------------------------------------------------------------------------- run


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    dense = dense_shape(args.model)
    out = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": cpu()},  # partials too
        "tasks": {},
    }
    for task in args.tasks:
        epochs = args.epochs or EPOCHS.get(task, 1.0)
        ladder = {i: {"head_ratio": rung_ratios(i)[0], "ffn_ratio": rung_ratios(i)[1]} for i in RUNGS}
        for i in ladder:
            ladder[i]["predicted_flop_ratio"] = predicted_ratio(dense, i, args.max_length)
        runs: dict[str, list[dict]] = {"dense": []}
        for seed in range(args.seeds):
            with tempfile.TemporaryDirectory(prefix="ticket-map-") as tmp:
                cache = str(Path(tmp) / "teacher_cache")
                print(f"[{task} seed {seed}] dense ...", flush=True)
                distilling = any(a["distill"] for a in arms_of(args))  # the ladder's or a lever's
                sets = {"teacher_cache": cache} if distilling else {}
                r = arm_flow(args, task, seed, epochs, None, None, sets)
                r["teacher_cache_seconds"] = r["phase_seconds"].get("teacher_cache", 0.0)
                runs["dense"].append({**r, "seed": seed})
                for arm in arms_of(args):
                    name = arm_name(arm)
                    print(f"[{task} seed {seed}] {name} ...", flush=True)
                    r = ticket_arm(args, task, seed, epochs, arm, cache, dense)
                    if arm["distill"]:
                        r["teacher_cache_seconds"] = runs["dense"][-1]["teacher_cache_seconds"]
                    runs.setdefault(name, []).append({**r, "seed": seed})
                    print(f"  {name}: {r['metric']:.4f} at FLOP ratio {r['flop_ratio']:.3f}", flush=True)
                    out["tasks"][task] = {"epochs": epochs, "runs": runs, "partial": True}
                    save_partial(args, out)
        out["tasks"][task] = {
            "epochs": epochs,
            "metric": get_task(task).main_metric,
            "tolerance_pt": tolerance(args, task),
            "ladder": ladder,
            "runs": runs,
            "summary": summarize(runs),
        }
    out["headline"] = [headline(task, t) for task, t in out["tasks"].items()]
    return out


def ticket_arm(args, task: str, seed: int, epochs: float, arm: dict, cache: str, dense: Shape) -> dict:
    lever = dict(arm.get("sets", {}))
    h, f = rung_ratios(arm["rung"])
    h, f = lever.pop("head_ratio", h), lever.pop("ffn_ratio", f)  # flow_arm's own arguments
    sets = {} if args.detect else {"detect": False}
    if arm["distill"]:
        sets.update(
            distill_weight=args.distill_weight, distill_temperature=args.distill_temperature, teacher_cache=cache
        )
    sets.update(lever)
    at_rung = argparse.Namespace(**{**vars(args), "head_ratio": h, "ffn_ratio": f})
    r = arm_flow(at_rung, task, seed, epochs, None, arm["mode"], sets)
    lay = r["ticket_layout"]
    r["flop_ratio"] = flop_ratio(dense, lay["heads_per_layer"], lay["ffn_per_layer"], args.max_length)
    r.update(mode=arm["mode"], rung=arm["rung"], distill=arm["distill"], lever=arm.get("sets"))
    return r


def tolerance(args, task: str) -> float:
    return args.tolerance if args.tolerance is not None else TOLERANCE_PT.get(task, DEFAULT_TOLERANCE_PT)


def save_partial(args, out: dict) -> None:
    """What is measured so far, next to --json (atomically): `<name>.partial.json`."""
    if not args.json:
        return
    path = args.json.with_suffix(".partial.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=2, default=str))
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------------- figures


def _seconds(r: dict) -> float:
    """An arm's training seconds: search + ticket (dense: its training), a distilled arm's cache pass included."""
    return r["train_seconds"] + (r.get("teacher_cache_seconds", 0.0) if r.get("distill") else 0.0)


def summarize(runs: dict[str, list[dict]]) -> dict:
    dense_metric = statistics.fmean(r["metric"] for r in runs["dense"])
    dense_time = statistics.fmean(_seconds(r) for r in runs["dense"])
    out = {}
    for name, rs in runs.items():
        metric = statistics.fmean(r["metric"] for r in rs)
        out[name] = {
            "mean_metric": metric,
            "metrics": [r["metric"] for r in rs],
            "metric_diff_pt": 100 * (metric - dense_metric),
            "mean_train_seconds": statistics.fmean(_seconds(r) for r in rs),
            "time_ratio": statistics.fmean(_seconds(r) for r in rs) / dense_time,
            "flop_ratio": statistics.fmean(r.get("flop_ratio", 1.0) for r in rs),
        }
        if name != "dense":
            out[name].update(mode=rs[0]["mode"], rung=rs[0]["rung"], distill=rs[0]["distill"])
            if rs[0].get("lever"):
                out[name]["lever"] = rs[0]["lever"]
    return out


def headline(task: str, t: dict) -> dict:
    """The issue's fields: the lowest FLOP ratio within tolerance of dense (any arm), and distillation's gain."""
    s, tol = t["summary"], t["tolerance_pt"]
    tickets = {n: a for n, a in s.items() if n != "dense"}
    within = [a for a in tickets.values() if a["metric_diff_pt"] >= -tol]
    best = min(within, key=lambda a: (a["flop_ratio"], -a["mean_metric"])) if within else None
    distilled = [n for n, a in tickets.items() if a["distill"] and n.removesuffix(DISTILL) in tickets]
    gain = None
    if distilled:
        top = max(distilled, key=lambda n: tickets[n]["mean_metric"])
        gain = 100 * (tickets[top]["mean_metric"] - tickets[top.removesuffix(DISTILL)]["mean_metric"])
    return {
        "task": task,
        "tolerance_pt": tol,
        "dense_metric": s["dense"]["mean_metric"],
        "lowest_flop_ratio_within": best["flop_ratio"] if best else None,
        "its_metric_diff_pt": best["metric_diff_pt"] if best else None,
        "its_time_ratio": best["time_ratio"] if best else None,
        "distill_gain_pt": gain,
    }


def print_table(res: dict) -> None:
    for task, t in res["tasks"].items():
        if "summary" not in t:
            continue
        print(f"{task}: dev {t['metric']}, tolerance {t['tolerance_pt']} pt against tickettune dense")
        print(f"  {'arm':<22}{'FLOP ratio':>11}{'metric':>9}{'diff pt':>9}{'time ratio':>11}")
        for name, a in sorted(t["summary"].items(), key=lambda kv: (-kv[1]["flop_ratio"], kv[0])):
            print(
                f"  {name:<22}{a['flop_ratio']:>11.3f}{a['mean_metric']:>9.4f}{a['metric_diff_pt']:>+9.2f}"
                f"{a['time_ratio']:>11.3f}"
            )
    for h in res.get("headline") or []:
        print(f"headline: {json.dumps(h)}")


def plot_map(res: dict, path: Path) -> Path:
    """One panel per task: dev metric against FLOP ratio, one line per mode (seeds' range as bars), dense a band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in res["tasks"] if "summary" in res["tasks"][t]]
    fig, axes = plt.subplots(1, len(tasks), figsize=(6.0 * len(tasks), 4.4), squeeze=False)
    colors = {"continue": "tab:red", "rewind": "tab:blue"}
    for ax, task in zip(axes[0], tasks):
        t = res["tasks"][task]
        dense = t["summary"]["dense"]["metrics"]
        ax.axhspan(min(dense), max(dense), color="gray", alpha=0.25, label="dense (seeds' range)")
        ax.axhline(statistics.fmean(dense), color="gray", lw=1)
        lines: dict[tuple, list] = {}
        for name, a in t["summary"].items():
            if "lever" in a:  # a point of its own, named
                ax.plot(a["flop_ratio"], a["mean_metric"], "D", color="tab:green")
                ax.annotate(
                    name, (a["flop_ratio"], a["mean_metric"]), fontsize=7, xytext=(3, 3), textcoords="offset points"
                )
            elif "mode" in a:
                lines.setdefault((a["mode"], a["distill"]), []).append(a)
        for (mode, distilled), pts in sorted(lines.items()):
            pts.sort(key=lambda a: a["flop_ratio"])
            x = [a["flop_ratio"] for a in pts]
            y = [a["mean_metric"] for a in pts]
            err = [[m - min(a["metrics"]) for a, m in zip(pts, y)], [max(a["metrics"]) - m for a, m in zip(pts, y)]]
            label = mode + (DISTILL if distilled else "")
            style = {"ls": "--" if distilled else "-", "marker": "s" if distilled else "o", "capsize": 3}
            ax.errorbar(x, y, yerr=err, color=colors[mode], label=label, **style)
        ax.set_xlabel("ticket FLOP ratio (training, matmuls)")
        ax.set_ylabel(f"dev {t['metric']}")
        ax.set_title(f"{task}: how much can you prune?")
        ax.invert_xaxis()
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def main(argv=None) -> dict:
    args = parse_args(argv)
    res = run(args)
    if args.plot:
        plot_map(res, args.plot)
    out = finish(res, args.json, print_table)
    if args.json:
        args.json.with_suffix(".partial.json").unlink(missing_ok=True)
    return out


if __name__ == "__main__":
    main()
