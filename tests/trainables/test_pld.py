"""Progressive Layer Dropping: schedule, gates, unbiased scaling, skipped compute, eval, EarlyBERT coefficients."""

import math
import warnings

import pytest
import torch
from torch import nn

from tickettune.trainables.model.build import ScratchConfig, scratch_model
from tickettune.trainables.model.encoder import encoder_of
from tickettune.trainables.pld import (
    PLDCallback,
    PLDConfig,
    ProgressiveLayerDrop,
    attach,
    detach,
    dropper_of,
    expected_layer_fraction,
    gamma_for_steps,
    keep_probs,
    theta,
)

SETTLED = 20_000  # γ = 0.001: θ is within 1e-8 of θ̄


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(layers=4, dropout=0.0, pre_ln=True):
    torch.manual_seed(0)
    model, _ = scratch_model(
        ScratchConfig(layers=layers, heads=2, hidden=32, ffn=64, dropout=dropout, pre_ln=pre_ln, max_positions=64)
    )
    return model


def mlm_batch(seed=0, batch=2, seq=16):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 5000, (batch, seq), generator=g)
    labels = torch.full_like(ids, -100)
    picked = torch.rand(batch, seq, generator=g) < 0.3
    picked[:, 1] = True
    labels[picked] = ids[picked]
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


def step_with(pld, num_layers, want_dropped=1, start=SETTLED):
    """A step whose first micro-batch drops at least `want_dropped` layers and keeps at least one."""
    for step in range(start, start + 1000):
        kept = [k for k, _ in pld.gates(step, 0, num_layers)]
        if sum(not k for k in kept) >= want_dropped and any(kept):
            return step, kept
    raise AssertionError("no such step")


# ---------------------------------------------------------------- schedule


def test_theta_at_known_steps():
    cfg = PLDConfig(theta_bar=0.5, gamma=0.001)
    assert theta(0, cfg) == 1.0
    assert round(theta(1000, cfg), 3) == 0.684
    assert round(theta(2000, cfg), 3) == 0.568
    assert round(theta(5000, cfg), 3) == 0.503
    assert theta(10**9, cfg) == pytest.approx(0.5)
    assert theta(1000, PLDConfig(theta_bar=1.0)) == 1.0  # θ̄ = 1: PLD off


def test_keep_probabilities_by_depth():
    cfg = PLDConfig()
    assert keep_probs(12, 0, cfg) == [1.0] * 12
    p = keep_probs(12, SETTLED, cfg)
    assert p == pytest.approx([1 - l / 24 for l in range(1, 13)])
    assert p[0] == pytest.approx(23 / 24) and p[-1] == pytest.approx(0.5)  # first layer droppable, last at θ
    assert all(a > b for a, b in zip(p, p[1:]))
    t = 1000
    assert keep_probs(4, t, cfg)[-1] == pytest.approx(theta(t, cfg))
    assert expected_layer_fraction(12, SETTLED, cfg) == pytest.approx(1 - 13 / 48)  # 0.729
    assert expected_layer_fraction(12, SETTLED, cfg) == pytest.approx(0.729, abs=5e-4)
    assert expected_layer_fraction(12, 0, cfg) == 1.0
    assert ProgressiveLayerDrop(cfg, step=SETTLED).expected_fraction(12) == pytest.approx(0.7292, abs=1e-4)


def test_gamma_heuristic():
    assert gamma_for_steps(100_000) == pytest.approx(0.001)
    assert gamma_for_steps(2_000) == pytest.approx(0.05)
    cfg = PLDConfig(gamma=gamma_for_steps(2_000))
    assert theta(100, cfg) > theta(2_000, cfg) == pytest.approx(0.5, abs=1e-6)
    with pytest.raises(ValueError, match="0"):
        gamma_for_steps(0)


