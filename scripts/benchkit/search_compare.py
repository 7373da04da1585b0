"""Scoring two searches against each other (the search-against-search benchmark): fronts, bests, the
fastest tickettune ticket as good as HF's best, and the plot. Inputs are the plain trial lists that
`hf_search.hf_search` and the benchmark's tickettune arm return."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from tickettune.searcher.front import non_dominated


def _finite(trials: list[dict]) -> list[dict]:
    return [t for t in trials if math.isfinite(t["metric"]) and math.isfinite(t["train_seconds"])]


def front(trials: list[dict]) -> list[dict]:
    """The trials no other trial beats on both dev metric (max) and training wall-clock (min), best first."""
    pool = _finite(trials)
    return [pool[i] for i in non_dominated([(t["metric"], t["train_seconds"]) for t in pool], ["max", "min"])]


def _id(t: dict) -> str:
    return str(t.get("trial_id", t.get("number")))


def compare(hf: dict, tt: dict, tolerance_pt: float) -> dict:
    """The issue's figures for one task and seed.

    wall_ratio: tickettune's whole search / HF's. best_diff_pt: (tickettune's best ticket − HF's best
    trial) × 100. fast_trial: the tickettune ticket with the least training wall-clock among those within
    `tolerance_pt` of HF's best; fast_time_ratio: its training seconds / the mean HF trial's (each a dense
    fine-tune of the budget); fast_diff_pt: its metric − HF's best, in points. None where nothing qualifies.
    """
    hf_ok = _finite(hf["trials"])
    tickets = [t for t in _finite(tt["trials"]) if not t["baseline"]]
    base = [t for t in _finite(tt["trials"]) if t["baseline"]]
    hf_best = max((t["metric"] for t in hf_ok), default=math.nan)
    tt_best = max((t["metric"] for t in tickets), default=math.nan)
    dense_s = statistics.fmean(t["train_seconds"] for t in hf_ok) if hf_ok else math.nan
    good = [t for t in tickets if 100 * (t["metric"] - hf_best) >= -tolerance_pt]
    fast = min(good, key=lambda t: t["train_seconds"]) if good else None
    return {
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
        "hf_failed": len(hf["trials"]) - len(hf_ok),
        "tickettune_failed": len(tt["trials"]) - len(_finite(tt["trials"])),
    }


def plot_task(task: str, result: dict, tolerance_pt: float, path: Path) -> Path:
    """Every trial of both searches as a point (dev metric vs training wall-clock), each search's front,
    each search's total wall-clock and best, the tolerance band under HF's best, the fastest ticket in it.
    One panel per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result["runs"]
    fig, axes = plt.subplots(1, len(runs), figsize=(7.5 * len(runs), 5), squeeze=False)
    for ax, r in zip(axes[0], runs):
        c = r["comparison"]
        hf, tt = _finite(r["hf"]["trials"]), _finite(r["tickettune"]["trials"])
        tickets = [t for t in tt if not t["baseline"]]
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
        for trials, color, name in ((hf, "tab:orange", "HF front"), (tt, "tab:blue", "tickettune front")):
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
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
