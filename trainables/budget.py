"""A trial's budget is the dense fine-tuning run it replaces; the ticket modes spend it differently.

A user compares us with the run they would otherwise do: `budget_steps` optimizer steps (or
`budget_epochs` over the train set) of the dense model. `relative_cost` (FLOPs) and `relative_time`
(wall-clock) are measured against that run.

* ``rewind`` (EarlyBERT's recipe): the pruned ticket restarts from the pre-trained weights with a fresh
  optimizer and schedule, and trains the whole budget. Total = search steps + budget.
* ``continue``: the ticket keeps what the search phase learned — its weights (coefficients folded in),
  AdamW's moments (carry.py), the lr schedule's position and the data order — and trains the rest of the
  budget. Total = the budget: every step of the search counts toward the dense run it replaces.

Without a budget the legacy meaning holds: the ticket trains `ticket_steps` (default 300) and the
dense run it replaces is `search_max_steps + ticket_steps` steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

TICKET_MODES = ("rewind", "continue")
LEGACY_TICKET_STEPS = 300


def budget_problems(cfg: Any) -> list[str]:
    """What is wrong with a FlowConfig's budget fields (an empty list when nothing is)."""
    p = []
    if cfg.ticket_mode not in TICKET_MODES:
        p.append(f"ticket_mode={cfg.ticket_mode!r}: expected one of {TICKET_MODES}")
    if cfg.budget_steps is not None and cfg.budget_epochs is not None:
        p.append(f"budget_steps={cfg.budget_steps!r} and budget_epochs={cfg.budget_epochs!r}: give one of them")
    if cfg.budget_steps is not None and cfg.budget_steps < 1:
        p.append(f"budget_steps={cfg.budget_steps!r} must be >= 1")
    if cfg.budget_epochs is not None and not cfg.budget_epochs > 0:
        p.append(f"budget_epochs={cfg.budget_epochs!r} must be > 0")
    has_budget = cfg.budget_steps is not None or cfg.budget_epochs is not None
    if cfg.ticket_steps is not None and cfg.ticket_steps < 1:
        p.append(f"ticket_steps={cfg.ticket_steps!r} must be >= 1")
    if has_budget and cfg.ticket_steps is not None:
        p.append(
            f"ticket_steps={cfg.ticket_steps!r} with a budget: the budget decides the ticket's steps "
            "(rewind: all of it; continue: what the search left); drop one"
        )
    if cfg.baseline and not has_budget:
        p.append("baseline=true needs budget_steps or budget_epochs: the dense run it measures")
    if cfg.ticket_mode == "continue" and cfg.budget_steps is not None and cfg.search_max_steps >= cfg.budget_steps:
        p.append(
            f"search_max_steps={cfg.search_max_steps} must be < budget_steps={cfg.budget_steps} in "
            "ticket_mode='continue' (the ticket trains what the search leaves)"
        )
    return p


def budget_steps(cfg: Any, batches_per_epoch: int | None) -> int:
    """Optimizer steps of the dense run the trial replaces (`batches_per_epoch` None: streamed data)."""
    if cfg.budget_steps is not None:
        return cfg.budget_steps
    if cfg.budget_epochs is not None:
        if batches_per_epoch is None:
            raise ValueError(
                f"budget_epochs={cfg.budget_epochs}: streamed training data has no epoch length; give budget_steps"
            )
        return max(1, math.ceil(cfg.budget_epochs * batches_per_epoch))
    return cfg.search_max_steps + (cfg.ticket_steps or LEGACY_TICKET_STEPS)


@dataclass(frozen=True)
class TicketPlan:
    steps: int  # optimizer steps the ticket trains
    start_step: int  # where its lr schedule and data order start (continue: after the search)
    horizon: int  # the lr schedule's length


def ticket_plan(cfg: Any, budget: int, search_steps: int) -> TicketPlan:
    """How the ticket spends the budget after a search of `search_steps` steps."""
    explicit = cfg.budget_steps is not None or cfg.budget_epochs is not None
    if cfg.ticket_mode == "continue":
        steps = max(1, budget - search_steps) if explicit else (cfg.ticket_steps or LEGACY_TICKET_STEPS)
        return TicketPlan(steps, search_steps, max(budget, search_steps + steps))
    steps = budget if explicit else (cfg.ticket_steps or LEGACY_TICKET_STEPS)
    return TicketPlan(steps, 0, steps)


def relative_time(seconds: float, dense_step_seconds: float, budget: int) -> float:
    """Wall-clock so far over the dense run's: its step time is measured on the dense model (the search
    phase trains it, coefficients included, or the baseline trial does)."""
    if not dense_step_seconds > 0:
        return math.nan
    return seconds / (dense_step_seconds * budget)
