"""Hamming distance, the early-bird detector, and its training-loop callback."""

import pytest
import torch

from tickettune.trainables.earlybert.earlybird import EarlyBirdCallback, EarlyBirdDetector, hamming
from tickettune.trainables.earlybert.masks import MaskConfig, draw_masks
from tickettune.trainables.earlybert.slimming import SlimmingCallback, attach
from tickettune.trainables.model.build import ScratchConfig, scratch_model
from tickettune.trainables.model.encoder import encoder_of
from tickettune.trainables.training.loop import TrainConfig, train


def b(*bits):
    return torch.tensor(bits, dtype=torch.bool)


# ---------------------------------------------------------------- Hamming


def test_hamming_values():
    a = b(1, 1, 0, 0)
    assert hamming(a, a) == 0.0
    assert hamming(a, ~a) == 1.0
    assert hamming(a, b(1, 0, 0, 0)) == pytest.approx(0.25)


def test_hamming_concatenates_layers():
    x = [b(1, 0), b(1, 1, 0)]
    y = [b(1, 1), b(1, 1, 1)]
    assert hamming(x, y) == pytest.approx(2 / 5)


def test_hamming_rejects_mismatched_masks():
    with pytest.raises(ValueError):
        hamming(b(1, 0), b(1, 0, 1))
    with pytest.raises(ValueError, match="layout"):
        hamming([b(1, 0), b(1)], [b(1), b(0, 1)])
    with pytest.raises(ValueError, match="empty"):
        hamming([], [])


# ---------------------------------------------------------------- detector