@pytest.mark.parametrize(
    "kwargs, shown",
    [
        ({"theta_bar": 0.0}, "0.0"),
        ({"theta_bar": -0.2}, "-0.2"),
        ({"theta_bar": 1.5}, "1.5"),
        ({"theta_bar": float("nan")}, "nan"),
        ({"gamma": -0.001}, "-0.001"),
        ({"gamma": float("inf")}, "inf"),
        ({"gamma": float("nan")}, "nan"),
        ({"seed": 1.5}, "1.5"),
    ],
)
def test_bad_configs_rejected(kwargs, shown):
    with pytest.raises(ValueError, match=f"{next(iter(kwargs))}.*{shown}"):
        PLDConfig(**kwargs)


def test_negative_step_rejected():
    with pytest.raises(ValueError, match="-1"):
        ProgressiveLayerDrop().set_step(-1)


# ---------------------------------------------------------------- gates


def test_same_gates_for_same_seed_step_micro_whatever_the_global_rng():
    a, b = ProgressiveLayerDrop(PLDConfig(seed=3)), ProgressiveLayerDrop(PLDConfig(seed=3))
    for step in (SETTLED, SETTLED + 7):
        torch.manual_seed(1)
        a.set_step(step)
        ga = [a.sample(12) for _ in range(3)]
        torch.manual_seed(2)
        torch.rand(100)
        b.set_step(step)
        gb = [b.sample(12) for _ in range(3)]
        assert ga == gb
        assert ga[0] != ga[1] or ga[1] != ga[2]  # micro-batches of one step differ
        assert ga == [a.gates(step, m, 12) for m in range(3)]  # the pure form agrees


def test_gates_differ_across_steps_and_seeds():
    pld = ProgressiveLayerDrop(PLDConfig(seed=0))
    by_step = {tuple(k for k, _ in pld.gates(s, 0, 12)) for s in range(SETTLED, SETTLED + 20)}
    assert len(by_step) > 10
    other = ProgressiveLayerDrop(PLDConfig(seed=1))
    assert any(pld.gates(s, 0, 12) != other.gates(s, 0, 12) for s in range(SETTLED, SETTLED + 5))


def test_set_step_resets_micro_batch_counter():
    pld = ProgressiveLayerDrop(step=SETTLED)
    assert pld.last_kept() is None and pld.step_kept() == []
    first = pld.sample(6)
    second = pld.sample(6)
    assert pld.micro_batch == 2
    assert pld.last_kept() == [k for k, _ in second]
    assert pld.step_kept() == [[k for k, _ in g] for g in (first, second)]
    pld.set_step(SETTLED)
    assert pld.micro_batch == 0 and pld.step_kept() == []
    assert pld.sample(6) == first and pld.last_gates == first


def test_step_zero_keeps_everything_and_keep_frequency_matches_p():
    pld = ProgressiveLayerDrop()
    assert all(k and p == 1.0 for k, p in pld.sample(12))
    n, L = 3000, 6
    counts = [0] * L
    for i in range(n):
        for l, (k, _) in enumerate(pld.gates(SETTLED + i, 0, L)):
            counts[l] += k
    for l, p in enumerate(keep_probs(L, SETTLED, pld.cfg)):
        assert abs(counts[l] / n - p) < 4 * math.sqrt(p * (1 - p) / n)


# ---------------------------------------------------------------- the encoder with PLD


def _contribution_stats(enc, layer_idx, x, pld, draws):
    """Mean over `draws` training passes of the encoder's output minus its input, the number of
    passes in which layer `layer_idx` ran, and its keep probability."""
    total, kept = torch.zeros_like(x), 0
    p = keep_probs(len(enc.layer), pld.step, pld.cfg)[layer_idx]
    for i in range(draws):
        pld.set_step(SETTLED + i)
        with torch.no_grad():
            total += enc(x).last_hidden_state - x
        keep, q = pld.last_gates[layer_idx]
        assert q == pytest.approx(p)
        kept += keep
    return total / draws, kept, p


