"""One trial end to end, without Ray: search phase -> early bird -> prune -> ticket -> eval."""

import json

import pytest
import torch

from tickettune.trainables.config import FlowConfig
from tickettune.trainables.flow import run_flow
from tickettune.trainables.model.build import load_model
from tickettune.trainables.reporter import LocalReporter

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def base(tiny_sst2) -> dict:
    """eps 0.1: the early bird flies well inside the 60 search steps; a 6-step ticket phase."""
    return {
        **tiny_sst2,
        "max_eval_samples": 128,
        "report_interval": 2,
        "eps": 0.1,
        "search_max_steps": 60,
        "ticket_steps": 6,
    }


def test_early_bird_ends_search_and_ticket_is_pruned_and_reloads(tmp_path, base):
    reporter = LocalReporter(verbose=False)
    result = run_flow(FlowConfig(**base), reporter, ticket_dir=str(tmp_path / "ticket"))
    assert result.converged and result.early_bird_step is not None
    assert result.search_steps == result.early_bird_step < base["search_max_steps"]
    search = [r for r in reporter.history if r["phase"] == "search"]
    assert search[-1]["early_bird"] and search[-1]["mask_distance"] <= base["eps"]
    assert all(r["mask_distance"] > base["eps"] or r["early_bird"] for r in search)
    done = reporter.history[-1]
    assert done["done"] and done["converged"] and 0 <= done["val_metric"] <= 1
    assert 0 < done["relative_cost"] < 1  # early stop + a smaller ticket: cheaper than the dense budget

    model, _ = load_model(str(tmp_path / "ticket"))
    layers = model.bert.encoder.layer
    assert [l.num_heads for l in layers] == [3, 3]  # 1 of 4 heads pruned per layer
    assert sum(l.ffn_width for l in layers) == 64  # 50% of 128 FFN neurons, global
    info = json.loads((tmp_path / "ticket" / "ticket.json").read_text())
    assert info["early_bird_step"] == result.early_bird_step
    # the flow's ticket is a Hugging Face model folder too: model code and a card from the flow's info
    assert (tmp_path / "ticket" / "modeling_tickettune.py").is_file()
    card = (tmp_path / "ticket" / "README.md").read_text()
    assert "- task: `sst2`" in card and "| 0 | 3 / 4 |" in card and "| lambda_head | 0.01 |" in card
    assert f"| {done['val_metric']:.4g} |" in card and "pre-trained from random weights" in card


def test_unconverged_trial_stops_and_is_marked(base):
    cfg = FlowConfig(**{**base, "eps": 0.0, "search_max_steps": 6, "unconverged": "stop"})
    reporter = LocalReporter(verbose=False)
    result = run_flow(cfg, reporter)
    assert not result.converged and result.ticket_steps == 0
    assert reporter.history[-1]["converged"] is False and reporter.history[-1]["done"]


def test_pld_in_both_phases_reports_fewer_flops(base):
    common = {**base, "search_max_steps": 8, "eps": 0.0, "unconverged": "ticket", "ticket_steps": 8}
    plain = run_flow(FlowConfig(**common), LocalReporter(verbose=False))
    dropped = run_flow(
        FlowConfig(**common, pld=True, pld_phase="both", theta_bar=0.5, gamma=1.0), LocalReporter(verbose=False)
    )
    assert dropped.relative_cost < plain.relative_cost


@pytest.mark.parametrize(
    "bad, name",
    [
        ({"head_ratio": 1.0}, "head_ratio=1.0"),
        ({"lambda_ffn": -1}, "lambda_ffn=-1"),
        ({"task": "boolq"}, "task='boolq': unknown task"),
        ({"pld_phase": "x"}, "pld_phase='x'"),
    ],
)
def test_bad_flow_config_is_named(bad, name, base):
    with pytest.raises(ValueError, match=name.replace("(", r"\(")):
        FlowConfig(**{**base, **bad})


def test_unknown_flow_key():
    with pytest.raises(ValueError, match="heads_ratio"):
        FlowConfig.from_dict({"heads_ratio": 0.3})


class Crash(Exception):
    pass


