"""Reading a finished (or interrupted) experiment from disk, and exporting its best ticket(s).

Nothing here starts Ray or re-runs a trial: Tune's experiment state (``experiment_state-*.json``: each
trial's status and config) and each trial's ``result.json`` (every report, one JSON per line) are read
directly. Tickets are found by the trial folder layout (``trial_<id>/ticket/ticket.json``) — Tune's
``Result.checkpoint`` is None when a trial is a Ray Train driver.

    export_best(experiment_dir, out_dir)                 # the best trial's ticket -> out_dir
    export_best(experiment_dir, out_dir, pareto=True)    # every Pareto-front ticket -> out_dir/<trial_id>/
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tickettune.trainables.ticket.format import publish_dir

from .front import dominates, non_dominated  # noqa: F401  (dominates: part of this module's API)
from .state import read_state
from .stops import stop_reason, stopped_trials
from .trial import TICKET, TRIAL_PREFIX, read_failure

COST = "relative_cost"
EXPORT_JSON = "export.json"


@dataclass
class TrialRecord:
    trial_id: str
    status: str  # TERMINATED | ERROR | RUNNING | PENDING | PAUSED | UNKNOWN
    config: dict
    trial_dir: Path
    history: list[dict] = field(default_factory=list)  # every report, in order
    error: str | None = None
    stopped: dict | None = None  # the scheduler stopped it early: its decision (stops.py)

    @property
    def last(self) -> dict:
        return self.history[-1] if self.history else {}

    @property
    def ticket_dir(self) -> Path | None:
        d = self.trial_dir / TICKET
        return d if (d / "ticket.json").is_file() else None

    @property
    def finished(self) -> bool:
        return bool(self.last.get("flow_done"))

    @property
    def is_baseline(self) -> bool:
        """The search's dense reference trial (`search.baseline`): a point to compare with, not a ticket."""
        return bool(self.config.get("baseline") or self.last.get("baseline"))

    @property
    def converged(self) -> bool | None:
        return self.last.get("converged")

    def metric(self, name: str) -> float:
        v = self.last.get(name)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def _state_files(exp: Path) -> list[Path]:
    """Tune's timestamped state files, newest first, by the timestamp in the name (a resumed search writes a
    new one; Tune's syncer rewrites the old ones too, so modification times say nothing)."""
    return sorted(exp.glob("experiment_state-*.json"), key=lambda p: p.name, reverse=True)


def _read_state(exp: Path) -> list | None:
    """The newest readable trial list (a search killed while its state was being copied leaves a cut file)."""
    for f in _state_files(exp):
        try:
            return json.loads(f.read_text())["trial_data"]
        except (json.JSONDecodeError, KeyError, OSError):
            continue
    return None


def _read_results(path: Path) -> list[dict]:
    out = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        out.append(json.loads(line))
                    except json.JSONDecodeError:
                        pass  # a line cut short by a kill
    except FileNotFoundError:
        pass
    return out


def error_line(path: Path) -> str | None:
    """The last line of a Tune error file (the exception and its message), or None without one."""
    try:
        lines = path.read_text().strip().splitlines()
    except OSError:
        return None
    return lines[-1][:500] if lines else None


def _died_unsaved(trial_dir: Path) -> bool:
    """A trial whose error Tune wrote but whose state it never saved as ERROR.

    When a trial's process has died by the time Tune handles its error, Ray 2.60 sets it ERROR in memory
    but never re-saves it: the state file keeps RUNNING after the search has ended. Its ``error.txt`` is
    there, with no report after it (a retried trial reports again)."""
    err = trial_dir / "error.txt"
    if not err.is_file():
        return False
    results = trial_dir / "result.json"
    return not results.is_file() or results.stat().st_mtime <= err.stat().st_mtime


