"""Trial scheduling: ASHA stops the trials that are behind on the dev metric (or, with `rung_metric: val_loss`, the
dev loss) at fixed fractions of the budget.

A trial reports its progress (`eval_step`: its own step count, search phase included, next to a fresh dev
metric); only the scheduler decides whether it stops. By default the rungs are at a quarter and a half of the
largest budget (`search.first_rung` 0.25, `search.reduction_factor` 2: a trial below the median of those judged at
a rung stops there). A rung is a fraction of what the trial costs, as with HF's pruners: a trial still in its mask
search there is judged on the searching model's dev metric, and a stop saves the search phase too. On top of Ray's
`ASHAScheduler`, `RungScheduler`:

* never judges the dense baseline trial (`search.baseline`): it is the reference every ticket's relative time is
  read against, so it always finishes, and its dense steps are not a ticket's steps, so it sets no cutoff;
* never stops a trial on the report that ends it (it finished on its own; its metric still counts at the rung),
  nor at a rung within a grace period of max_t (ASHA's top rung can fall a few steps before the end, e.g. 624 of
  625: a trial there has spent its budget, and a stop would only lose its ticket);
* records every rung value and every early stop in ``<experiment>/scheduler.state`` (stops.py): the report says
  at which rung and why a trial stopped, export skips it, and a resumed search judges new trials against the
  same rungs (Tune restores the scheduler as pickled when the search started, so it reloads the file).

Imported only where a search starts (it imports Ray).
"""

from __future__ import annotations

import os
import time
from dataclasses import replace

from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from .stops import read_scheduler_state, write_scheduler_state

TIME_ATTR = "eval_step"


def _most(spec, key: str) -> int | None:
    """The largest value a FlowConfig int key can take in this spec (space, else fixed, else default)."""
    from dataclasses import fields as dc_fields

    from ..trainables.config import FlowConfig

    if key in spec.space:
        return int(max(spec.space[key].corners()))
    defaults = {f.name: f.default for f in dc_fields(FlowConfig)}
    value = spec.fixed.get(key, defaults[key])
    return None if value is None else int(value)


def asha_rungs(spec) -> tuple[int, int]:
    """ASHA's (max_t, grace_period), in the trial's own steps.

    Time is `eval_step`, which a trial reports only next to a fresh dev metric: every trial is judged after
    the same number of optimizer steps, whichever phase it is in (the dense run a ticket replaces has
    `budget_steps` of them; without a budget a trial runs search_max_steps + ticket_steps at most)."""
    from ..trainables.budget import LEGACY_TICKET_STEPS

    if _most(spec, "budget_steps") is None and (spec.fixed.get("budget_epochs") or "budget_epochs" in spec.space):
        raise ValueError(
            "scheduler: asha needs budget_steps (its max_t is fixed before the data is read); "
            "budget_epochs is only known per trial"
        )
    legacy = (_most(spec, "search_max_steps") or 0) + (_most(spec, "ticket_steps") or LEGACY_TICKET_STEPS)
    max_t = max(4, _most(spec, "budget_steps") or legacy)
    return max_t, spec.search.first_rung_steps(max_t)


def with_rung_evaluations(spec):
    """With ASHA and no eval_interval given, evaluate every grace_period steps: at each rung."""
    if spec.search.scheduler != "asha" or "eval_interval" in spec.fixed or "eval_interval" in spec.space:
        return spec
    return replace(spec, fixed={**spec.fixed, "eval_interval": asha_rungs(spec)[1]})


def make_scheduler(spec, experiment_dir) -> "RungScheduler | None":
    if spec.search.scheduler != "asha":
        return None
    max_t, grace = asha_rungs(spec)
    metric, mode = spec.search.rungs_judge
    return RungScheduler(
        str(experiment_dir),
        time_attr=TIME_ATTR,
        metric=metric,
        mode=mode,
        max_t=max_t,
        grace_period=grace,
        reduction_factor=spec.search.reduction_factor,
    )


def is_baseline(trial, result: dict | None = None) -> bool:
    return bool((getattr(trial, "config", None) or {}).get("baseline") or (result or {}).get("baseline") is True)


