"""Mask rules: |c|, ratios, scopes, ties, minimums, multiple-of-8 rounding, validation."""

import pytest
import torch

from tickettune.trainables.earlybert.masks import MaskConfig, draw_masks, kept_counts, masks_from_model, select


def t(*values):
    return torch.tensor(values, dtype=torch.float32)


def kept(mask):
    return mask.nonzero().flatten().tolist()


def test_magnitude_not_sign():
    # the reference code's signed quantile would prune -0.9 first; by |c| it is the most important
    [m] = select([t(-0.9, 0.1, 0.5, -0.05)], ratio=0.5, scope="layer", minimum=1)
    assert kept(m) == [0, 2]


def test_all_equal_keeps_exactly_the_ratio_lower_indices_first():
    # all coefficients at their initial 1.0: the reference pruned everything; here 4 of 12 go, the last ones
    heads, ffn = draw_masks([torch.ones(12)] * 3, [torch.ones(20)] * 3, MaskConfig())
    assert kept_counts(heads) == [8, 8, 8]
    assert all(kept(m) == list(range(8)) for m in heads)
    # global FFN over all-equal coefficients: floor(0.4 * 60) = 24 pruned, round-robin from the layers' ends
    assert kept_counts(ffn) == [12, 12, 12]
    assert all(kept(m) == list(range(12)) for m in ffn)


def test_ties_lower_index_kept():
    [m] = select([t(1.0, 0.5, 0.5, 0.5, 0.5)], ratio=0.4, scope="layer", minimum=1)
    assert kept(m) == [0, 1, 2]
    # equal magnitude, opposite signs: a tie, the lower index wins
    [m] = select([t(-0.5, 0.5, 0.5, -0.5)], ratio=0.5, scope="layer", minimum=1)
    assert kept(m) == [0, 1]


def test_global_ties_lower_layer_kept():
    a, b = select([t(1.0, 0.3), t(0.3, 1.0)], ratio=0.25, scope="global", minimum=1)
    # one entry goes; both 0.3s are tied: index 1 of layer 0 vs index 0 of layer 1 -> the higher index goes
    assert (kept(a), kept(b)) == ([0], [0, 1])
    a, b = select([t(0.3, 1.0), t(0.3, 1.0)], ratio=0.25, scope="global", minimum=1)
    assert (kept(a), kept(b)) == ([0, 1], [1])  # same index: the higher layer goes


def test_deterministic():
    g = torch.Generator().manual_seed(0)
    coefs = [torch.randn(50, generator=g).round(decimals=1) for _ in range(4)]  # many ties
    first = select(coefs, 0.4, "global", 3)
    for _ in range(3):
        assert all(torch.equal(x, y) for x, y in zip(first, select([c.clone() for c in coefs], 0.4, "global", 3)))


def test_global_vs_layer_scope():
    big, small = torch.linspace(1.0, 2.0, 10), torch.linspace(0.01, 0.1, 10)
    per_layer = select([big, small], ratio=0.4, scope="layer", minimum=1)
    assert kept_counts(per_layer) == [6, 6]
    glob = select([big, small], ratio=0.4, scope="global", minimum=1)
    assert kept_counts(glob) == [10, 2]  # all 8 pruned from the small layer
    assert kept(glob[1]) == [8, 9]  # its largest survive


def test_per_layer_ratio_counts():
    [m] = select([torch.rand(1536)], ratio=0.4, scope="layer", minimum=8)
    assert int(m.sum()) == 1536 - 614  # floor(0.4 * 1536) pruned
    heads, _ = draw_masks([torch.rand(12)] * 6, [torch.rand(1536)] * 6, MaskConfig(head_ratio=1 / 3))
    assert kept_counts(heads) == [8] * 6


def test_keeps_top_magnitudes_per_layer():
    g = torch.Generator().manual_seed(1)
    c = torch.randn(100, generator=g)
    [m] = select([c], ratio=0.3, scope="layer", minimum=1)
    assert c.abs()[m].min() > c.abs()[~m].max()


def test_global_minimum_enforced_and_wins():
    big, tiny = torch.linspace(1.0, 2.0, 20), torch.full((20,), 1e-3)
    a, b = select([big, tiny], ratio=0.6, scope="global", minimum=5)
    # 24 to prune: the tiny layer may lose only 15, the other 9 come from the big layer's smallest
    assert kept_counts([a, b]) == [11, 5]
    assert kept(a) == list(range(9, 20))
    # a ratio the minimums cannot meet: the minimum wins, fewer are pruned
    a, b = select([torch.rand(4), torch.rand(4)], ratio=0.9, scope="global", minimum=3)
    assert kept_counts([a, b]) == [3, 3]