def load_trials(experiment_dir: str | os.PathLike) -> list[TrialRecord]:
    """Every trial of the experiment, in creation order, with its reports."""
    exp = Path(experiment_dir)
    if not exp.is_dir():
        raise FileNotFoundError(f"no experiment folder {exp}")
    meta: dict[str, dict] = {}
    order: list[str] = []
    for trial_json, run_json in _read_state(exp) or []:
        t, r = json.loads(trial_json), json.loads(run_json)
        meta[t["trial_id"]] = {
            "status": t.get("status", "UNKNOWN"),
            "config": t.get("config") or {},
            "error": r.get("error_filename"),
        }
        order.append(t["trial_id"])
    for d in sorted(exp.glob(f"{TRIAL_PREFIX}*")):  # trials the state file has not caught up with
        tid = d.name[len(TRIAL_PREFIX) :]
        if d.is_dir() and tid not in meta:
            params = {}
            if (d / "params.json").is_file():
                params = json.loads((d / "params.json").read_text())
            meta[tid] = {"status": "UNKNOWN", "config": params, "error": None}
            order.append(tid)
    stops = stopped_trials(exp)
    trials = []
    for tid in order:
        d = exp / f"{TRIAL_PREFIX}{tid}"
        m = meta[tid]
        error = m["error"]
        failure = read_failure(d)
        if m["status"] in ("RUNNING", "PENDING") and _died_unsaved(d):
            m["status"], error = "ERROR", "error.txt"
        if failure is not None:
            error = f"{failure['error']}: {failure['message']}"
        elif error and (d / str(error)).is_file():
            error = error_line(d / str(error))
        results = _read_results(d / "result.json")
        trials.append(TrialRecord(tid, m["status"], m["config"], d, results, error, stops.get(tid)))
    return trials


def search_state(experiment_dir: str | os.PathLike) -> dict:
    try:
        return read_state(experiment_dir)
    except FileNotFoundError:
        return {}


def objectives(experiment_dir: str | os.PathLike, metric: str | None = None) -> tuple[list[str], list[str]]:
    """(metrics, modes) of the search: from tickettune_search.json; `metric` overrides the first."""
    spec = search_state(experiment_dir).get("spec", {})
    search = spec.get("search", {})
    metrics = search.get("metric", "val_metric")
    modes = search.get("mode", "max")
    metrics = list(metrics) if isinstance(metrics, list) else [metrics]
    modes = list(modes) if isinstance(modes, list) else [modes]
    if metric is not None and metric != metrics[0]:
        mode = "min" if metric == COST else (modes[metrics.index(metric)] if metric in metrics else modes[0])
        metrics, modes = (
            [metric] + [m for m in metrics if m != metric],
            [mode] + [md for m, md in zip(metrics, modes) if m != metric],
        )
    return metrics, modes


def candidates(trials: list[TrialRecord], metrics: list[str]) -> list[TrialRecord]:
    """Trials that finished with a ticket and finite values of every metric; never one the scheduler stopped
    (its last values are a partial run's)."""
    return [
        t
        for t in trials
        if t.ticket_dir is not None
        and t.status != "ERROR"
        and t.stopped is None
        and all(math.isfinite(t.metric(m)) for m in metrics)
    ]


def pareto_front(trials: list[TrialRecord], metrics: list[str], modes: list[str]) -> list[TrialRecord]:
    """The trials on the front of `metrics`, best first on the first metric (`front.non_dominated`)."""
    return [trials[i] for i in non_dominated([[t.metric(m) for m in metrics] for t in trials], modes)]


def best_trial(trials: list[TrialRecord], metric: str, mode: str) -> TrialRecord:
    sign = 1.0 if mode == "min" else -1.0
    # ties: the cheaper ticket, then the earlier trial
    return min(
        trials, key=lambda t: (sign * t.metric(metric), t.metric(COST) if math.isfinite(t.metric(COST)) else math.inf)
    )


class _Staging:
    """A temp folder beside `out` (so the final rename stays on one file system); removed on exit."""

    def __init__(self, out: Path):
        out.parent.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        self.path = self.root / "d"

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _entry(t: TrialRecord, metrics: list[str], path: Path) -> dict[str, Any]:
    shown = list(dict.fromkeys(metrics + [COST]))
    return {
        "trial_id": t.trial_id,
        "metrics": {m: t.metric(m) for m in shown},
        "path": str(path),
        "source": str(t.ticket_dir),
        "config": t.config,
        "converged": t.last.get("converged"),
        "early_bird_step": t.last.get("early_bird_step"),
    }


