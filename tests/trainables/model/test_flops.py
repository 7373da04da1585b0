"""`trainables.model.flops` against counts done by hand (relative_cost divides by these numbers).

The shape is small enough to count every multiply-add on paper: hidden 4, head_dim 2, two layers with
2 and 1 heads and FFN widths 8 and 3, sequence length 5, 3 labels. A matmul (m x k) @ (k x n) is m*k*n
multiply-adds = 2*m*k*n FLOPs; a training step is forward + backward = 3 forwards.
"""

import copy

import pytest
import torch

from tickettune.trainables.model.flops import Shape, shape_of, train_flops_per_sequence

SEQ = 5
SHAPE = Shape(hidden=4, head_dim=2, heads_per_layer=(2, 1), ffn_per_layer=(8, 3), num_labels=3, vocab=10)

# Layer 0 (2 heads -> attention width 4, FFN 8), multiply-adds:
#   Q, K, V: 3 x (5x4 @ 4x4) = 3 x 80 = 240;  scores Q K^T: 2 heads x (5x2 @ 2x5) = 100;
#   context P V: 2 heads x (5x5 @ 5x2) = 100;  output projection 5x4 @ 4x4 = 80;
#   FFN in 5x4 @ 4x8 = 160, FFN out 5x8 @ 8x4 = 160.            Sum 840 MACs = 1680 FLOPs.
LAYER0 = 2 * (240 + 100 + 100 + 80 + 160 + 160)
# Layer 1 (1 head -> width 2, FFN 3):
#   Q, K, V: 3 x (5x4 @ 4x2) = 120;  scores 5x2 @ 2x5 = 50;  context 5x5 @ 5x2 = 50;
#   output 5x2 @ 2x4 = 40;  FFN in 5x4 @ 4x3 = 60, FFN out 5x3 @ 3x4 = 60.  Sum 380 MACs = 760 FLOPs.
LAYER1 = 2 * (120 + 50 + 50 + 40 + 60 + 60)
# Classification head on [CLS]: pooler 1x4 @ 4x4 = 16, classifier 1x4 @ 4x3 = 12: 28 MACs.
CLS_HEAD = 2 * (16 + 12)


def test_hand_count_of_a_two_layer_ticket():
    assert (LAYER0, LAYER1, CLS_HEAD) == (1680, 760, 56)
    assert train_flops_per_sequence(SHAPE, SEQ) == 3 * (LAYER0 + LAYER1 + CLS_HEAD) == 7488


@pytest.mark.parametrize(
    "kept,layers",
    [([True, True], LAYER0 + LAYER1), ([True, False], LAYER0), ([False, True], LAYER1), ([False, False], 0)],
)
def test_layers_pld_skipped_cost_nothing_the_head_always_runs(kept, layers):
    assert train_flops_per_sequence(SHAPE, SEQ, kept_layers=kept) == 3 * (layers + CLS_HEAD)


def test_gated_ffn_input_projection_is_twice_as_wide():
    gated = Shape(**{**SHAPE.__dict__, "gated_ffn": True})
    # value and gate projections 2 x (5x4 @ 4xF), then the output projection: one extra 5x4 @ 4xF per layer
    extra = 2 * (5 * 4 * 8 + 5 * 4 * 3)
    assert train_flops_per_sequence(gated, SEQ) == 3 * (LAYER0 + LAYER1 + extra + CLS_HEAD)


def test_mlm_head_counts_only_the_predicted_positions():
    mlm = Shape(**{**SHAPE.__dict__, "mlm": True})
    # 20% of 5 positions = 1 predicted: transform 1x4 @ 4x4 = 16, decoder 1x4 @ 4x10 = 40 -> 56 MACs
    assert train_flops_per_sequence(mlm, SEQ, mlm_fraction=0.2) == pytest.approx(3 * (LAYER0 + LAYER1 + 2 * 56))
    # the default 15%: 0.75 of a position, the count scales linearly
    assert train_flops_per_sequence(mlm, SEQ) == pytest.approx(3 * (LAYER0 + LAYER1 + 0.75 * 2 * 56))


def test_attention_scores_grow_with_the_square_of_the_length():
    one_layer = Shape(hidden=4, head_dim=2, heads_per_layer=(2,), ffn_per_layer=(8,), num_labels=3)
    fwd = {s: train_flops_per_sequence(one_layer, s) / 3 - CLS_HEAD for s in (5, 10)}
    linear_part = 2 * (240 + 80 + 160 + 160)  # projections and FFN at length 5: double at length 10
    quadratic_part = 2 * (100 + 100)  # scores and context at length 5: x4 at length 10
    assert fwd[5] == linear_part + quadratic_part
    assert fwd[10] == 2 * linear_part + 4 * quadratic_part


def test_shape_of_reads_a_pruned_model_layer_by_layer():
    """The per-layer widths come from the model as pruned, so a ticket costs what its layers hold."""
    from tickettune.trainables.model.build import ScratchConfig, scratch_model
    from tickettune.trainables.model.encoder import encoder_of
    from tickettune.trainables.model.prune import prune_model

    dense, _ = scratch_model(
        ScratchConfig(layers=2, heads=2, hidden=4, ffn=8, dropout=0.0), head="classification", num_labels=3
    )
    shape = shape_of(dense)
    assert (shape.hidden, shape.head_dim, shape.heads_per_layer, shape.ffn_per_layer, shape.num_labels) == (
        4,
        2,
        (2, 2),
        (8, 8),
        3,
    )
    assert not shape.mlm and not shape.gated_ffn
    layers = encoder_of(dense).layer
    heads = [torch.tensor([True, True]), torch.tensor([False, True])]
    ffn = [torch.ones(8, dtype=torch.bool), torch.arange(8) < 3]
    assert len(layers) == 2
    pruned = prune_model(copy.deepcopy(dense), heads, ffn)
    assert shape_of(pruned) == SHAPE.__class__(**{**shape.__dict__, "heads_per_layer": (2, 1), "ffn_per_layer": (8, 3)})
    assert train_flops_per_sequence(shape_of(pruned), SEQ) == 3 * (LAYER0 + LAYER1 + CLS_HEAD)
