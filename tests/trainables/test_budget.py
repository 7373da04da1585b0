"""A trial's budget is the dense run it replaces: the arithmetic of both ticket modes, and what `continue`
carries over from the search phase (weights, AdamW moments, the lr schedule's position)."""

import math

import pytest
import torch

from tickettune.trainables.budget import TicketPlan, budget_steps, ticket_plan
from tickettune.trainables.config import FlowConfig
from tickettune.trainables.earlybert import optimizer_carry as carry
from tickettune.trainables.earlybert import slimming
from tickettune.trainables.earlybert.masks import MaskConfig, draw_masks
from tickettune.trainables.flow import run_flow
from tickettune.trainables.model.build import ScratchConfig, scratch_model
from tickettune.trainables.reporter import LocalReporter
from tickettune.trainables.training.loop import TrainConfig, make_optimizer, train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def base(tiny_sst2) -> dict:
    """No early bird (eps 0): the search runs the steps each test gives it, and the budget sets the ticket's."""
    return {
        **tiny_sst2,
        "max_eval_samples": 64,
        "report_interval": 2,
        "eps": 0.0,
        "unconverged": "ticket",
        "precision": "fp32",
        "warmup_ratio": 0.2,
    }


def test_budget_arithmetic_of_both_modes(base):
    rewind = FlowConfig(**{**base, "budget_steps": 100, "search_max_steps": 40, "ticket_mode": "rewind"})
    cont = FlowConfig(**{**base, "budget_steps": 100, "search_max_steps": 40, "ticket_mode": "continue"})
    assert budget_steps(rewind, batches_per_epoch=16) == 100
    assert ticket_plan(rewind, 100, 30) == TicketPlan(100, 0, 100)  # the whole budget again, from step 0
    assert ticket_plan(cont, 100, 30) == TicketPlan(70, 30, 100)  # what the search left, from where it stopped
    epochs = FlowConfig(**{**base, "budget_epochs": 1.5, "search_max_steps": 10, "ticket_mode": "continue"})
    assert budget_steps(epochs, batches_per_epoch=16) == 24
    legacy = FlowConfig(**{**base, "search_max_steps": 40, "ticket_steps": 12})
    assert budget_steps(legacy, 16) == 52 and ticket_plan(legacy, 52, 30).steps == 12
    assert ticket_plan(FlowConfig(**{**base, "search_max_steps": 40}), 340, 30).steps == 300  # legacy default


@pytest.mark.parametrize(
    "bad, named",
    [
        ({"budget_steps": 10, "budget_epochs": 1.0}, "give one of them"),
        ({"budget_steps": 100, "ticket_steps": 10}, "ticket_steps=10 with a budget"),
        ({"baseline": True}, "baseline=true needs budget_steps"),
        ({"budget_steps": 20, "search_max_steps": 20, "ticket_mode": "continue"}, "search_max_steps=20 must be <"),
        ({"ticket_mode": "resume"}, "ticket_mode='resume'"),
    ],
)
def test_bad_budgets_are_named(bad, named, base):
    with pytest.raises(ValueError, match=named):
        FlowConfig(**{**base, **bad})


def test_continue_runs_the_budget_and_picks_the_lr_schedule_up_where_the_search_left_it(base):
    cfg = FlowConfig(**{**base, "budget_steps": 20, "search_max_steps": 8, "ticket_mode": "continue"})
    reporter = LocalReporter(verbose=False)
    result = run_flow(cfg, reporter)
    assert result.search_steps == 8 and result.ticket_steps == 12  # 8 + 12 = the dense run's 20 steps
    warmup, horizon = 4, 20  # warmup_ratio 0.2 of the budget, decay to 0 at the budget
    for r in reporter.history:
        if r["phase"] in ("search", "ticket") and "lr" in r:
            s = r["step"]
            expected = cfg.lr * (s / warmup if s < warmup else (horizon - s) / (horizon - warmup))
            assert math.isclose(r["lr"], expected, rel_tol=1e-6, abs_tol=1e-12), (r["phase"], s, r["lr"], expected)
    assert reporter.history[-1]["budget_steps"] == 20
    assert math.isfinite(reporter.history[-1]["relative_time"]) and reporter.history[-1]["relative_time"] > 0


def test_rewind_trains_the_whole_budget_with_a_fresh_schedule(base):
    cfg = FlowConfig(**{**base, "budget_steps": 12, "search_max_steps": 6, "ticket_mode": "rewind"})
    reporter = LocalReporter(verbose=False)
    result = run_flow(cfg, reporter)
    assert result.search_steps == 6 and result.ticket_steps == 12
    first_ticket = next(r for r in reporter.history if r["phase"] == "ticket" and "lr" in r)
    assert first_ticket["step"] == 6 + 2 and math.isclose(first_ticket["lr"], cfg.ticket_lr * 2 / 2)  # warm-up 2


def test_continue_carries_adam_moments_through_pruning():
    torch.manual_seed(0)
    model, _ = scratch_model(ScratchConfig(layers=2, heads=4, hidden=32, ffn=64, dropout=0.0), head="classification")
    slimming.attach(model)
    batches = [
        {
            "input_ids": torch.randint(5, 500, (4, 12)),
            "attention_mask": torch.ones(4, 12, dtype=torch.long),
            "labels": torch.randint(0, 2, (4,)),
        }
        for _ in range(3)
    ]
    res = train(model, batches, TrainConfig(lr=1e-3, max_steps=3, progress=False, precision="fp32", fused=False))
    state = carry.state_by_name(model, res.optimizer)
    heads, ffn = draw_masks(*slimming.coefficients(model), MaskConfig(head_ratio=0.5, ffn_ratio=0.5, min_ffn=4))
    pruned = carry.prune_state(model, state, heads, ffn)
    q = "bert.encoder.layer.0.attention.self.query.weight"
    rows = torch.cat([torch.arange(h * 8, h * 8 + 8) for h in heads[0].nonzero().flatten().tolist()])
    assert torch.equal(pruned[q]["exp_avg"], state[q]["exp_avg"][rows])
    o = "bert.encoder.layer.1.output.dense.weight"  # FFN output: neurons are columns
    assert torch.equal(pruned[o]["exp_avg_sq"], state[o]["exp_avg_sq"][:, ffn[1]])
    assert int(pruned[q]["step"]) == 3
    from tickettune.trainables.earlybert.draw import make_ticket

    ticket = make_ticket(None, model, heads, ffn, rewind=False)
    opt = make_optimizer(ticket, TrainConfig(lr=1e-3, fused=False))
    assert carry.load_state(opt, ticket, pruned) == len(pruned)
    assert not any(n.endswith(("head_coef", "ffn_coef")) for n in pruned)
