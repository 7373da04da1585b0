"""The fast path's step side: bounded shapes, losses read back in batches, torch.compile's counted graphs."""

import math

import pytest
import torch

from tickettune.trainables.config import FlowConfig
from tickettune.trainables.model.build import ScratchConfig, scratch_model
from tickettune.trainables.tasks import DataArgs, get_task
from tickettune.trainables.training.callbacks import Callback
from tickettune.trainables.training.loop import TrainConfig, train
from tickettune.trainables.training.step_losses import LossLog, StepLogs


def tiny(seed=0):
    torch.manual_seed(seed)
    model, _ = scratch_model(ScratchConfig(layers=2, heads=2, hidden=32, ffn=64, dropout=0.0), head="classification")
    return model


def batches(lengths, size=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for t in lengths:
        ids = torch.randint(1000, 2000, (size, t), generator=g)
        out.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": (ids[:, 0] % 2).long()})
    return out


def test_sst2_batches_pad_to_the_multiple_and_the_loop_counts_the_shapes(shared_data, minilm_tokenizer):
    task = get_task("sst2")
    args = dict(root=str(shared_data), max_length=64, batch_size=16, max_train_samples=480, group_by_length=True)
    plain = list(task.train_loader(minilm_tokenizer, DataArgs(**args)))
    padded = list(task.train_loader(minilm_tokenizer, DataArgs(**args, pad_to_multiple_of=8)))
    plain_lengths = {b["input_ids"].shape[1] for b in plain}
    padded_lengths = {b["input_ids"].shape[1] for b in padded}
    assert all(t % 8 == 0 for t in padded_lengths) and len(padded_lengths) < len(plain_lengths)
    for p, q in zip(plain, padded):  # the same sentences, only longer padding, masked out
        t = p["input_ids"].shape[1]
        assert torch.equal(p["input_ids"], q["input_ids"][:, :t]) and not q["attention_mask"][:, t:].any()
    res = train(tiny(), padded[:6], TrainConfig(max_steps=6, progress=False, precision="fp32"))
    assert res.shapes == len({tuple(b["input_ids"].shape) for b in padded[:6]})


def test_the_flow_pads_exact_lengths_unless_compiling():
    assert FlowConfig().data_args().pad_to_multiple_of is None
    assert FlowConfig(compile=True).data_args().pad_to_multiple_of == 8
    assert FlowConfig(compile=True, pad_to_multiple_of=16).data_args().pad_to_multiple_of == 16
    levers = FlowConfig(compile=True).levers()  # what every phase's TrainConfig gets
    assert levers["compile"] is True and levers["compile_cache_dir"] is None


def test_bad_pad_multiple_is_refused_before_anything_runs():
    with pytest.raises(ValueError, match="pad_to_multiple_of=0"):
        FlowConfig(pad_to_multiple_of=0)
    with pytest.raises(ValueError, match="compile=true with pld=true"):
        FlowConfig(compile=True, pld=True)
    with pytest.raises(ValueError, match="sync_every=0"):
        TrainConfig(sync_every=0)


def test_loss_log_reads_back_in_batches_and_names_the_first_bad_step():
    out = []
    log = LossLog(3, out)
    for step in range(2):
        log.add(step, torch.tensor(float(step)))
    assert out == []  # nothing read back yet
    logs = StepLogs(log, lr=0.1)
    assert logs["loss"] == 1.0 and out == [0.0, 1.0] and logs.get("loss") == 1.0 and logs["lr"] == 0.1
    log.add(2, torch.tensor(float("nan")))
    log.add(3, torch.tensor(1.0))
    with pytest.raises(FloatingPointError, match="loss is nan at step 2"):
        log.add(4, torch.tensor(2.0))


def test_deferred_sync_gives_the_same_losses_and_callbacks_still_see_each_loss():
    class Seen(Callback):
        def __init__(self):
            self.losses = []

        def after_step(self, step, logs):
            self.losses.append(logs["loss"])
            return False

    data = batches([12] * 8)
    cfg = dict(lr=1e-3, max_steps=8, progress=False, fused=False, precision="fp32")
    every_step = train(tiny(), data, TrainConfig(sync_every=1, **cfg))
    seen = Seen()
    deferred = train(tiny(), data, TrainConfig(sync_every=5, **cfg), [seen])
    assert every_step.losses == deferred.losses == seen.losses and len(deferred.losses) == 8
    quiet = train(tiny(), data, TrainConfig(sync_every=5, **cfg))  # nobody asks: read back at 5 and at the end
    assert quiet.losses == every_step.losses and all(math.isfinite(x) for x in quiet.losses)


@pytest.mark.slow
def test_compile_builds_one_graph_per_bucketed_shape_and_logs_it(tmp_path):
    """A tiny random model, two bucketed lengths (8, 16) seen in turn: two compiled shapes, no more; the
    compiled loop computes what the eager one does; the cache lands where it was told."""
    data = batches([8, 16, 8, 16, 16, 8])
    cfg = dict(lr=1e-3, max_steps=6, progress=False, fused=False, precision="fp32")
    eager = train(tiny(), data, TrainConfig(**cfg))
    compiled = train(tiny(), data, TrainConfig(compile=True, compile_cache_dir=str(tmp_path / "cache"), **cfg))
    stats = compiled.compile
    assert compiled.shapes == 2 and stats["compile_seconds"] > 0
    assert 2 <= stats["graphs"] <= 2 * stats["graphs_first_shape"]
    assert stats["recompiles"] == stats["graphs"] - stats["graphs_first_shape"]
    assert any((tmp_path / "cache").iterdir())
    torch.testing.assert_close(torch.tensor(compiled.losses), torch.tensor(eager.losses), atol=1e-4, rtol=1e-4)


def test_a_search_gives_its_compiling_trials_one_inductor_cache(tmp_path):
    from types import SimpleNamespace

    from tickettune.searcher.trial import _payload

    plan = SimpleNamespace(torch_threads=1, use_gpu=False)
    settings = {"experiment_dir": str(tmp_path), "data_root": None}
    on = _payload({"compile": True}, settings, tmp_path / "t1", plan)["flow"]
    assert on["compile_cache_dir"] == str(tmp_path / "inductor_cache")
    assert _payload({"compile": True}, settings, tmp_path / "t2", plan)["flow"] == on  # every trial the same
    assert "compile_cache_dir" not in _payload({}, settings, tmp_path / "t3", plan)["flow"]
    own = _payload({"compile": True, "compile_cache_dir": "/x"}, settings, tmp_path / "t4", plan)["flow"]
    assert own["compile_cache_dir"] == "/x"


def test_malloc_tuning_can_be_turned_off_by_environment(monkeypatch):
    from tickettune.trainables.training import allocator

    allocator.tune_malloc.cache_clear()
    monkeypatch.setenv(allocator.OFF_ENV, "1")
    try:
        assert allocator.tune_malloc() is False
    finally:
        allocator.tune_malloc.cache_clear()