@pytest.mark.parametrize("branch", ["attention", "ffn", "both"])
@pytest.mark.parametrize("layer_idx", [0, 2])
def test_expected_output_of_a_droppable_layer_is_the_full_layer(branch, layer_idx):
    model = tiny(layers=3)
    enc = encoder_of(model)
    enc.final_layer_norm = None  # look at the residual stream itself (LN is not linear)
    with torch.no_grad():
        for i, layer in enumerate(enc.layer):
            if i != layer_idx or branch == "ffn":
                layer.attention.output.dense.weight.zero_(), layer.attention.output.dense.bias.zero_()
            if i != layer_idx or branch == "attention":
                layer.output.dense.weight.zero_(), layer.output.dense.bias.zero_()
            if i == layer_idx:  # make the branch large enough to see
                for lin in (layer.attention.output.dense, layer.output.dense):
                    if lin.weight.abs().sum() > 0:
                        lin.weight.mul_(20)
    x = torch.randn(2, 8, 32, generator=torch.Generator().manual_seed(1))
    model.train()  # dropout is 0: the gates are the only randomness
    with torch.no_grad():
        full = enc(x).last_hidden_state - x  # no layer_drop yet: full depth, unscaled
    assert full.abs().max() > 0.05
    pld = attach(model, PLDConfig(seed=5), step=SETTLED)
    draws = 600
    mean, kept, p = _contribution_stats(enc, layer_idx, x, pld, draws)
    assert 0 < kept < draws and p < 1
    noise = 4 * math.sqrt((1 - p) / (p * draws))  # Monte Carlo: kept/draws ≈ p
    if branch == "both":
        # mean = (kept/draws)·(scaled block − x) exactly, so E = p·(scaled block − x). That is the full
        # block only to first order (the FFN reads x + Attn/p, as in the paper and DeepSpeed): 7% off at
        # p = 0.5 with these (inflated) weights, 2% at p = 0.83.
        with torch.no_grad():
            scaled = enc.layer[layer_idx](x, None, scale=1.0 / p) - x
        torch.testing.assert_close(mean, scaled * kept / draws, atol=1e-5, rtol=1e-4)
        assert (p * scaled - full).norm() / full.norm() < 0.1
        assert (mean - full).norm() / full.norm() < noise + 0.1
    else:  # one residual branch: exactly full·(kept/draws)/p, whose expectation is the full branch
        torch.testing.assert_close(mean, full * (kept / draws) / p, atol=1e-5, rtol=1e-4)
        assert (mean - full).norm() / full.norm() < noise


def test_dropped_layers_do_no_compute_and_get_no_grad():
    L = 6
    model = tiny(layers=L)
    enc = encoder_of(model)
    calls = [0] * L
    for i, layer in enumerate(enc.layer):
        layer.register_forward_hook(lambda m, a, out, i=i: calls.__setitem__(i, calls[i] + 1))
    pld = attach(model, PLDConfig(seed=0))
    step, kept = step_with(pld, L, want_dropped=2)
    pld.set_step(step)
    model.train()
    model(**mlm_batch()).loss.backward()
    assert [k for k, _ in pld.last_gates] == kept
    assert calls == [int(k) for k in kept]
    for layer, k in zip(enc.layer, kept):
        grads = [p.grad for p in layer.parameters()]
        if k:
            assert all(g is not None for g in grads)
        else:
            assert all(g is None for g in grads)
    assert pld.realized_fraction() == sum(kept) / L


def test_eval_is_deterministic_full_depth_and_does_not_touch_pld():
    L = 4
    model = tiny(layers=L, dropout=0.1)
    enc = encoder_of(model)
    calls = [0] * L
    for i, layer in enumerate(enc.layer):
        layer.register_forward_hook(lambda m, a, out, i=i: calls.__setitem__(i, calls[i] + 1))
    batch = {k: v for k, v in mlm_batch().items() if k != "labels"}
    model.eval()
    with torch.no_grad():
        ref = model(**batch).logits
    pld = attach(model, PLDConfig(), step=SETTLED)
    with torch.no_grad():
        a, b = model(**batch).logits, model(**batch).logits
    assert torch.equal(a, b) and torch.equal(a, ref)
    assert calls == [3] * L
    assert pld.micro_batch == 0 and pld.last_gates is None
    assert dropper_of(model) is pld
    assert detach(model) is pld and enc.layer_drop is None and dropper_of(model) is None


