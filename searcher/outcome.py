"""What an ended search says in its last line, and the exit status the command line gives it.

A search in which no trial finished is a failure, whatever Tune's `fit()` returned: it exits non-zero and
its last line says how many trials failed and why the first one did (the reason is otherwise only in Tune's
per-trial error files). So does a search whose export failed.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import cluster_auth

FINISHED, FAILED = "TERMINATED", "ERROR"


@dataclass
class Outcome:
    planned: int
    finished: int  # trials that ended TERMINATED (ASHA's stopped trials too)
    failed: int  # trials that ended ERROR, after their retries
    first_failure: str | None = None  # "trial <id>: <reason>" of the first failed trial
    export_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.finished > 0 and self.export_error is None

    def line(self, name: str) -> str:
        """One line: the counts, then what went wrong first (and a hint where auth is the likely cause)."""
        text = f"[tickettune] {name}: {self.finished} of {self.planned} trials finished"
        if self.failed:
            text += f", {self.failed} failed; first: {self.first_failure}"
            text += cluster_auth.trial_hint(self.first_failure)
        if self.export_error:
            text += f"; export failed: {self.export_error}"
        return text


def outcome_of(trials: list, planned: int, export_error: str | None = None) -> Outcome:
    """`trials`: `export.TrialRecord`s in creation order."""
    failed = [t for t in trials if t.status == FAILED]
    first = None
    if failed:
        reason = failed[0].error or "no error recorded"
        first = f"trial {failed[0].trial_id}: {reason if len(reason) <= 300 else reason[:297] + '...'}"
    return Outcome(
        planned=planned,
        finished=sum(t.status == FINISHED for t in trials),
        failed=len(failed),
        first_failure=first,
        export_error=export_error,
    )


def exit_status(outcome: Outcome | None) -> int:
    """0 when a trial finished and the export (if any) worked; 1 otherwise."""
    return 0 if outcome is None or outcome.ok else 1
