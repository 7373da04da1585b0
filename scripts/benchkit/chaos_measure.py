"""What a fault cost a search, read from the experiment's files alone (nothing here talks to Ray).

A trial's ``result.json`` holds every report of every attempt, appended (Tune reopens it in append mode when a
trial runs again). An *attempt* starts where the reporting process changes (Tune's ``pid``: a retried or resumed
trial gets a new trial process) or where the reports stop moving forward: the order of a report is
(phase, step) with search < ticket < done, so a worker group restarted inside the same trial process shows up
as a report that is not past the one before it.

* interrupted: trials with more than one attempt, a failure counted in Tune's state (``num_failures``), an
  ERROR status, or named as running when the fault struck (`victims`, from the caller's snapshot).
* restored: interrupted trials whose next attempt began past the search, from the checkpoint the first
  ticket-phase report carries (flow.py); `from_scratch`: interrupted before that checkpoint existed, so the
  search ran again, as it must.
* search_phases_rerun: trials with a search-phase report in an attempt after one that had reached the ticket
  phase (a completed search run again). finished_rerun: trials with any report after their final one
  (``flow_done``), except that final report sent again (``replayed``: Tune ran a finished trial again and
  it only repeated its result; counted as finished_replayed).
* W&B (offline): one folder per attempt, ``offline-run-<time>-<run id>``; a folder belongs to the trial named
  in its config (``trial_id``, which Ray logs there) or, without one, to the trial its run id is.
  max_wandb_runs_per_trial counts distinct run ids per trial; runs that belong to no trial are listed apart
  (the ``export`` run of the best ticket is one, by design).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tickettune.searcher.export import EXPORT_JSON, load_trials
from tickettune.searcher.search import BEST_DIR
from tickettune.searcher.state import read_state
from tickettune.searcher.trial import REPLAYED

PHASE_ORDER = {"search": 0, "baseline": 1, "ticket": 1, "done": 2}
WANDB_FOLDER = re.compile(r"^(?:offline-)?run-\d{8}_\d{6}-(?P<id>[A-Za-z0-9_-]+)$")


def order(report: dict) -> tuple[int, float]:
    return PHASE_ORDER.get(report.get("phase"), -1), float(report.get("step") or 0)


def attempts(history: list[dict]) -> list[list[dict]]:
    """`history` cut where an attempt starts: another reporting process, or a report not past the one before."""
    out: list[list[dict]] = []
    for r in history:
        prev = out[-1][-1] if out else None
        if prev is None or r.get("pid") != prev.get("pid") or order(r) <= order(prev):
            out.append([r])
        else:
            out[-1].append(r)
    return out


def _reached_ticket(attempt: list[dict]) -> bool:
    return any(PHASE_ORDER.get(r.get("phase"), -1) >= 1 for r in attempt)


def trial_faults(history: list[dict]) -> dict:
    """What the attempts of one trial say: restored from its checkpoint, search or finished trial run again.
    A finished trial's last report sent again (``replayed``, trial.py's FINISHED.json) trains nothing: it is
    counted apart, not as an attempt."""
    replayed = any(r.get(REPLAYED) for r in history)
    history = [r for r in history if not r.get(REPLAYED)]
    parts = attempts(history)
    restored = from_scratch = search_rerun = False
    for before, after in zip(parts, parts[1:]):
        if _reached_ticket(before):
            restored |= after[0].get("phase") != "search"
            search_rerun |= any(r.get("phase") == "search" for r in after)
        else:
            from_scratch = True
    done_at = next((i for i, r in enumerate(history) if r.get("flow_done")), None)
    return {
        "attempts": len(parts),
        "replayed": replayed,
        "restored": restored,
        "from_scratch": from_scratch,
        "search_rerun": search_rerun,
        "finished_rerun": done_at is not None and done_at < len(history) - 1,
        "spans": [
            {"pid": a[0].get("pid"), "from": list(order(a[0])), "to": list(order(a[-1])), "reports": len(a)}
            for a in parts
        ],
    }


def num_failures(experiment_dir: Path) -> dict[str, int]:
    """Tune's failure count per trial, from its newest readable experiment state."""
    for f in sorted(experiment_dir.glob("experiment_state-*.json"), key=lambda p: p.name, reverse=True):
        try:
            rows = json.loads(f.read_text())["trial_data"]
        except (ValueError, KeyError, OSError):
            continue
        return {json.loads(t)["trial_id"]: int(json.loads(r).get("num_failures") or 0) for t, r in rows}
    return {}