class RungScheduler(ASHAScheduler):
    """ASHA that spares the baseline, records its decisions and keeps its rungs across a resume."""

    def __init__(self, experiment_dir: str, **asha):
        # stop_last_trials=False: a trial at max_t ends on its own (its ticket saved); ASHA only cuts at rungs
        super().__init__(stop_last_trials=False, **asha)
        self._grace = asha["grace_period"]
        self.experiment_dir = experiment_dir
        self.stopped: dict[str, dict] = {}
        self._spared: set[str] = set()
        self._loaded = False

    # -- Tune's hooks --------------------------------------------------------------------------------------
    def on_trial_add(self, tune_controller, trial) -> None:
        self._adopt(trial)
        if is_baseline(trial):
            self._spared.add(trial.trial_id)
            return
        super().on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if trial.trial_id in self._spared or is_baseline(trial, result):
            return TrialScheduler.CONTINUE
        rung = self._rung_of(trial, result)  # before ASHA records this trial's value there
        action = super().on_trial_result(tune_controller, trial, result)
        if rung is None:
            return action
        number, milestone, cutoff, compared = rung
        decides = not result.get("flow_done") and milestone <= self._max_t - self._grace
        if action == TrialScheduler.STOP and cutoff is not None and decides:
            self.stopped[trial.trial_id] = {
                "rung": number,
                "rungs": len(self._bracket()._rungs),
                "milestone": milestone,
                "at": result[self._time_attr],
                "value": float(result[self._metric]),
                "cutoff": float(self._metric_op * cutoff),
                "compared": compared,
                "time": time.time(),
            }
        else:
            action = TrialScheduler.CONTINUE
        self._save()
        return action

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        if trial.trial_id not in self._spared and trial.trial_id in self._trial_info:
            super().on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial) -> None:
        self._trial_info.pop(trial.trial_id, None)

    # -- the rungs, and the file that keeps them ------------------------------------------------------------
    def _bracket(self):
        return self._brackets[0]  # one bracket (ASHAScheduler's default)

    def _rung_of(self, trial, result: dict) -> tuple[int, float, float | None, int] | None:
        """(rung number from 1, milestone, cutoff in ASHA's signed units or None, trials recorded there) of the
        rung this result reaches for the first time, found as `_Bracket.on_result` finds it (Ray 2.60); None: no
        rung reached."""
        if self._time_attr not in result or self._metric not in result or trial.trial_id not in self._trial_info:
            return None
        rungs = self._trial_info[trial.trial_id]._rungs
        t = result[self._time_attr]
        for i, (milestone, recorded) in enumerate(rungs):
            if t >= milestone and trial.trial_id in recorded:
                return None  # past this rung already (stop_last_trials=False)
            if t < milestone or trial.trial_id in recorded:
                continue
            return len(rungs) - i, milestone, self._trial_info[trial.trial_id].cutoff(recorded), len(recorded)
        return None

    def _adopt(self, trial) -> None:
        """Where the experiment is now (a resumed search may have been moved), then what was recorded there."""
        where = getattr(getattr(trial, "storage", None), "experiment_fs_path", None)
        if where and where != self.experiment_dir and os.path.isdir(where):
            self.experiment_dir, self._loaded = where, False
        if self._loaded:
            return
        state = read_scheduler_state(self.experiment_dir)
        clock = state.get("time_attr", self._time_attr)
        if clock != self._time_attr:  # rungs on another clock do not compare; its stops stay, saying their clock
            state = {"stopped": {tid: {"time_attr": clock, **d} for tid, d in (state.get("stopped") or {}).items()}}
        for milestone, recorded in self._bracket()._rungs:
            saved = (state.get("rungs") or {}).get(f"{milestone:g}") or {}
            recorded.update({tid: self._metric_op * v for tid, v in saved.items()})
        self.stopped.update(state.get("stopped") or {})
        self._loaded = True

    def _save(self) -> None:
        rungs = {f"{m:g}": {tid: self._metric_op * v for tid, v in rec.items()} for m, rec in self._bracket()._rungs}
        write_scheduler_state(
            self.experiment_dir,
            {
                "metric": self._metric,
                "mode": self._mode,
                "time_attr": self._time_attr,
                "rungs": rungs,
                "stopped": self.stopped,
            },
        )
