"""F1 along the precision–recall curve: the one helper behind threshold tuning, early stopping and the report."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score

from lexcoder.thresholds import choose_thresholds, f1_curve, f1_optimal_threshold

# scores on a coarse grid, so that ties (several texts with one score) are common
codes_and_scores = st.integers(2, 60).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 1), min_size=n, max_size=n).filter(lambda y: 0 < sum(y)),
    st.lists(st.integers(0, 20).map(lambda k: k / 20), min_size=n, max_size=n)))


@pytest.mark.slow  # several seconds on 2 cores: CI runs it (make test); the quick suite (-m 'not slow') does not
@settings(max_examples=60, deadline=None)
@given(codes_and_scores)
def test_curve_is_f1_of_every_threshold_rule(data):
    y, p = map(np.asarray, data)
    thresholds, f1 = f1_curve(y, p)
    assert np.all(np.diff(thresholds) > 0) and set(thresholds) <= set(p)
    expected = [f1_score(y, (p >= t).astype(int), zero_division=0) for t in thresholds]
    np.testing.assert_allclose(f1, expected, rtol=0, atol=1e-12)
    # no rule p >= t with a score t left off the curve does better
    best = f1_optimal_threshold(y, p)
    assert f1_score(y, p >= best) == pytest.approx(max(f1_score(y, p >= t, zero_division=0) for t in set(p)))


def test_ties_go_to_the_higher_threshold_and_labels_without_ones_get_the_default():
    y = np.array([1, 0, 0, 1])
    p = np.array([0.9, 0.8, 0.7, 0.2])  # p >= 0.9 and p >= 0.2 both give F1 = 2/3, the best there is
    thresholds, f1 = f1_curve(y, p)
    assert f1.max() == pytest.approx(2 / 3) and thresholds[f1 == f1.max()].tolist() == [0.2, 0.9]
    assert f1_optimal_threshold(y, p) == 0.9
    Y, P = np.column_stack([y, np.zeros(4, int)]), np.column_stack([p, p])
    assert choose_thresholds(Y, P, fixed=0.4).tolist() == [0.9, 0.4]