def wandb_runs(experiment_dir: Path, trial_ids: set[str]) -> dict:
    """Offline W&B folders under <experiment>/wandb/: run ids per trial, and the runs of no trial."""
    per_trial: dict[str, dict[str, int]] = {}
    other: list[str] = []
    for d in sorted((experiment_dir / "wandb").glob("*run-*")):
        m = WANDB_FOLDER.match(d.name)
        if not m or not d.is_dir():
            continue
        run_id = m["id"]
        owner = _config_trial_id(d) or (run_id if run_id in trial_ids else None)
        if owner in trial_ids:
            runs = per_trial.setdefault(owner, {})
            runs[run_id] = runs.get(run_id, 0) + 1
        else:
            other.append(d.name)
    return {
        "max_runs_per_trial": max((len(r) for r in per_trial.values()), default=0),
        "max_folders_per_trial": max((sum(r.values()) for r in per_trial.values()), default=0),
        "trials_with_a_run": len(per_trial),
        "runs_of_no_trial": other,
        "per_trial": per_trial,
    }


def _config_trial_id(run_dir: Path) -> str | None:
    """The trial id Ray logged into the run's config (files/config.yaml, written as the run ends), if any."""
    path = run_dir / "files" / "config.yaml"
    try:
        text = path.read_text()
    except OSError:
        return None
    m = re.search(r"^trial_id:\s*\n\s+value:\s*'?(?P<id>[A-Za-z0-9_-]+)'?\s*$", text, re.M)
    return m["id"] if m else None


def best_of(experiment_dir: Path) -> dict | None:
    """The exported trial (best/export.json): its id, metrics and config."""
    path = experiment_dir / BEST_DIR / EXPORT_JSON
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return {k: data.get(k) for k in ("trial_id", "metrics", "config")}


def measure(experiment_dir: str | Path, fault: str, victims: set[str] = frozenset()) -> dict:
    """The fault's entry for the chaos JSON (see the module docstring for each count)."""
    exp = Path(experiment_dir)
    planned = read_state(exp)["spec"]["search"]
    planned_n = int(planned["num_samples"]) + int(bool(planned.get("baseline")))
    trials = load_trials(exp)
    failures = num_failures(exp)
    per = {t.trial_id: trial_faults(t.history) for t in trials}
    interrupted = {
        t.trial_id
        for t in trials
        if per[t.trial_id]["attempts"] > 1 or failures.get(t.trial_id, 0) > 0 or t.status == "ERROR"
    } | ((set(victims) & set(per)) - {t for t, p in per.items() if p["replayed"]})
    wb = wandb_runs(exp, set(per))
    statuses: dict[str, int] = {}
    for t in trials:
        statuses[t.status] = statuses.get(t.status, 0) + 1
    return {
        "fault": fault,
        "planned": planned_n,
        "finished": sum(t.status == "TERMINATED" and t.finished for t in trials),
        "interrupted": len(interrupted),
        "restored": sum(per[i]["restored"] for i in interrupted),
        "search_phases_rerun": sum(p["search_rerun"] for p in per.values()),
        "finished_rerun": sum(p["finished_rerun"] for p in per.values()),
        "max_wandb_runs_per_trial": wb["max_runs_per_trial"],
        "exported": (exp / BEST_DIR / EXPORT_JSON).is_file(),
        "statuses": statuses,
        "restarted_from_scratch": sum(per[i]["from_scratch"] for i in interrupted),
        "finished_replayed": sum(p["replayed"] for p in per.values()),
        "victims": sorted(victims),
        "errors": {t.trial_id: t.error for t in trials if t.status == "ERROR"},
        "wandb": {k: v for k, v in wb.items() if k != "per_trial"} | {"folders": wb["per_trial"]},
        "trials": {i: {"num_failures": failures.get(i, 0), **per[i]} for i in sorted(interrupted)},
        "best": best_of(exp),
    }
