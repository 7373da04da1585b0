"""`write_report(experiment_dir)`: the trial table (printed, and as CSV) and two plots (PNG, matplotlib Agg).

* ``mask_distance.png``: each trial's mask distance (Hamming, heads + FFN) over its search-phase steps,
  the early-bird step marked.
* ``pareto.png``: validation metric against relative training cost (FLOPs), and in a second panel against
  wall-clock training time, the Pareto front joined; the dense baseline trial (``search.baseline``), when
  the search has one, is the star at cost 1.0: what a ticket gives up and saves.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path

from .export import COST, candidates, load_trials, objectives, pareto_front, search_state
from .front import non_dominated
from .stops import stop_reason

REPORT_DIR = "report"
TIME = "relative_time"
STOPPED = "stopped"  # why the scheduler stopped a trial early (stops.py): printed whole, the table's last column


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def _searched_keys(experiment_dir: Path, trials) -> list[str]:
    space = search_state(experiment_dir).get("spec", {}).get("space")
    if space:
        return list(space)
    keys: dict[str, None] = {}
    for t in trials:
        keys.update(dict.fromkeys(t.config))
    return list(keys)


def trial_table(experiment_dir: str | os.PathLike) -> tuple[list[str], list[list]]:
    """(header, rows): one row per trial."""
    exp = Path(experiment_dir)
    trials = load_trials(exp)
    metrics, _ = objectives(exp)
    keys = _searched_keys(exp, trials)
    shown = list(dict.fromkeys(metrics + [COST, TIME, "train_seconds"]))
    header = (
        ["trial_id", "kind", "status"]
        + keys
        + ["converged", "early_bird_step", "search_steps"]
        + shown
        + ["error", STOPPED]
    )
    rows = []
    for t in trials:
        last = t.last
        ebs = last.get("early_bird_step")
        rows.append(
            [t.trial_id, "baseline" if t.is_baseline else "ticket", t.status]
            + [t.config.get(k) for k in keys]
            + [last.get("converged"), None if ebs in (None, -1) else ebs, last.get("search_steps")]
            + [t.metric(m) for m in shown]
            + [t.error, stop_reason(t.stopped) if t.stopped else None]
        )
    return header, rows


def format_table(header: list[str], rows: list[list]) -> str:
    cells = [header] + [[_fmt(v) for v in r] for r in rows]
    cells = [[c if len(c) <= 40 or h == STOPPED else c[:37] + "..." for c, h in zip(r, header)] for r in cells]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def plot_mask_distance(trials, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    eps_seen = set()
    for t in trials:
        pts = [
            (r["step"], r["mask_distance"])
            for r in t.history
            if r.get("phase") == "search"
            and isinstance(r.get("mask_distance"), (int, float))
            and isinstance(r.get("step"), (int, float))
        ]
        if not pts:
            continue
        xs, ys = zip(*pts)
        (line,) = ax.plot(xs, ys, marker=".", label=t.trial_id, linewidth=1)
        ebs = t.last.get("early_bird_step")
        if isinstance(ebs, (int, float)) and ebs >= 0:
            ax.axvline(ebs, color=line.get_color(), linestyle=":", linewidth=1)
        eps = t.config.get("eps")
        if isinstance(eps, (int, float)):
            eps_seen.add(float(eps))
    if len(eps_seen) == 1:
        ax.axhline(eps_seen.pop(), color="grey", linestyle="--", linewidth=1, label="eps")
    ax.set_xlabel("search-phase step")
    ax.set_ylabel("mask distance (normalised Hamming)")
    ax.set_title("Mask distance during the search phase (dotted: early-bird step)")
    if ax.lines:
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def time_axis(trials) -> tuple[str, dict[str, float]]:
    """(label, {trial_id: x}) for the wall-clock panel: training seconds over the baseline trial's when the
    search has one (both measured), else each trial's own estimate (`relative_time`: its dense step time
    measured in its search phase)."""
    base = [t for t in trials if t.is_baseline and t.status != "ERROR" and math.isfinite(t.metric("train_seconds"))]
    if base and base[0].metric("train_seconds") > 0:
        ref = base[0].metric("train_seconds")
        return (
            "training wall-clock / the dense baseline trial's",
            {t.trial_id: t.metric("train_seconds") / ref for t in trials},
        )
    return "relative training time (wall-clock / dense run, estimated)", {t.trial_id: t.metric(TIME) for t in trials}


def plot_pareto(trials, metric: str, mode: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tickets = [t for t in trials if not t.is_baseline]
    baseline = [t for t in trials if t.is_baseline and math.isfinite(t.metric(metric))]
    time_label, times = time_axis(trials)
    panels = [
        (
            "relative training cost (FLOPs / dense run)",
            {t.trial_id: t.metric(COST) for t in trials},
            "Accuracy vs. training cost",
        ),
        (time_label, times, "Accuracy vs. wall-clock time"),
    ]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, (label, xs, title) in zip(axes, panels):
        pool = [t for t in candidates(tickets, [metric]) if math.isfinite(xs.get(t.trial_id, math.nan))]
        if pool:
            ax.scatter(
                [xs[t.trial_id] for t in pool], [t.metric(metric) for t in pool], color="tab:blue", label="tickets"
            )
            front = _front(pool, xs, metric, mode)
            ax.plot(
                [xs[t.trial_id] for t in front],
                [t.metric(metric) for t in front],
                color="tab:red",
                marker="o",
                label="Pareto front",
            )
            for t in front:
                ax.annotate(
                    t.trial_id.split("_")[-1],
                    (xs[t.trial_id], t.metric(metric)),
                    fontsize=7,
                    textcoords="offset points",
                    xytext=(4, 4),
                )
        for t in baseline:
            x = 1.0 if not math.isfinite(xs.get(t.trial_id, math.nan)) else xs[t.trial_id]
            ax.scatter([x], [t.metric(metric)], marker="*", s=180, color="black", zorder=3, label="dense baseline")
            ax.axhline(t.metric(metric), color="black", linestyle=":", linewidth=1)
        if not pool and not baseline:
            ax.text(0.5, 0.5, "no finished trial with both values", ha="center", transform=ax.transAxes)
        ax.set_xlabel(label)
        ax.set_ylabel(f"{metric} ({mode})")
        ax.set_title(title)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _front(pool, xs: dict[str, float], metric: str, mode: str) -> list:
    """The Pareto front of (metric, x to minimise), sorted by x."""
    idx = non_dominated([(t.metric(metric), xs[t.trial_id]) for t in pool], [mode, "min"])
    return sorted((pool[i] for i in idx), key=lambda t: xs[t.trial_id])


def front_table(experiment_dir: str | os.PathLike) -> str:
    """The tickets on the search's Pareto front (its metrics; for one objective, it and relative_cost, as
    `tickettune export --pareto` takes them), best first, with each one's searched settings, the dense
    baseline trial below them for reference, and the command that exports one of them."""
    exp = Path(experiment_dir)
    trials = load_trials(exp)
    metrics, modes = objectives(exp)
    if len(metrics) < 2:
        metrics, modes = metrics[:1] + [COST], modes[:1] + ["min"]
    keys = _searched_keys(exp, trials)
    pool = candidates(trials, metrics)
    title = "Pareto front (" + ", ".join(f"{m} {md}" for m, md in zip(metrics, modes)) + ")"
    if not pool:
        return f"{title}: no trial finished with a ticket and finite {metrics}"
    front = pareto_front(pool, metrics, modes)
    base = [t for t in trials if t.is_baseline and all(math.isfinite(t.metric(m)) for m in metrics)]
    header = ["trial_id"] + metrics + keys
    rows = [[t.trial_id] + [t.metric(m) for m in metrics] + [t.config.get(k) for k in keys] for t in front]
    rows += [[f"{t.trial_id} (dense baseline)"] + [t.metric(m) for m in metrics] + [None] * len(keys) for t in base]
    return (
        f"{title}: {len(front)} of {len(pool)} tickets\n{format_table(header, rows)}\n"
        f"export one: tickettune export {exp} --trial {front[0].trial_id} --out DIR"
    )


def write_report(
    experiment_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, print_table: bool = True
) -> dict:
    """Print the trial table and the Pareto front with each point's settings; write ``trials.csv``,
    ``mask_distance.png`` and ``pareto.png`` into `out_dir` (default ``<experiment>/report``).
    Returns {"table": text, "front": text, "csv": path, "plots": [paths]}."""
    exp = Path(experiment_dir)
    out = Path(out_dir) if out_dir is not None else exp / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    header, rows = trial_table(exp)
    text = format_table(header, rows)
    front = front_table(exp)
    if print_table:
        print(text + "\n\n" + front, flush=True)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    for r in rows:
        w.writerow(["" if v is None else (json.dumps(v) if isinstance(v, (dict, list)) else v) for v in r])
    (out / "trials.csv").write_text(buf.getvalue())
    trials = load_trials(exp)
    metrics, modes = objectives(exp)
    metric, mode = (metrics[0], modes[0]) if metrics[0] != COST else ("val_metric", "max")
    plots = [
        plot_mask_distance(trials, out / "mask_distance.png"),
        plot_pareto(trials, metric, mode, out / "pareto.png"),
    ]
    return {"table": text, "front": front, "csv": str(out / "trials.csv"), "plots": [str(p) for p in plots]}