@pytest.mark.parametrize("kwargs", [{"window": 1}, {"window": 0}, {"window": 2.5}, {"eps": -0.01}, {"eps": 1.5}])
def test_detector_validation(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        EarlyBirdDetector(**kwargs)


def test_detector_needs_a_full_fifo():
    det = EarlyBirdDetector(window=3, eps=0.0)
    m = ([b(1, 0)], [b(1, 1, 0, 0)])
    d1 = det.update(*m, step=10)
    assert d1.distances == [] and d1.distance is None and not d1.full and not d1.found
    d2 = det.update(*m, step=20)
    assert d2.distances == [0.0] and not d2.full and not d2.found
    d3 = det.update(*m, step=30)
    assert d3.distances == [0.0, 0.0] and d3.full and d3.found
    assert det.found_at_step == 30


def test_detector_eps_is_inclusive_and_checks_every_older_mask():
    heads = [b(1, 1)]
    base = b(1, 1, 1, 1, 1, 0, 0, 0)  # 2 + 8 = 10 entries in all
    one = b(1, 1, 1, 1, 0, 1, 0, 0)  # 2 flips from base
    det = EarlyBirdDetector(window=2, eps=0.1)
    det.update(heads, [base])
    d = det.update(heads, [one])
    assert d.distances == [pytest.approx(0.2)] and not d.found  # 0.2 > 0.1
    d = det.update(heads, [b(1, 1, 1, 1, 0, 1, 1, 0)])  # 1 flip from `one`: exactly eps
    assert d.distance == pytest.approx(0.1) and d.found
    det = EarlyBirdDetector(window=3, eps=0.1)
    for m in (base, one, b(1, 1, 1, 1, 0, 1, 1, 0)):  # newest is within eps of `one` but not of `base`
        d = det.update(heads, [m])
    assert d.distances == [pytest.approx(0.3), pytest.approx(0.1)] and not d.found


def test_detector_reports_heads_and_ffn_separately():
    det = EarlyBirdDetector(window=2, eps=0.5)
    det.update([b(1, 0, 1, 0)], [b(1) for _ in range(12)])
    d = det.update([b(0, 1, 0, 1)], [b(1) for _ in range(12)])
    assert d.head_distance == 1.0 and d.ffn_distance == 0.0
    assert d.distance == pytest.approx(4 / 16) and d.found  # combined over all 16 units decides


def test_found_at_step_is_the_first():
    det = EarlyBirdDetector(window=2, eps=0.0)
    same, other = ([b(1, 0)], [b(1, 0)]), ([b(0, 1)], [b(0, 1)])
    det.update(*same, step=1)
    det.update(*same, step=2)
    det.update(*other, step=3)
    assert det.found and det.found_at_step == 2


# ---------------------------------------------------------------- synthetic trajectories

LAYERS, HEADS, FFN = 3, 12, 64
CFG = MaskConfig(head_ratio=1 / 3, ffn_ratio=0.4, ffn_scope="global", min_ffn=8)


def _target(g):
    """A target coefficient vector per layer with a clear gap between the units to keep and to prune."""
    heads = []
    for _ in range(LAYERS):
        c = torch.empty(HEADS).uniform_(0.6, 1.0, generator=g)
        c[torch.randperm(HEADS, generator=g)[:4]] = torch.empty(4).uniform_(0.0, 0.2, generator=g)
        heads.append(c)
    flat = torch.empty(LAYERS * FFN).uniform_(0.6, 1.0, generator=g)
    n_pruned = int(0.4 * LAYERS * FFN)
    flat[torch.randperm(LAYERS * FFN, generator=g)[:n_pruned]] = torch.empty(n_pruned).uniform_(0.0, 0.2, generator=g)
    return heads, list(flat.split(FFN))


def _sign(c, g):
    return c * (torch.randint(0, 2, c.shape, generator=g) * 2 - 1)  # signs must not matter: masks use |c|


def trajectory(updates, converge_at, seed=0):
    """Random coefficients before update `converge_at`, then the target plus noise that shrinks but never
    crosses the 0.4 gap (|noise| < 0.15): from `converge_at` on every drawn mask is the target's."""
    g = torch.Generator().manual_seed(seed)
    heads_t, ffn_t = _target(g)
    for t in range(1, updates + 1):
        if converge_at is None or t < converge_at:
            yield (
                [torch.empty(HEADS).uniform_(-1, 1, generator=g) for _ in range(LAYERS)],
                [torch.empty(FFN).uniform_(-1, 1, generator=g) for _ in range(LAYERS)],
            )
        else:
            amp = 0.15 * 0.8 ** (t - converge_at)
            noise = lambda n: torch.empty(n).uniform_(-amp, amp, generator=g)  # noqa: E731
            yield ([_sign(c + noise(HEADS), g) for c in heads_t], [_sign(c + noise(FFN), g) for c in ffn_t])


@pytest.mark.parametrize("window,converge_at", [(5, 8), (3, 1), (2, 20)])
def test_converging_trajectory_found_at_expected_update(window, converge_at):
    det = EarlyBirdDetector(window=window, eps=0.1)
    found = []
    for t, (hc, fc) in enumerate(trajectory(40, converge_at), start=1):
        d = det.update(*draw_masks(hc, fc, CFG), step=t)
        found.append(d.found)
    expected = converge_at + window - 1  # the window-th mask drawn after convergence
    assert det.found_at_step == expected
    assert not any(found[: expected - 1]) and all(found[expected - 1 :])


def test_random_coefficients_never_found():
    det = EarlyBirdDetector(window=5, eps=0.1)
    for t, (hc, fc) in enumerate(trajectory(100, None, seed=3), start=1):
        d = det.update(*draw_masks(hc, fc, CFG), step=t)
        if d.full:
            assert d.distance > 0.3  # random masks at these ratios are ~0.48 apart
    assert not det.found and det.found_at_step is None


# ---------------------------------------------------------------- callback


def tiny():
    torch.manual_seed(0)
    model, _ = scratch_model(ScratchConfig(layers=LAYERS, heads=HEADS, hidden=48, ffn=FFN), head="classification")
    attach(model)
    return model


def set_coefficients(model, heads, ffn):
    with torch.no_grad():
        for layer, hc, fc in zip(encoder_of(model).layer, heads, ffn):
            layer.head_coef.copy_(hc)
            layer.ffn_coef.copy_(fc)


def drive(cb, model, converge_at, steps_per_mask, updates=30):
    """A fake loop: the coefficients follow `trajectory`, changing once per mask interval."""
    traj = trajectory(updates, converge_at)
    for step in range(1, updates * steps_per_mask + 1):
        if step % steps_per_mask == 0:
            set_coefficients(model, *next(traj))
        if cb.after_step(step, {}):
            return step
    return None


def test_callback_stops_at_the_early_bird_step():
    model = tiny()
    calls = []

    def agree(flag):
        calls.append(flag)
        return flag

    cb = EarlyBirdCallback(CFG, EarlyBirdDetector(window=5, eps=0.1), interval=10, agree=agree, model=model)
    stopped = drive(cb, model, converge_at=4, steps_per_mask=10)
    assert stopped == 80 == cb.found_at_step == cb.stopped_at_step  # 4th mask converged, 8th fills the FIFO
    assert calls == [False] * 7 + [True]  # once per mask step, on every rank
    assert [h["step"] for h in cb.history] == list(range(10, 81, 10))
    assert cb.history[0]["distance"] == 1.0 and cb.history[-1]["distance"] == 0.0
    assert cb.report()["found_at_step"] == 80
    heads, ffn = cb.masks
    assert [int(m.sum()) for m in heads] == [8, 8, 8] and sum(int(m.sum()) for m in ffn) == 192 - 76


def test_agree_overrides_the_local_decision():
    model = tiny()
    cb = EarlyBirdCallback(CFG, EarlyBirdDetector(window=2, eps=0.1), interval=5, agree=lambda f: False, model=model)
    assert drive(cb, model, converge_at=1, steps_per_mask=5, updates=6) is None  # rank 0 said no
    assert cb.detector.found
    cb = EarlyBirdCallback(CFG, EarlyBirdDetector(window=2, eps=0.1), interval=5, agree=lambda f: True, model=model)
    assert drive(cb, model, converge_at=None, steps_per_mask=5, updates=6) == 5  # rank 0 said stop


def test_stop_false_records_but_never_stops_or_agrees():
    model = tiny()

    def agree(flag):
        raise AssertionError("agree must not be called when stop=False")

    cb = EarlyBirdCallback(CFG, EarlyBirdDetector(window=2, eps=0.1), interval=3, agree=agree, stop=False, model=model)
    logs = {}
    assert drive(cb, model, converge_at=1, steps_per_mask=3, updates=5) is None
    assert cb.found_at_step == 6 and cb.stopped_at_step is None and len(cb.history) == 5
    cb.after_step(15, logs)
    assert logs["early_bird"] is True and logs["mask_distance"] == 0.0


def test_callback_validation_and_needs_a_model():
    with pytest.raises(ValueError, match="interval"):
        EarlyBirdCallback(interval=0)
    cb = EarlyBirdCallback(interval=2)
    assert cb.after_step(1, {}) is False  # not a mask step: nothing drawn
    with pytest.raises(RuntimeError, match="model"):
        cb.after_step(2, {})


def test_callback_in_the_training_loop():
    """train.train hands the model to extra_loss every step; the callback draws from it and stops the loop."""
    model = tiny()
    g = torch.Generator().manual_seed(0)
    batches = [
        {"input_ids": torch.randint(1000, 3000, (4, 12), generator=g), "labels": torch.tensor([0, 1, 0, 1])}
        for _ in range(3)
    ]
    bird = EarlyBirdCallback(CFG, EarlyBirdDetector(window=2, eps=1.0), interval=2)  # eps=1: found when full
    result = train(
        model, batches, TrainConfig(max_steps=20, progress=False, lr=1e-4), [SlimmingCallback(1e-4, 1e-4), bird]
    )
    assert result.steps == 4 and result.stopped_early
    assert bird.found_at_step == 4 and [h["step"] for h in bird.history] == [2, 4]