def test_training_forward_depends_on_gates():
    model = tiny(layers=4)
    pld = attach(model, PLDConfig(), step=SETTLED)
    step, kept = step_with(pld, 4)
    model.train()
    batch = mlm_batch()
    pld.set_step(step)
    with torch.no_grad():
        a = model(**batch).loss
        pld.set_step(step)
        b = model(**batch).loss  # same gates again: same output (dropout is 0)
        detach(model)
        full = model(**batch).loss
    assert torch.equal(a, b) and not torch.equal(a, full)


def test_attach_warns_on_post_ln_only():
    with pytest.warns(UserWarning, match="post-LN"):
        attach(tiny(layers=2, pre_ln=False))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pld = attach(tiny(layers=2), PLDConfig(theta_bar=0.7, gamma=0.01, seed=2), step=5)
    assert pld.cfg.theta_bar == 0.7 and pld.step == 5


def test_callback_drives_the_schedule():
    pld = ProgressiveLayerDrop(step=0)
    cb = PLDCallback(pld, offset=100)
    pld.sample(4)
    pld.sample(4)
    cb.before_step(7)
    assert pld.step == 107 and pld.micro_batch == 0
    logs = {}
    assert cb.after_step(8, logs) is False
    assert logs["pld_theta"] == pytest.approx(theta(107, pld.cfg))
    assert logs["pld_layer_fraction"] == pytest.approx(expected_layer_fraction(4, 107, pld.cfg))


def test_callback_inside_train_loop_with_accumulation():
    from tickettune.trainables.training.loop import TrainConfig, train

    L = 4
    model = tiny(layers=L)
    pld = attach(model, PLDConfig(seed=0))
    seen = []
    sample = pld.sample
    pld.sample = lambda n: seen.append((pld.step, pld.micro_batch)) or sample(n)
    loader = [mlm_batch(seed=i) for i in range(4)]
    result = train(
        model,
        loader,
        TrainConfig(lr=1e-3, max_steps=3, grad_accum=2, progress=False),
        callbacks=[PLDCallback(pld, offset=SETTLED)],
    )
    assert result.steps == 3
    assert seen == [(SETTLED + s, m) for s in range(3) for m in range(2)]
    assert pld.realized_fraction() < 1.0


# ---------------------------------------------------------------- EarlyBERT coefficients


def _with_coefficients(model):
    for layer in encoder_of(model).layer:
        layer.head_coef = nn.Parameter(torch.ones(layer.num_heads))
        layer.ffn_coef = nn.Parameter(torch.ones(layer.ffn_width))
    return model


def test_skipped_layer_coefficients_get_no_gradient_and_do_not_move():
    L = 4
    model = _with_coefficients(tiny(layers=L))
    enc = encoder_of(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    pld = attach(model, PLDConfig(seed=0))
    step, kept = step_with(pld, L)
    pld.set_step(step)
    model.train()
    model(**mlm_batch()).loss.backward()
    before = [(l.head_coef.detach().clone(), l.ffn_coef.detach().clone()) for l in enc.layer]
    for layer, k in zip(enc.layer, kept):
        for c in (layer.head_coef, layer.ffn_coef):
            assert (c.grad is not None and c.grad.abs().sum() > 0) if k else c.grad is None
    opt.step()
    for layer, k, (h0, f0) in zip(enc.layer, kept, before):
        assert torch.equal(layer.head_coef, h0) != k and torch.equal(layer.ffn_coef, f0) != k


def test_l1_over_all_coefficients_still_reaches_skipped_layers():
    """The caveat in pld.py's docstring: a penalty summed over every layer does touch skipped ones."""
    L = 4
    model = _with_coefficients(tiny(layers=L))
    enc = encoder_of(model)
    pld = attach(model, PLDConfig(seed=0))
    step, kept = step_with(pld, L)
    pld.set_step(step)
    model.train()
    l1 = sum(l.head_coef.abs().sum() + l.ffn_coef.abs().sum() for l in enc.layer)
    (model(**mlm_batch()).loss + 1e-4 * l1).backward()
    for layer, k in zip(enc.layer, kept):
        if not k:
            torch.testing.assert_close(layer.head_coef.grad, torch.full_like(layer.head_coef, 1e-4))
