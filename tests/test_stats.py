"""Bootstrap intervals, agreement coefficients and calibration figures (lexcoder.stats)."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, f1_score, precision_score, recall_score

from lexcoder.stats import (agreement, bootstrap_counts, bootstrap_metrics, cohen_kappa, confusion_counts,
                            count_metrics, expected_calibration_error, gwet_ac1, krippendorff_alpha,
                            reliability_curve)

# a transparent "coder" for the real ToS sentences: a keyword rule per label
RULES = {"arbitration": "arbitrat", "jurisdiction": "court", "choice_of_law": "governed by",
         "limitation_of_liability": "liab"}


@pytest.fixture(scope="module")
def rule_coded(tos_full):
    """Human codes Y, keyword-rule codes and document ids of all 17,383 ToS sentences."""
    labels = list(RULES)
    Y = tos_full[labels].to_numpy()
    text = tos_full["text"].str.lower()
    pred = np.column_stack([text.str.contains(RULES[lab], regex=False).to_numpy() for lab in labels])
    return Y, pred.astype(int), tos_full["doc_id"].to_numpy()


def test_count_metrics_match_scikit_learn(rule_coded):
    Y, pred, _ = rule_coded
    figs = count_metrics(confusion_counts(Y, pred).sum(axis=0))
    for j in range(Y.shape[1]):
        assert figs["f1"][j] == pytest.approx(f1_score(Y[:, j], pred[:, j]))
        assert figs["precision"][j] == pytest.approx(precision_score(Y[:, j], pred[:, j]))
        assert figs["recall"][j] == pytest.approx(recall_score(Y[:, j], pred[:, j]))
        assert figs["cohen_kappa"][j] == pytest.approx(cohen_kappa_score(Y[:, j], pred[:, j]))


def _width(ci):
    return ci[1] - ci[0]


def test_intervals_contain_estimate_and_shrink_with_more_data(rule_coded):
    Y, pred, _ = rule_coded
    small = bootstrap_metrics(Y[:2000], pred[:2000], n_boot=500, seed=1)
    full = bootstrap_metrics(Y, pred, n_boot=500, seed=1)
    point = count_metrics(confusion_counts(Y, pred).sum(axis=0))
    for j in range(Y.shape[1]):
        for name in ("f1", "precision", "recall", "cohen_kappa"):
            low, high = full["labels"][j][name]
            assert low <= point[name][j] <= high
        assert _width(full["labels"][j]["f1"]) < _width(small["labels"][j]["f1"])
    macro_f1 = point["f1"].mean()
    assert full["macro"]["f1"][0] <= macro_f1 <= full["macro"]["f1"][1]
    assert _width(full["macro"]["f1"]) < _width(small["macro"]["f1"])


def test_bootstrap_is_seeded(rule_coded):
    Y, pred, groups = rule_coded
    a = bootstrap_metrics(Y, pred, groups=groups, n_boot=200, seed=3)
    b = bootstrap_metrics(Y, pred, groups=groups, n_boot=200, seed=3)
    c = bootstrap_metrics(Y, pred, groups=groups, n_boot=200, seed=4)
    assert a == b
    assert a["labels"] != c["labels"]


def test_group_bootstrap_resamples_whole_groups():
    # 30 groups of 7 rows that share one confusion cell: resampling whole groups keeps 210 rows per
    # resample, and every count is a multiple of 7 (row resampling would break both)
    rng = np.random.default_rng(0)
    unit = np.eye(4)[rng.integers(0, 4, size=30)][:, None, :] * 7
    counts = bootstrap_counts(unit, n_boot=300, seed=0)
    assert counts.shape == (300, 1, 4)
    assert np.all(counts % 7 == 0)
    assert np.all(counts.sum(axis=(1, 2)) == 210)
    assert len(np.unique(counts[:, 0, 0])) > 3  # the resamples differ


def test_group_bootstrap_is_wider_when_errors_cluster_in_documents(rule_coded):
    Y, pred, groups = rule_coded
    rows = bootstrap_metrics(Y, pred, n_boot=400, seed=0)
    docs = bootstrap_metrics(Y, pred, groups=groups, n_boot=400, seed=0)
    assert docs["info"] == {"resamples": 400, "seed": 0, "level": 0.95, "unit": "group", "n_units": 50}
    assert rows["info"]["unit"] == "row" and rows["info"]["n_units"] == len(Y)
    wider = [_width(d["f1"]) > _width(r["f1"]) for d, r in zip(docs["labels"], rows["labels"])]
    assert sum(wider) >= 3  # the keyword rule's errors come in whole Terms of Service


# hand-worked: a = 1111000000, b = 1110000001; agreement 0.8, both coders 40% ones
A = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
B = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 1])


def test_agreement_hand_checked():
    assert cohen_kappa(A, B) == pytest.approx((0.8 - 0.52) / 0.48)  # p_e = .4*.4 + .6*.6
    assert gwet_ac1(A, B) == pytest.approx((0.8 - 0.48) / 0.52)  # p_e = 2 * .4 * .6 / (2 - 1)
    # coincidences: n = 20 values, 4 disagreeing pairs, n_0 = 12, n_1 = 8: 1 - (n - 1) * 4 / (2 * 12 * 8)
    assert krippendorff_alpha(A, B) == pytest.approx(1 - 19 * 4 / 192)


def test_ac1_stays_high_for_rare_label_where_kappa_collapses():
    a = np.zeros(100)
    a[0] = 1
    b = np.zeros(100)
    assert cohen_kappa(a, b) == pytest.approx(0.0)
    assert gwet_ac1(a, b) == pytest.approx((0.99 - 2 * 0.005 * 0.995) / (1 - 2 * 0.005 * 0.995))


def test_agreement_skips_rows_one_coder_left_empty():
    b = B.astype(float)
    b[[3, 9]] = np.nan  # the two disagreements left uncoded: perfect agreement on the rest
    out = agreement(A, b)
    assert out["n"] == 8
    assert out["percent_agreement"] == 1.0
    assert out["cohen_kappa"] == pytest.approx(1.0)
    assert out["gwet_ac1"] == pytest.approx(1.0)
    assert out["krippendorff_alpha"] == pytest.approx(1.0)


def test_ece_near_zero_when_calibrated_and_large_when_not():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=200_000)
    y = (rng.uniform(size=p.size) < p).astype(int)
    assert expected_calibration_error(y, p) < 0.01
    assert expected_calibration_error(y, p ** 3) > 0.15  # overconfident towards 0
    curve = reliability_curve(y, p, n_bins=10)
    assert sum(b["n"] for b in curve) == p.size and len(curve) == 10
    assert all(abs(b["observed"] - b["mean_prob"]) < 0.02 for b in curve)
