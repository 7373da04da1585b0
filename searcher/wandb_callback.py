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
"""

from __future__ import annotations

import ray
from ray.air.integrations.wandb import WandbLoggerCallback, _WandbLoggingActor

CLOSE_TIMEOUT_S = 30  # for each run still open at close(): offline it is a local flush


class _LoggingActor(_WandbLoggingActor):
    def run(self):
        try:
            super().run()
        finally:
            self._wandb.teardown()


class WandbCallback(WandbLoggerCallback):
    """`WandbLoggerCallback` whose actors end in `close` and that never logs from ``__del__``."""

    _logger_actor_cls = _LoggingActor  # Ray's hook for the actor class it starts per trial

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
