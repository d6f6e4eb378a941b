"""Injected label flips in real ToS data are found near the top of the out-of-fold ranking."""
from __future__ import annotations

import numpy as np
import pytest

from lexcoder.audit import audit_folds, noise_estimates, out_of_fold_proba, score_pairs
from lexcoder.errors import ConfigError

AUDIT_LABELS = ["limitation_of_liability", "unilateral_termination", "unilateral_change", "content_removal"]


@pytest.fixture(scope="module")
def noisy_oof(noisy_slice, audit_labels):
    """5 % of positives (and as many negatives) flipped per label, then out-of-fold probabilities."""
    assert audit_labels == AUDIT_LABELS
    noisy, flipped = noisy_slice
    folds = audit_folds(noisy, AUDIT_LABELS, n_folds=5, seed=0)
    P = out_of_fold_proba(noisy["text"], noisy[AUDIT_LABELS].to_numpy(), folds, label_names=AUDIT_LABELS)
    return noisy, flipped, folds, P


def _precision_at_k(score: np.ndarray, truth: np.ndarray) -> float:
    k = int(truth.sum())
    return float(truth[np.argsort(score, kind="stable")[:k]].mean())


def test_folds_keep_documents_together(noisy_oof):
    noisy, _, folds, _ = noisy_oof
    assert (noisy.assign(fold=folds).groupby("group")["fold"].nunique() == 1).all()
    assert len(np.unique(folds)) == 5


def test_out_of_fold_probabilities_cover_every_row(noisy_oof):
    _, _, _, P = noisy_oof
    assert P.shape == (len(noisy_oof[0]), len(AUDIT_LABELS))
    assert not np.isnan(P).any() and P.min() >= 0 and P.max() <= 1


@pytest.mark.parametrize("method", ["loss", "cleanlab"])
def test_injected_flips_rank_near_the_top(noisy_oof, method):
    noisy, flipped, _, P = noisy_oof
    score, flagged = score_pairs(noisy[AUDIT_LABELS].to_numpy(), P, method=method)
    base_rate = flipped.mean(axis=0)  # what a random ranking achieves: about 0.3 %
    p_at_k = [_precision_at_k(score[:, j], flipped[:, j]) for j in range(len(AUDIT_LABELS))]
    for lab, p, rate in zip(AUDIT_LABELS, p_at_k, base_rate):
        assert p >= 0.3 and p > 50 * rate, (lab, p, rate)
    assert np.mean(p_at_k) >= 0.45, p_at_k  # k = 6 to 20 flips per label in 7k sentences
    # the flagged set finds most injected flips and is far richer in them than the data
    # (it also holds the data's own coding errors, so its precision against the injected ones is lower)
    hits = (flagged & flipped).sum()
    assert hits / flipped.sum() >= 0.5
    assert hits / flagged.sum() > 30 * flipped.mean()


@pytest.mark.parametrize("method, filter_by", [("loss", "low_self_confidence"), ("cleanlab", "prune_by_noise_rate")])
def test_per_label_flags_are_cleanlabs_multilabel_per_class_flags(noisy_oof, method, filter_by):
    """The binary per-label calls flag exactly what cleanlab's multi-label per-class function flags."""
    from cleanlab.multilabel_classification.filter import find_multilabel_issues_per_class
    noisy, _, _, P = noisy_oof
    Y = noisy[AUDIT_LABELS].to_numpy()
    _, flagged = score_pairs(Y, P, method=method)
    reference = find_multilabel_issues_per_class(
        labels=[list(np.flatnonzero(row)) for row in Y], pred_probs=np.clip(P, 1e-6, 1 - 1e-6),  # as scored
        filter_by=filter_by, n_jobs=1)
    assert flagged.any(axis=0).all()  # every label flags something: the comparison is not vacuous
    np.testing.assert_array_equal(flagged, reference)


def test_each_label_is_scored_on_its_own_and_a_constant_label_flags_nothing(noisy_oof):
    noisy, _, _, P = noisy_oof
    Y = noisy[AUDIT_LABELS].to_numpy()
    _, together = score_pairs(Y, P, method="cleanlab")
    _, alone = score_pairs(Y[:, [1]], P[:, [1]], method="cleanlab")  # one scorable label
    np.testing.assert_array_equal(alone[:, 0], together[:, 1])
    with_constant = np.c_[Y[:, :2], np.zeros(len(Y), dtype=int)]  # a label nobody coded 1
    for method in ("loss", "cleanlab"):
        _, flagged = score_pairs(with_constant, np.c_[P[:, :2], P[:, 2]], method=method)
        assert not flagged[:, 2].any() and flagged[:, :2].any(axis=0).all(), method
    noise = noise_estimates(with_constant, np.c_[P[:, :2], P[:, 2]], ["a", "b", "never"])
    assert noise["never"]["estimated_noise_rate"] is None and noise["a"]["estimated_noise_rate"] > 0
    assert noise["a"] == noise_estimates(Y[:, [0]], P[:, [0]], ["a"])["a"]  # the same per-label view


def test_cleanlab_ranking_starts_no_processes(noisy_oof, monkeypatch):
    """On a shared 2-core machine the audit must not fork a pool per label (cleanlab's default n_jobs)."""
    import multiprocessing

    def no_pool(*args, **kwargs):
        raise AssertionError("cleanlab started a process pool")
    monkeypatch.setattr(multiprocessing, "Pool", no_pool)
    noisy, _, _, P = noisy_oof
    _, flagged = score_pairs(noisy[AUDIT_LABELS].to_numpy(), P, method="cleanlab")
    assert flagged.any()


def test_noise_estimate_grows_with_injected_noise(tos_slice, noisy_oof):
    noisy, _, folds, P = noisy_oof
    labels = AUDIT_LABELS[:2]  # one model per label: the noisy run's first two columns are comparable
    clean = tos_slice.rename(columns={"doc_id": "group"})
    P_clean = out_of_fold_proba(clean["text"], clean[labels].to_numpy(), folds)
    before = noise_estimates(clean[labels].to_numpy(), P_clean, labels)
    after = noise_estimates(noisy[labels].to_numpy(), P[:, :2], labels)
    for lab in labels:
        assert after[lab]["estimated_noise_rate"] > before[lab]["estimated_noise_rate"], lab


def test_single_class_label_in_a_fold_gets_training_prevalence(noisy_oof):
    noisy, _, folds, _ = noisy_oof
    sub = np.arange(len(noisy)) < 2500  # a few documents are enough here
    texts, folds = noisy["text"][sub], folds[sub]
    first = folds[0]
    Y = noisy[AUDIT_LABELS[:2]].to_numpy()[sub].copy()
    Y[folds != first, 1] = 0  # label 2 has positives only in one fold
    P = out_of_fold_proba(texts, Y, folds)
    assert Y[folds == first, 1].sum() > 0
    assert (P[folds == first, 1] == 0).all()  # its training part had no positive: prevalence 0
    assert np.isfinite(P).all() and len(np.unique(folds)) >= 2


def test_unknown_method_is_a_clear_error():
    with pytest.raises(ConfigError, match="loss"):
        score_pairs(np.zeros((3, 2)), np.zeros((3, 2)), method="magic")