class CheckpointingReporter(LocalReporter):
    """A reporter with checkpoints, as Ray's: keeps each reported checkpoint (a copy), can crash right
    after the first one, and hands the latest back to `checkpoint()` as a restarted worker would see it."""

    takes_checkpoints = True

    def __init__(self, root, crash_after_checkpoint: bool = False, restore_from=None):
        super().__init__(verbose=False)
        self.root, self.crash, self.restore_from = root, crash_after_checkpoint, restore_from
        self.saved: list[str] = []

    def checkpoint(self):
        return self.restore_from

    def checkpoint_dir(self) -> str:
        d = self.root / f"ckpt{len(self.saved)}"
        d.mkdir()
        return str(d)

    def report(self, metrics, checkpoint_dir=None):
        super().report(metrics, checkpoint_dir)
        if checkpoint_dir is not None:
            self.saved.append(checkpoint_dir)
            if self.crash:
                raise Crash(checkpoint_dir)


def test_worker_restarted_after_the_search_phase_skips_it_and_ends_the_same(tmp_path, base):
    cfg = FlowConfig(**{**base, "ticket_steps": 8})
    whole = CheckpointingReporter(tmp_path)
    reference = run_flow(cfg, whole, ticket_dir=str(tmp_path / "a"))
    # two checkpoints: the search phase's result, then a marker that replaces it once the trial is done
    assert len(whole.saved) == 2 and (tmp_path / "ckpt0" / "search_ticket").is_dir()
    assert [p.name for p in (tmp_path / "ckpt1").iterdir()] == ["finished.json"]

    crashing = CheckpointingReporter(tmp_path / "x", crash_after_checkpoint=True)
    (tmp_path / "x").mkdir()
    with pytest.raises(Crash) as crash:
        run_flow(cfg, crashing, ticket_dir=str(tmp_path / "b"))
    restarted = CheckpointingReporter(tmp_path / "y", restore_from=str(crash.value))
    (tmp_path / "y").mkdir()
    resumed = run_flow(cfg, restarted, ticket_dir=str(tmp_path / "b"))

    assert not [r for r in restarted.history if r["phase"] == "search"]  # the search phase did not run again
    assert resumed.search_steps == reference.search_steps and resumed.early_bird_step == reference.early_bird_step
    assert resumed.val_metric == reference.val_metric
    assert resumed.relative_cost == pytest.approx(reference.relative_cost, rel=1e-12)
    a, _ = load_model(str(tmp_path / "a"))
    b, _ = load_model(str(tmp_path / "b"))
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name
    assert (
        json.loads((tmp_path / "b" / "ticket.json").read_text())["masks"]
        == json.loads((tmp_path / "a" / "ticket.json").read_text())["masks"]
    )


def test_both_phases_report_the_dev_metric_every_eval_interval_of_the_trials_steps(base):
    """ASHA's clock (`eval_step`) is the trial's own step count: the searching model is scored at the
    multiples of eval_interval before the draw, the ticket at those after it, and the scoring time is not
    training time."""
    cfg = FlowConfig(**{**base, "ticket_steps": 8, "eval_interval": 3, "mask_interval": 2})
    reporter = LocalReporter(verbose=False)
    result = run_flow(cfg, reporter)
    rung = [r for r in reporter.history if "eval_step" in r]
    total = result.search_steps + result.ticket_steps
    assert [r["eval_step"] for r in rung] == [*range(3, total, 3), total]  # every 3 trial steps, and the final
    assert [r["step"] for r in rung] == [r["eval_step"] for r in rung]
    searching = [r for r in rung if r["phase"] == "search"]
    assert searching and all(r["eval_step"] <= result.search_steps for r in searching)
    assert any(r["phase"] == "ticket" for r in rung)
    assert all(0 <= r["val_metric"] <= 1 and r["val_loss"] > 0 for r in rung)  # the dev loss beside it
    assert rung[-1]["val_metric"] == result.val_metric
    before = [r for r in reporter.history if r["step"] < 3]
    assert before and all(r["val_metric"] != r["val_metric"] for r in before)  # NaN: nothing scored yet
