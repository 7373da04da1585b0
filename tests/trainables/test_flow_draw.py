"""The flow draws its ticket in the mode the config names: `rewind` starts from the pre-trained weights, `continue`
carries the search's AdamW moments (until this test, the flow passed the whole config where draw_ticket takes the
mode, so neither happened)."""

import pytest

from tickettune.trainables import flow
from tickettune.trainables.config import FlowConfig
from tickettune.trainables.reporter import LocalReporter


@pytest.mark.parametrize("mode", ["rewind", "continue"])
def test_the_ticket_is_drawn_in_the_configured_mode(tiny_sst2, one_thread, monkeypatch, mode):
    drawn = []
    real = flow.draw_ticket

    def spy(searched, ticket_mode):
        ticket, opt_state = real(searched, ticket_mode)
        drawn.append((ticket_mode, opt_state is not None))
        return ticket, opt_state

    monkeypatch.setattr(flow, "draw_ticket", spy)
    cfg = {**tiny_sst2, "max_train_samples": 64, "budget_steps": 8, "search_max_steps": 4, "eps": 0.5}
    flow.run_flow(FlowConfig(**cfg, ticket_mode=mode, unconverged="ticket"), LocalReporter(verbose=False))
    assert drawn == [(mode, mode == "continue")]  # continue: the pruned AdamW moments go on with the ticket
