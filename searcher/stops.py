"""What the trial scheduler decided, on disk: ``<experiment>/scheduler.state``.

The scheduler (scheduling.py) runs in Tune's driver process and writes this file, atomically, each time a
trial reaches a rung: the dev metric every judged trial had at each rung (so that a resumed search judges
new trials against the same rungs: Tune restores the scheduler as it was when the search started) and
every trial it stopped early, with the rung, the trial's value and the rung's cutoff. `tickettune report`
prints why a trial stopped; export never picks a stopped trial. Reading needs no Ray.

JSON, but not named ``*.json``: restoring an experiment, Ray Tune 2.60 copies every ``.json`` and ``.pkl`` file
of it into its driver staging folder, and its periodic sync copies them back; the copy made at the restore
would then overwrite the decisions taken since.

    {"version": 1, "metric": "val_metric", "mode": "max", "time_attr": "eval_step",
     "rungs": {"2": {"<trial_id>": 0.5, ...}, "4": {...}},                # milestone -> trial -> metric
     "stopped": {"<trial_id>": {"rung": 1, "rungs": 3, "milestone": 2, "at": 2,      # rung 1: the lowest
                                "value": 0.1, "cutoff": 0.5, "compared": 1, "time": ...}}}
"""

from __future__ import annotations

import json
import os
from pathlib import Path

STOPS_FILE = "scheduler.state"  # JSON (see above)
VERSION = 1


def read_scheduler_state(experiment_dir: str | os.PathLike) -> dict:
    """The file's content ({} when the search has no scheduler or nothing reached a rung yet)."""
    path = Path(experiment_dir) / STOPS_FILE
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: unreadable scheduler state ({e})") from e
    if not isinstance(state, dict) or state.get("version") != VERSION:
        raise ValueError(
            f"{path}: version {state.get('version') if isinstance(state, dict) else '?'}, "
            f"expected {VERSION} (written by another tickettune)"
        )
    return state


def write_scheduler_state(experiment_dir: str | os.PathLike, state: dict) -> None:
    """Write the whole state at once (temp file + rename): a reader never sees half of it."""
    exp = Path(experiment_dir)
    exp.mkdir(parents=True, exist_ok=True)
    tmp = exp / f".{STOPS_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({**state, "version": VERSION}, indent=1))
    os.replace(tmp, exp / STOPS_FILE)


def stopped_trials(experiment_dir: str | os.PathLike) -> dict[str, dict]:
    """{trial_id: the stop decision, with the search's metric, mode and time_attr}: the trials the scheduler
    stopped early."""
    state = read_scheduler_state(experiment_dir)
    shared = {k: state.get(k) for k in ("metric", "mode", "time_attr")}
    return {tid: {**shared, **d} for tid, d in (state.get("stopped") or {}).items()}


def stop_reason(decision: dict) -> str:
    """One line: at which rung and why, e.g. "rung 2 (eval_step 150): val_metric 0.71 below the rung's cutoff
    0.78" (the cutoff: of the trials judged at that rung before it, the value that 1/reduction_factor of them
    beat, as Ray's ASHA computes it: their median for reduction factor 2)."""
    side = "below" if decision.get("mode", "max") == "max" else "above"
    m = float(decision["milestone"])
    return (
        f"rung {decision['rung']} ({decision['time_attr']} {int(m) if m.is_integer() else m}): "
        f"{decision['metric']} {decision['value']:.4g} {side} the rung's cutoff {decision['cutoff']:.4g}"
    )
