"""Ray's W&B Tune callback, ended while Ray is still up (imported only when a search names a W&B project).

Two tracebacks a first search printed with ``WANDB_MODE=offline``, both after its last trial:

* ``Exception ignored in WandbLoggerCallback.__del__ ... 'NoneType' object has no attribute
  'is_initialized'``: Ray's ``__del__`` calls ``ray.is_initialized()``. The callback lives in the Tuner's run
  config until the interpreter exits, and by then the module global ``ray`` of ray/air/integrations/wandb.py
  has been cleared to None. `WandbCallback.close` ends the logging actors explicitly (the search calls it
  after ``Tuner.fit``, before ``ray.shutdown``); afterwards there is nothing left for ``__del__`` to do, and
  ours does not call into a half-torn-down Ray.
* ``Exception ignored in atexit callback ... teardown_atexit ... ConnectionResetError`` from a
  ``_WandbLoggingActor``: after ``wandb.finish()`` the actor is killed with its W&B service connection still
  registered for an atexit teardown, which races the service process going away. `_LoggingActor` tears W&B
  down itself (``wandb.teardown()``, which also unregisters that hook) before returning.

And one crash that ended a whole search on a cluster: a trial whose actor never started (it could not be
placed, its node was lost, its runtime env failed) ends without ever having started its logging actor, and
Ray's ``log_trial_end`` raised ``KeyError`` from ``self._trial_queues[trial]``. Such a trial has no run to end.
More generally, W&B is a side channel: an error in any hook is printed against its trial and kept in
`errors`, and the search goes on.

A trial that runs again (retried after its node was lost, or restarted by `tickettune resume`) logs to the
same run: Ray names the run after the trial id but opens it with ``resume=False``, which online starts a
new run under an id that already exists; here it is ``resume="allow"`` (W&B: continue the run with that id if
there is one, else create it). Offline, every attempt is its own folder ``offline-run-<time>-<trial id>``;
`wandb sync` uploads the folders of one run id in order of start time, into that one run.

And a retried trial's first reports were dropped: Ray logs each result at ``step=training_iteration``, and a
trial restored from its checkpoint counts its iterations again from the checkpoint's (6, 7, ... after 14 had
been logged), which W&B ignores ("Tried to log to step 6 that is less than the current step 14"; seen in the
chaos run, scripts/bench/chaos_search.py). `_LoggingActor` logs without an explicit step (W&B's own counter,
which a resumed run continues) and keeps Tune's iteration as the metric ``tune_iteration``; the flow's own
``step`` (training steps) is logged as before.
"""

from __future__ import annotations

import functools
import sys

import ray
from ray.air.constants import TRAINING_ITERATION
from ray.air.integrations.wandb import WandbLoggerCallback, _WandbLoggingActor

CLOSE_TIMEOUT_S = 30  # for each run still open at close(): offline it is a local flush
TUNE_ITERATION = "tune_iteration"  # Tune's training_iteration, logged as a metric (not W&B's step)


class _LoggingActor(_WandbLoggingActor):
    def _handle_result(self, result: dict) -> tuple[dict, dict]:
        log, config_update = super()._handle_result(result)
        if TRAINING_ITERATION in log:  # Ray logs at step=log.get(TRAINING_ITERATION): None -> W&B's own step
            log[TUNE_ITERATION] = log.pop(TRAINING_ITERATION)
        return log, config_update

    def run(self):
        try:
            super().run()
        finally:
            self._wandb.teardown()


def _guarded(hook):
    """A hook whose error is reported against its trial instead of raised into Tune's loop."""

    @functools.wraps(hook)
    def run(self, *args, **kwargs):
        try:
            return hook(self, *args, **kwargs)
        except Exception as e:  # noqa: BLE001 - logging must never end the search
            trial = kwargs.get("trial") or next((a for a in args if hasattr(a, "trial_id")), None)
            tid = getattr(trial, "trial_id", "?")
            self.errors.setdefault(tid, f"{hook.__name__}: {type(e).__name__}: {e}")
            print(
                f"[tickettune] trial {tid}: W&B logging failed ({self.errors[tid]}); the search goes on",
                file=sys.stderr,
                flush=True,
            )
            return None

    return run


class WandbCallback(WandbLoggerCallback):
    """`WandbLoggerCallback` whose actors end in `close`, that never logs from ``__del__``, and whose errors
    stay with their trial (`errors`: trial id -> the first error)."""

    _logger_actor_cls = _LoggingActor  # Ray's hook for the actor class it starts per trial

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("resume", "allow")  # Ray's wandb.init kwargs are updated with these: a retry continues
        super().__init__(*args, **kwargs)
        self.errors: dict[str, str] = {}

    def log_trial_end(self, trial, failed: bool = False):
        if trial not in self._trial_queues:  # it never reported: no logging actor, no run to end
            return
        super().log_trial_end(trial, failed=failed)

    on_trial_start = _guarded(WandbLoggerCallback.on_trial_start)
    on_trial_restore = _guarded(WandbLoggerCallback.on_trial_restore)
    on_trial_result = _guarded(WandbLoggerCallback.on_trial_result)
    on_trial_save = _guarded(WandbLoggerCallback.on_trial_save)
    on_trial_complete = _guarded(WandbLoggerCallback.on_trial_complete)
    on_trial_error = _guarded(WandbLoggerCallback.on_trial_error)

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Finish every trial's run still open and end the logging actors; call it while Ray is up."""
        if ray.is_initialized():
            for trial in list(self._trial_logging_actors):
                self._signal_logging_actor_stop(trial=trial)
            self._cleanup_logging_actors(timeout=timeout, kill_on_timeout=True)
        self._trial_logging_actors = {}
        self._trial_logging_futures = {}
        self._logging_future_to_trial = {}
        self._trial_queues = {}

    def __del__(self):
        if getattr(self, "_trial_logging_actors", None) and ray is not None and ray.is_initialized():
            self.close(timeout=2)


def close_all(callbacks: list) -> None:
    """`WandbCallback.close` on each of `callbacks` that is one (e.g. a restored Tuner's)."""
    for cb in callbacks:
        if isinstance(cb, WandbCallback):
            cb.close()