def _chosen(trials: list[TrialRecord], trial_id: str, exp: Path) -> TrialRecord:
    """The trial a user named (as `tickettune report` prints it, with or without the trial_ prefix)."""
    want = trial_id[len(TRIAL_PREFIX) :] if trial_id.startswith(TRIAL_PREFIX) else trial_id
    found = [t for t in trials if t.trial_id == want]
    if not found:
        raise ValueError(f"--trial {trial_id!r}: no such trial in {exp} (trials: {[t.trial_id for t in trials]})")
    t = found[0]
    if t.stopped is not None:
        raise ValueError(f"--trial {trial_id!r}: nothing to export: the scheduler stopped it, {stop_reason(t.stopped)}")
    if t.ticket_dir is None:
        why = (
            "it is the dense baseline (no ticket)"
            if t.is_baseline
            else f"its status is {t.status}" + (f" ({t.error})" if t.error else "") + ", and it wrote no ticket"
        )
        raise ValueError(f"--trial {trial_id!r}: nothing to export: {why}")
    return t


def export_best(
    experiment_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    metric: str | None = None,
    pareto: bool = False,
    trial: str | None = None,
) -> list[dict]:
    """Copy the best trial's ticket to `out_dir` (or, with `pareto`, every ticket on the Pareto front of
    the search's metrics — val_metric and relative_cost by default — to `out_dir/<trial_id>/`; or, with
    `trial`, that trial's ticket, e.g. one `tickettune report` printed on the front).

    `metric` defaults to the search's (first) metric; its mode comes from the search. Returns one entry
    per exported ticket (trial_id, metrics, path, config). Raises LookupError when no trial has a ticket.
    Each copy is atomic (temp folder + rename); with `pareto`, `out_dir` as a whole is replaced at once.
    """
    exp = Path(experiment_dir)
    out = Path(out_dir).absolute()
    metrics, modes = objectives(exp, metric)
    if pareto and trial is not None:
        raise ValueError("--trial exports one chosen ticket, --pareto the whole front: give one of them")
    if pareto and COST not in metrics:
        metrics, modes = metrics[:1] + [COST], modes[:1] + ["min"]
    trials = load_trials(exp)
    pool = (
        [_chosen(trials, trial, exp)] if trial is not None else candidates(trials, metrics if pareto else metrics[:1])
    )
    if not pool:
        why = {
            t.trial_id: (t.status, "ticket" if t.ticket_dir else "no ticket", t.error or (t.stopped and "stopped"))
            for t in trials
        }
        raise LookupError(
            f"no trial of {exp} finished with a ticket and a finite {metrics if pareto else metrics[0]} "
            f"({len(trials)} trials: {why})"
        )
    if not pareto:
        t = best_trial(pool, metrics[0], modes[0])
        entry = _entry(t, metrics[:1], out)
        with _Staging(out) as built:
            shutil.copytree(t.ticket_dir, built)
            (built / EXPORT_JSON).write_text(
                json.dumps(
                    {"experiment": str(exp.absolute()), "metric": metrics[0], "mode": modes[0], **entry},
                    indent=1,
                    default=str,
                )
            )
            publish_dir(built, out, overwrite=True)
        return [entry]
    front = pareto_front(pool, metrics, modes)
    entries = [_entry(t, metrics, out / t.trial_id) for t in front]
    with _Staging(out) as built:
        built.mkdir()
        for t in front:
            shutil.copytree(t.ticket_dir, built / t.trial_id)
        (built / EXPORT_JSON).write_text(
            json.dumps(
                {"experiment": str(exp.absolute()), "metrics": metrics, "modes": modes, "front": entries},
                indent=1,
                default=str,
            )
        )
        publish_dir(built, out, overwrite=True)
    return entries
