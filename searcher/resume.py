"""Continue an interrupted search (killed, Ctrl-C, machine lost) from its experiment folder.

Tune restores the trials and the Optuna searcher state (``searcher-state-*.pkl``): finished trials are
not run again, unfinished and errored ones are restarted (a trial that diverged fails again at once, see
trial.py), and new trials are sampled until ``num_samples``. A restarted Ray Train trial resumes from its
last checkpoint: its Train run keeps its storage path and name. The search's settings (resource plan,
data root) come from ``tickettune_search.json``, so the trials run as they were planned.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

from . import console
from .ray_session import shutdown, start_driver
from .resources import ResourcePlan
from .search import SearchResult, _finish, load, trainable_for
from .state import read_state


def can_resume(experiment_dir: str | os.PathLike) -> bool:
    from ray.tune import Tuner

    return (Path(experiment_dir) / "tuner.pkl").is_file() and Tuner.can_restore(str(Path(experiment_dir).absolute()))


def set_aside_cut_state(experiment_dir: Path) -> list[Path]:
    """Tune's state files that do not parse (a kill while one was being copied to storage) are renamed
    ``*.cut`` so that Tune restores from the newest whole one; returns the renamed files."""
    import json

    moved = []
    for f in sorted(experiment_dir.glob("experiment_state-*.json")):
        try:
            json.loads(f.read_text())
        except (ValueError, OSError):
            f.rename(f.with_name(f.name + ".cut"))
            moved.append(f)
    return moved


def resume_search(
    experiment_dir: str | os.PathLike,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    flow_fn: Callable | None = None,
    export: bool = True,
    verbose: int = 1,
    auth: str | None = None,
) -> SearchResult:
    """Resume the search in `experiment_dir`; returns the same `SearchResult` as `run_search`.

    `flow_fn` must be given again if the search was started with one (it is recorded by name only).
    Tune restores the search's callbacks (W&B's included) with it.
    """
    start = time.time()
    exp = Path(experiment_dir).absolute()
    state = read_state(exp)  # FileNotFoundError: not a tickettune experiment
    if state.get("flow_fn") and flow_fn is None:
        raise ValueError(f"{exp} was searched with flow_fn={state['flow_fn']}: pass it to resume_search again")
    spec = load(state["spec"])
    console.prepare_driver(verbose)
    started = start_driver(spec, exp, address, num_cpus, verbose, auth)
    try:
        from ray import tune

        cut = set_aside_cut_state(exp)
        if cut and verbose:
            print(f"[tickettune] set aside unreadable Tune state {[p.name for p in cut]}", flush=True)
        if not can_resume(exp):
            raise FileNotFoundError(f"{exp}: Tune cannot restore this experiment (no tuner.pkl / experiment state)")
        plan = ResourcePlan.from_dict(state["plan"])
        settings = {
            "experiment_dir": str(exp),
            "plan": plan.to_dict(),
            "max_failures": spec.search.max_failures,
            "data_root": state.get("data_root"),
            "flow_fn": flow_fn,
        }
        if verbose:
            print(f"[tickettune] resuming {exp}; {plan.describe()}", flush=True)
        tuner = tune.Tuner.restore(
            str(exp), trainable=trainable_for(settings, plan), resume_unfinished=True, resume_errored=True
        )
        # a search started since its run config holds the CSV + JSON loggers: Tune need not add its own
        explicit = set(state.get("tune_loggers") or ()) >= set(console.TUNE_LOGGERS)
        with console.scoped_env(console.NO_AUTO_LOGGERS if explicit else {}):
            tuner.fit()
        res = _finish(spec, exp, plan, export, start, verbose)
    finally:
        if started:
            shutdown()
    res.seconds = time.time() - start
    return res
