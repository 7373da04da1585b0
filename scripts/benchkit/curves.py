"""Dev-metric-vs-wall-clock curves for the time-to-accuracy benchmark: a loop callback and the plot."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from tickettune.trainables.training.callbacks import Callback
from tickettune.trainables.training.clock import TrainingClock


class EvalEvery(Callback):
    """Scores the dev set every `every` steps (not at the last: the caller scores that); the scoring runs on a
    paused training clock (the flow's), so the curve's x is training time only."""

    def __init__(self, every: int, last: int, score: Callable[[], float]):
        self.every, self.last, self.score = every, last, score
        self.clock = TrainingClock()
        self.curve: list[dict] = []

    @property
    def eval_seconds(self) -> float:
        return self.clock.paused

    def before_step(self, step: int) -> None:
        self.clock.start()  # at the first step; later calls keep that start

    def after_step(self, step: int, logs: dict) -> bool:
        if step % self.every == 0 and step < self.last:
            trained = self.clock.elapsed()
            self.curve.append(
                {"step": step, "train_seconds": trained, "metric": float(self.clock.paused_for(self.score))}
            )
        return False


def plot_curves(res: dict, path: Path) -> Path:
    """One panel per task: every arm's dev metric against training wall-clock, one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(res["tasks"])
    fig, axes = plt.subplots(1, len(tasks), figsize=(6.5 * len(tasks), 4.6), squeeze=False)
    colors = {
        "trainer": "black",
        "trainer_compile": "tab:purple",
        "dense": "tab:gray",
        "rewind": "tab:blue",
        "continue": "tab:red",
        "random": "tab:green",
    }
    for ax, task in zip(axes[0], tasks):
        t = res["tasks"][task]
        for arm, runs in t["runs"].items():
            for i, r in enumerate(runs):
                pts = [(p["train_seconds"], p["metric"]) for p in r["curve"]]
                if not pts:
                    continue
                xs, ys = zip(*pts)
                ax.plot(
                    xs,
                    ys,
                    marker=".",
                    color=colors.get(arm),
                    linestyle="-" if i == 0 else "--",
                    label=arm if i == 0 else None,
                    linewidth=1,
                )
        ax.set_xlabel("training wall-clock (s; dev evaluations excluded)")
        ax.set_ylabel(f"dev {t['metric']}")
        ax.set_title(f"{task}: {t['epochs']:g} epoch(s), {t['budget_steps']} steps; solid seed 0, dashed others")
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def save_figure(fig, path: Path) -> Path:
    """Lay out, write (its folder made) and close a matplotlib figure; the path back."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
