"""The Pareto front on plain values (searcher/front.py): the one extraction export, report and the
search-against-search benchmark share."""

import math

import pytest

from tickettune.searcher.front import dominates, non_dominated


def test_max_min_front_sorted_best_first():
    # (accuracy max, time min)
    pts = [(0.90, 1.0), (0.88, 0.6), (0.85, 0.7), (0.80, 0.4), (0.80, 0.5), (0.91, 1.2)]
    assert non_dominated(pts, ["max", "min"]) == [5, 0, 1, 3]  # 2 beaten by 1, 4 by 3


def test_directions_matter():
    pts = [(1.0, 1.0), (2.0, 2.0)]
    assert non_dominated(pts, ["max", "max"]) == [1]
    assert non_dominated(pts, ["min", "min"]) == [0]
    assert sorted(non_dominated(pts, ["max", "min"])) == [0, 1]


def test_nan_never_on_front_and_ties_kept():
    pts = [(math.nan, 0.1), (0.7, 0.5), (0.7, 0.5), (0.6, math.nan)]
    assert non_dominated(pts, ["max", "min"]) == [1, 2]
    assert non_dominated([], ["max", "min"]) == []


def test_three_objectives_and_bad_mode():
    pts = [(1, 1, 1), (0, 0, 2), (2, 2, 0), (2, 2, 2)]
    assert non_dominated(pts, ["min", "min", "min"]) == [1, 0, 2]
    assert dominates([0, 0], [1, 0]) and not dominates([1, 1], [1, 1])
    with pytest.raises(ValueError, match="'up'"):
        non_dominated(pts, ["min", "up", "min"])
