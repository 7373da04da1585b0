"""Scoring two searches against each other (the search-against-search benchmark): fronts, bests, the
fastest tickettune ticket as good as HF's best, and the plot. Inputs are the plain trial lists that
`hf_search.hf_search` and the benchmark's tickettune arm return.

A trial stopped early (tickettune: `stopped`, by ASHA; HF: state PRUNED, by the MedianPruner) has a metric
from part of its budget: it counts in a search's wall-clock, never as a best, a front point or a ticket."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from tickettune.searcher.front import non_dominated


def _finite(trials: list[dict]) -> list[dict]:
    return [t for t in trials if math.isfinite(t["metric"]) and math.isfinite(t["train_seconds"])]


def complete(trials: list[dict]) -> list[dict]:
    """The trials that trained their whole budget: neither stopped by a scheduler nor pruned."""
    return [t for t in trials if not t.get("stopped") and t.get("state", "COMPLETE") != "PRUNED"]


def stopped_early(trials: list[dict]) -> int:
    return len(trials) - len(complete(trials))


def front(trials: list[dict]) -> list[dict]:
    """The trials no other trial beats on both dev metric (max) and training wall-clock (min), best first;
    trials stopped early left out."""
    pool = complete(_finite(trials))
    return [pool[i] for i in non_dominated([(t["metric"], t["train_seconds"]) for t in pool], ["max", "min"])]


def earlier_hf(path: Path, task: str, seed: int) -> dict:
    """The HF arms of `task` and `seed` in an earlier run's JSON, with when, on which CPU and at which first rung
    (the pruned arm's evaluations) they were measured."""
    res = json.loads(path.read_text())
    entry = res.get("tasks", {}).get(task)
    run = next((r for r in (entry or {}).get("runs", []) if r["seed"] == seed), None)
    if run is None:
        raise SystemExit(f"--hf-from {path}: no {task} seed {seed} run in it")
    return {
        "hf": run["hf"],
        "hf_pruned": run.get("hf_pruned"),
        "measured": entry.get("measured"),
        "cpu": res.get("machine", {}).get("cpu"),
        "first_rung": res.get("config", {}).get("first_rung", 0.25),
    }


def _id(t: dict) -> str:
    return str(t.get("trial_id", t.get("number")))


def compare(hf: dict, tt: dict, tolerance_pt: float, hf_pruned: dict | None = None) -> dict:
    """The issue's figures for one task and seed.

    wall_ratio: tickettune's whole search / HF's. best_diff_pt: (tickettune's best ticket − HF's best
    trial) × 100. fast_trial: the tickettune ticket with the least training wall-clock among those within
    `tolerance_pt` of HF's best; fast_time_ratio: its training seconds / the mean HF trial's (each a dense
    fine-tune of the budget); fast_diff_pt: its metric − HF's best, in points. None where nothing qualifies.
    With `hf_pruned` (the HF search with a MedianPruner): wall_ratio_pruned (tickettune's search / that one),
    its best and best_diff_pt_pruned. stopped_early: trials stopped by the scheduler / the pruner, per side.
    """
    hf_ok = complete(_finite(hf["trials"]))
    tickets = [t for t in complete(_finite(tt["trials"])) if not t["baseline"]]
    base = [t for t in _finite(tt["trials"]) if t["baseline"]]
    hf_best = max((t["metric"] for t in hf_ok), default=math.nan)
    tt_best = max((t["metric"] for t in tickets), default=math.nan)
    dense_s = statistics.fmean(t["train_seconds"] for t in hf_ok) if hf_ok else math.nan
    good = [t for t in tickets if 100 * (t["metric"] - hf_best) >= -tolerance_pt]
    fast = min(good, key=lambda t: t["train_seconds"]) if good else None
    out = {
        "hf_seconds": hf["seconds"],
        "tickettune_seconds": tt["seconds"],
        "wall_ratio": tt["seconds"] / hf["seconds"],
        "hf_best": hf_best,
        "tickettune_best": tt_best,
        "best_diff_pt": 100 * (tt_best - hf_best),
        "tickettune_baseline": base[0]["metric"] if base else None,
        "hf_mean_trial_train_seconds": dense_s,
        "tickettune_baseline_train_seconds": base[0]["train_seconds"] if base else None,
        "fast_trial": None
        if fast is None
        else {
            "trial_id": fast["trial_id"],
            "params": fast["params"],
            "metric": fast["metric"],
            "train_seconds": fast["train_seconds"],
        },
        "fast_time_ratio": None if fast is None else fast["train_seconds"] / dense_s,
        "fast_diff_pt": None if fast is None else 100 * (fast["metric"] - hf_best),
        "tolerance_pt": tolerance_pt,
        "hf_front": [_id(t) for t in front(hf["trials"])],
        "tickettune_front": [_id(t) for t in front(tt["trials"])],
        "hf_failed": len(hf["trials"]) - len(_finite(hf["trials"])),
        "tickettune_failed": len(tt["trials"]) - len(_finite(tt["trials"])),
        "stopped_early": {"tickettune": stopped_early(tt["trials"])},
    }
    if hf_pruned is not None:
        p = compare(hf_pruned, tt, tolerance_pt)
        out.update(
            hf_pruned_seconds=p["hf_seconds"],
            wall_ratio_pruned=p["wall_ratio"],
            hf_pruned_best=p["hf_best"],
            best_diff_pt_pruned=p["best_diff_pt"],
            hf_pruned_front=p["hf_front"],
        )
        out["stopped_early"]["hf_pruned"] = stopped_early(hf_pruned["trials"])
    return out


def headline(tasks: dict) -> list[dict]:
    """One entry per task, medians over seeds (see `compare`);
    dense_step_ratio from the task's tax measurement; stopped_early: trials stopped by ASHA (tickettune) and by
    the MedianPruner (hf_pruned), summed over seeds."""
    out = []
    for task, t in tasks.items():
        cs = [r["comparison"] for r in t["runs"]]
        entry = {"task": task}
        for k in ("wall_ratio", "best_diff_pt", "fast_time_ratio", "fast_diff_pt", "wall_ratio_pruned"):
            vals = [c[k] for c in cs if c.get(k) is not None and math.isfinite(c[k])]
            entry[k] = statistics.median(vals) if vals else None
        entry["seeds"] = len(cs)
        entry["fast_found"] = sum(c["fast_trial"] is not None for c in cs)
        entry["dense_step_ratio"] = (t.get("tax") or {}).get("dense_step_ratio")
        stopped: dict[str, int] = {}
        for c in cs:
            for side, n in c.get("stopped_early", {}).items():
                stopped[side] = stopped.get(side, 0) + n
        entry["stopped_early"] = stopped
        out.append(entry)
    return out


def plot_task(task: str, result: dict, tolerance_pt: float, path: Path) -> Path:
    """Every trial of both searches as a point (dev metric vs training wall-clock; trials stopped early as
    crosses), each search's front, each search's total wall-clock and best, the tolerance band under HF's best,
    the fastest ticket in it; the HF search with a MedianPruner in green where it ran. One panel per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result["runs"]
    fig, axes = plt.subplots(1, len(runs), figsize=(7.5 * len(runs), 5), squeeze=False)
    for ax, r in zip(axes[0], runs):
        c = r["comparison"]
        hf, tt = complete(_finite(r["hf"]["trials"])), _finite(r["tickettune"]["trials"])
        tickets = [t for t in complete(tt) if not t["baseline"]]
        pruned_arm = _finite(r["hf_pruned"]["trials"]) if r.get("hf_pruned") else []
        if pruned_arm:
            kept = complete(pruned_arm)
            ax.scatter(
                [t["train_seconds"] for t in kept],
                [t["metric"] for t in kept],
                color="tab:green",
                alpha=0.7,
                label=f"HF + MedianPruner (search {c['hf_pruned_seconds']:.0f} s, best {c['hf_pruned_best']:.4f})",
            )
        for trials, color, name in ((pruned_arm, "tab:green", "HF pruned"), (tt, "tab:blue", "tickettune stopped")):
            cut = [t for t in trials if t not in complete(trials)]
            if cut:
                ax.scatter(
                    [t["train_seconds"] for t in cut],
                    [t["metric"] for t in cut],
                    marker="x",
                    color=color,
                    label=f"{name} early ({len(cut)})",
                )
        ax.scatter(
            [t["train_seconds"] for t in hf],
            [t["metric"] for t in hf],
            color="tab:orange",
            alpha=0.7,
            label=f"HF trials (search {c['hf_seconds']:.0f} s, best {c['hf_best']:.4f})",
        )
        ax.scatter(
            [t["train_seconds"] for t in tickets],
            [t["metric"] for t in tickets],
            color="tab:blue",
            alpha=0.7,
            label=f"tickettune tickets (search {c['tickettune_seconds']:.0f} s, best {c['tickettune_best']:.4f})",
        )
        for t in tt:
            if t["baseline"]:
                ax.scatter(
                    [t["train_seconds"]],
                    [t["metric"]],
                    marker="*",
                    s=180,
                    color="black",
                    zorder=3,
                    label="tickettune dense baseline",
                )
        fronts = [(hf, "tab:orange", "HF front"), (tt, "tab:blue", "tickettune front")]
        fronts += [(pruned_arm, "tab:green", "HF + MedianPruner front")] if pruned_arm else []
        for trials, color, name in fronts:
            f = sorted(front(trials), key=lambda t: t["train_seconds"])
            if f:
                ax.step(
                    [t["train_seconds"] for t in f],
                    [t["metric"] for t in f],
                    where="post",
                    color=color,
                    linewidth=1.5,
                    marker="D",
                    markersize=4,
                    label=name,
                )
        if math.isfinite(c["hf_best"]):
            ax.axhspan(
                c["hf_best"] - tolerance_pt / 100,
                c["hf_best"],
                color="tab:orange",
                alpha=0.12,
                label=f"within {tolerance_pt:g} pt of HF's best",
            )
        if c["fast_trial"]:
            f = c["fast_trial"]
            ax.scatter(
                [f["train_seconds"]],
                [f["metric"]],
                s=260,
                facecolors="none",
                edgecolors="tab:red",
                linewidths=2,
                zorder=4,
                label=f"fastest ticket within it: {c['fast_time_ratio']:.2f} of a dense HF trial",
            )
        ax.set_xlabel("training wall-clock per trial (s; evaluation excluded)")
        ax.set_ylabel(f"dev {result['metric']}")
        ax.set_title(f"{task}, seed {r['seed']}: tickettune / HF search wall-clock {c['wall_ratio']:.2f}")
        ax.legend(fontsize=7, loc="lower right")
    from .curves import save_figure

    return save_figure(fig, path)


def print_table(res: dict) -> None:
    for task, t in res["tasks"].items():
        for r in t["runs"]:
            c = r["comparison"]
            print(
                f"{task} seed {r['seed']} ({t['metric']}): search wall-clock HF {c['hf_seconds']:.0f} s, "
                f"tickettune {c['tickettune_seconds']:.0f} s (ratio {c['wall_ratio']:.3f}); best HF "
                f"{c['hf_best']:.4f}, tickettune {c['tickettune_best']:.4f} ({c['best_diff_pt']:+.2f} pt)"
            )
            if c.get("wall_ratio_pruned") is not None:
                print(
                    f"  HF + MedianPruner {c['hf_pruned_seconds']:.0f} s (ratio {c['wall_ratio_pruned']:.3f}), best "
                    f"{c['hf_pruned_best']:.4f}; stopped early {c['stopped_early']}"
                )
            f = c["fast_trial"]
            print(
                "  fastest ticket within tolerance: "
                + (
                    f"{f['trial_id']} at {c['fast_time_ratio']:.3f} of a dense HF trial, {c['fast_diff_pt']:+.2f} pt"
                    if f
                    else "none"
                )
            )
    for h in res["headline"]:
        print("headline " + json.dumps(h))
