"""Scores that mean the same across labels, cross-fitted calibration, near-duplicates found.

Real ToS sentences throughout; the out-of-fold probabilities come from TF-IDF cross-fitting on a few
documents (seconds).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import lexcoder
from lexcoder.audit import audit_folds, build_queue, out_of_fold_proba, score_pairs
from lexcoder.audit.queue import conflict_groups, interleave_weights
from lexcoder.audit.ranking import calibrate, interleave
from lexcoder.audit.scoring import expected_errors

AUDIT_LABELS = ["limitation_of_liability", "unilateral_termination", "unilateral_change", "content_removal"]


@pytest.fixture(scope="module")
def with_common_label(small_oof):
    """The slice plus a label 86 % of texts carry, coded exactly as its (calibrated) probabilities say, seen
    through an over-confident model (``p' = sigmoid(3 logit p)``): none of its codes is an injected error.

    Returns ``(table, labels, Y, P, injected errors (n, n_labels), folds)``.
    """
    noisy, flipped, folds, P = small_oof
    rng = np.random.default_rng(0)
    truth = rng.beta(12, 2, len(noisy))  # mean 0.86
    common = (rng.random(len(noisy)) < truth).astype(int)
    overconfident = 1 / (1 + np.exp(-3 * np.log(truth / (1 - truth))))
    labels = [*AUDIT_LABELS, "common"]
    table = noisy.assign(common=common)
    errors = np.c_[flipped, np.zeros(len(table), dtype=bool)]
    return table, labels, table[labels].to_numpy(), np.c_[P, overconfident], errors, folds


def _top50(table, labels, Y, P, errors, folds, *, method, order, weights=None):
    """(places of the label "common", injected errors found) in the top 50 of the queue."""
    no_groups = conflict_groups(table.iloc[:0], labels)  # random codes on repeated texts would conflict
    position = pd.Series(np.arange(len(table)), index=table["id"])
    score, flagged = score_pairs(Y, P, method=method, folds=folds)
    q = build_queue(table, labels, P, score, flagged, np.zeros_like(flagged), groups=no_groups, order=order,
                    weights=weights).head(50)
    hits = errors[position[q["id"]].to_numpy(), [labels.index(lab) for lab in q["label"]]]
    return int((q["label"] == "common").sum()), int(hits.sum())


@pytest.fixture(scope="module")
def small_oof(noisy_slice, audit_labels):
    """10 documents (about 2k sentences) of the slice with 5 % flips per label, 4-fold out-of-fold
    probabilities."""
    assert audit_labels == AUDIT_LABELS
    noisy, flipped = noisy_slice
    sizes = noisy["group"].value_counts()
    keep = noisy["group"].isin(sorted(sizes.index[sizes <= 400])[:10]).to_numpy()
    noisy, flipped = noisy[keep].reset_index(drop=True), flipped[keep]
    folds = audit_folds(noisy, AUDIT_LABELS, n_folds=4, seed=0)
    P = out_of_fold_proba(noisy["text"], noisy[AUDIT_LABELS].to_numpy(), folds)
    return noisy, flipped, folds, P


@pytest.mark.parametrize("how", ["temperature", "platt", "isotonic"])
def test_calibration_never_sees_the_codes_it_calibrates(small_oof, how):
    """Changing one fold's codes leaves that fold's calibrated probabilities unchanged (and moves the others')."""
    noisy, _, folds, P = small_oof
    Y = noisy[AUDIT_LABELS].to_numpy()
    Q = calibrate(Y, P, folds, how=how)
    first = folds == folds[0]
    changed = Y.copy()
    changed[first] = 1 - changed[first]
    Q2 = calibrate(changed, P, folds, how=how)
    np.testing.assert_array_equal(Q2[first], Q[first])
    assert not np.allclose(Q2[~first], Q[~first])
    assert ((Q >= 0) & (Q <= 1)).all()


def test_calibrated_scores_keep_each_labels_order_and_flags(small_oof):
    noisy, _, folds, P = small_oof
    Y = noisy[AUDIT_LABELS].to_numpy()
    loss, flagged_loss = score_pairs(Y, P, method="loss")
    cal, flagged_cal = score_pairs(Y, P, method="calibrated", folds=folds)
    np.testing.assert_array_equal(flagged_cal, flagged_loss)
    for j in range(Y.shape[1]):
        for f in np.unique(folds):  # one temperature per fold: the fold's order within the label is kept
            order = np.argsort(loss[folds == f, j], kind="stable")
            assert (np.diff(cal[folds == f, j][order]) >= -1e-12).all()
        k = int(flagged_loss[:, j].sum())  # across folds the temperatures differ a little: the heads agree
        head = lambda s: set(np.argsort(s[:, j], kind="stable")[:k])  # noqa: E731
        assert len(head(loss) & head(cal)) >= 0.8 * k, (j, k)
    assert not np.allclose(cal, loss)  # but other values: each label on its own scale


def test_an_overconfident_frequent_label_does_not_flood_the_top(with_common_label):
    """The label "common" (:func:`with_common_label`): sorted by the raw self-confidence it fills the top
    50; with calibrated scores the rare labels' flips come back."""
    table, labels, Y, P, errors, folds = with_common_label
    top = {method: _top50(*with_common_label, method=method, order="score") for method in ("loss", "calibrated")}
    assert table["common"].mean() == pytest.approx(0.86, abs=0.02)
    assert top["loss"][0] >= 45  # the flood
    assert top["calibrated"][0] <= 25 and top["calibrated"][1] >= top["loss"][1] + 3, top


def test_interleave_follows_expected_errors():
    """Weights 3:1 give a 3:1 split in every prefix (within one pair); a label with weight 0 comes last."""
    labels = np.repeat([0, 1, 2], 40)
    evidence = np.tile(np.linspace(1, 0, 40), 3)
    order = interleave(labels, evidence, [3.0, 1.0, 0.0])
    first = labels[order]
    for n in (4, 12, 40, 52):  # label 0 (40 pairs) runs out after place 53
        assert abs((first[:n] == 0).sum() - 0.75 * n) <= 1 and (first[:n] == 2).sum() == 0
    assert (first[80:] == 2).all()
    for j in range(3):  # within a label: strongest evidence first
        assert (np.diff(evidence[order][first == j]) <= 0).all()


def test_near_duplicates_differing_in_case_spacing_and_numbers_are_found(tos_full):
    labels = ["unilateral_change"]
    with_number = tos_full[tos_full["text"].str.contains(r"\b\d+\b") & (tos_full["text"].str.len() > 60)]
    original = with_number.iloc[0]
    variant = original["text"].upper().replace(" ", "  ")
    variant = pd.Series([variant]).str.replace(r"\d+", "77", regex=True)[0]
    other_word = original["text"].replace(original["text"].split()[1], "banana", 1)
    rows = pd.DataFrame({
        "id": ["orig", "variant", "other", "twin_1", "twin_2", "twin_3"],
        "text": [original["text"], variant, other_word, *[tos_full["text"].iloc[5]] * 3],
        "unilateral_change": [1, 0, 0, 1, 1, 0]})
    cleaned, _, _ = lexcoder.clean(rows, labels)
    groups = conflict_groups(cleaned, labels).set_index(cleaned["id"].to_numpy()[conflict_groups(cleaned, labels)["row"]])
    assert set(groups.index) == {"orig", "variant", "twin_1", "twin_2", "twin_3"}  # not the changed word
    near = groups.loc[["orig", "variant"]]
    assert near["group"].nunique() == 1 and not near["exact"].any()
    assert near["reason"].str.startswith("conflicting near-duplicate (near-identical text coded 1 in 1, 0 in 1 "
                                         "copies").all()
    assert (near["copies"] == "1: orig; 0: variant").all()
    twins = groups.loc[["twin_1", "twin_2", "twin_3"]]
    assert twins["exact"].all() and twins["group"].nunique() == 1
    assert twins["reason"].eq("conflicting duplicate (identical text coded 1 in 2, 0 in 1 copies)").all()
    assert (twins["copies"] == "1: twin_1, twin_2; 0: twin_3").all()


def test_interleave_weights_are_the_calibrated_expected_wrong_codes(with_common_label):
    """The default interleaving weights sum each label's calibrated P(code wrong); the ambiguous label
    "common" gets fewer of the top 50 than with confident learning's counts (which take every row past a
    threshold as wholly wrong), and the injected errors found do not drop. A sort by score gives it fewer
    still (its expected disagreements are many, but each is weak)."""
    table, labels, Y, P, errors, folds = with_common_label
    score, _ = score_pairs(Y, P, method="calibrated", folds=folds)
    weights = interleave_weights(labels, score)
    np.testing.assert_allclose([weights[lab] for lab in labels], (1 - score).sum(axis=0))
    calibrated = _top50(*with_common_label, method="calibrated", order="interleave")  # default weights
    confident = _top50(*with_common_label, method="calibrated", order="interleave",
                       weights=expected_errors(Y, P, labels))
    assert calibrated[0] < confident[0] - 3 and calibrated[1] >= confident[1], (calibrated, confident)
    assert _top50(*with_common_label, method="calibrated", order="score")[0] < calibrated[0]


def test_the_audit_config_offers_exactly_the_audits_scores_and_orders():
    """[audit] method / order are validated by the config (before any work): the same choices and defaults
    as the audit functions, so a value the config accepts always runs."""
    from typing import get_args

    from lexcoder.audit.queue import DEFAULT_ORDER, ORDERS
    from lexcoder.audit.scoring import DEFAULT_METHOD, RANKERS
    from lexcoder.config import AuditConfig
    fields = AuditConfig.model_fields
    assert set(get_args(fields["method"].annotation)) == set(RANKERS)
    assert set(get_args(fields["order"].annotation)) == set(ORDERS)
    assert (fields["method"].default, fields["order"].default) == (DEFAULT_METHOD, DEFAULT_ORDER)