def test_never_prunes_a_whole_layer():
    heads, ffn = draw_masks(
        [torch.zeros(2), torch.ones(2)],
        [torch.zeros(16), torch.ones(16)],
        MaskConfig(head_ratio=0.99, ffn_ratio=0.99, head_scope="global", min_heads=1, min_ffn=1),
    )
    assert all(m.any() for m in heads + ffn)


def test_minimum_wins_per_layer_and_is_capped_at_width():
    [m] = select([torch.rand(3)], ratio=0.9, scope="layer", minimum=2)
    assert int(m.sum()) == 2
    [m] = select([torch.rand(4)], ratio=0.5, scope="layer", minimum=8)  # min above the width: keep all
    assert int(m.sum()) == 4


def test_zero_ratio_keeps_everything():
    heads, ffn = draw_masks(
        [torch.randn(4)] * 2, [torch.randn(12)] * 2, MaskConfig(head_ratio=0.0, ffn_ratio=0.0, ffn_multiple=8)
    )
    assert all(m.all() for m in heads + ffn)


@pytest.mark.parametrize(
    "width,ratio,minimum,expected",
    [
        (64, 27 / 64, 8, 40),  # keeps 37 -> nearest multiple 40
        (64, 28 / 64, 8, 40),  # keeps 36: 32 and 40 equally near -> the larger
        (64, 29 / 64, 8, 32),  # keeps 35 -> 32
        (64, 0.9, 8, 8),  # keeps the minimum 8
        (64, 0.5, 9, 32),  # keeps 32, already a multiple
        (64, 0.85, 9, 16),  # keeps max(10, 9) = 10: nearest 8 is below the minimum -> 16
        (60, 0.02, 8, 56),  # keeps 59: 64 is above the width -> 56
        (12, 0.25, 10, 10),  # keeps max(9, 10) = 10; no multiple of 8 in [10, 12] -> unrounded
        (5, 0.4, 1, 3),  # width below 8: no multiple fits, unrounded
    ],
)
def test_ffn_multiple_rounding(width, ratio, minimum, expected):
    [m] = select([torch.rand(width)], ratio=ratio, scope="layer", minimum=minimum, multiple=8)
    assert int(m.sum()) == expected


def test_ffn_multiple_global_widths_are_multiples():
    g = torch.Generator().manual_seed(2)
    coefs = [torch.rand(1536, generator=g) * (i + 1) for i in range(6)]
    _, ffn = draw_masks([torch.ones(12)] * 6, coefs, MaskConfig(ffn_multiple=8))
    counts = kept_counts(ffn)
    assert all(c % 8 == 0 for c in counts)
    assert abs(sum(counts) - (9216 - int(0.4 * 9216))) <= 4 * 6  # within half a multiple per layer
    assert counts == sorted(counts)  # larger coefficients in later layers: wider layers


@pytest.mark.parametrize(
    "field,value",
    [
        ("head_ratio", -0.1),
        ("head_ratio", 1.0),
        ("ffn_ratio", 1.5),
        ("ffn_ratio", float("nan")),
        ("head_ratio", True),
        ("ffn_ratio", "0.4"),
    ],
)
def test_bad_ratio_rejected_with_its_value(field, value):
    with pytest.raises(ValueError, match=field) as err:
        MaskConfig(**{field: value})
    assert repr(value) in str(err.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"head_scope": "model"},
        {"ffn_scope": None},
        {"min_heads": 0},
        {"min_ffn": 2.5},
        {"ffn_multiple": 0},
        {"ffn_multiple": True},
    ],
)
def test_bad_config_rejected(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        MaskConfig(**kwargs)


def test_select_validation():
    with pytest.raises(ValueError, match="1.0"):
        select([torch.ones(4)], ratio=1.0, scope="layer", minimum=1)
    with pytest.raises(ValueError, match="NaN"):
        select([t(1.0, float("nan"))], ratio=0.5, scope="layer", minimum=1)
    with pytest.raises(ValueError, match="layers"):
        draw_masks([torch.ones(4)], [torch.ones(4), torch.ones(4)])


def test_masks_from_model():
    from tickettune.trainables.earlybert.slimming import attach
    from tickettune.trainables.model.build import ScratchConfig, scratch_model

    model, _ = scratch_model(ScratchConfig(layers=2, heads=4, hidden=32, ffn=40), head="classification")
    with pytest.raises(ValueError, match="attach"):
        masks_from_model(model)
    attach(model)
    heads, ffn = masks_from_model(model, MaskConfig(head_ratio=0.5, ffn_ratio=0.4))
    assert kept_counts(heads) == [2, 2] and kept_counts(ffn) == [24, 24]
    assert all(m.dtype == torch.bool and m.device.type == "cpu" for m in heads + ffn)
