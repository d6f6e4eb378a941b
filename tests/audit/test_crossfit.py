"""Cross-fitting works with every model family behind the one classifier interface."""
from __future__ import annotations

import numpy as np
import pytest

from lexcoder.audit import audit_folds, out_of_fold_proba


@pytest.mark.slow
def test_encoder_family_cross_fits(tos_slice, audit_labels):
    """A few training steps of MiniLM per fold: the held-out rows of every fold are scored."""
    labels = audit_labels[:2]
    docs = tos_slice[tos_slice["doc_id"].isin(sorted(tos_slice["doc_id"].unique())[:6])]
    coded = docs[labels].sum(axis=1) > 0
    part = (docs[coded | (docs.groupby("doc_id").cumcount() < 20)].reset_index(drop=True)
            .rename(columns={"doc_id": "group"}))  # every positive and 20 other sentences per document
    folds = audit_folds(part, labels, n_folds=3, seed=0, n_clusters=4)
    P = out_of_fold_proba(part["text"], part[labels].to_numpy(), folds, kind="encoder",
                          params={"max_steps": 2, "max_length": 32, "batch_size": 8, "patience": 0})
    assert P.shape == (len(part), 2) and np.isfinite(P).all()
    assert ((P > 0) & (P < 1)).all()  # real model outputs, not the single-class fallback
    assert len(np.unique(folds)) == 3


@pytest.mark.slow  # several seconds on 2 cores: CI runs it (make test); the quick suite (-m 'not slow') does not
def test_held_out_test_codes_never_reach_the_other_rows(noisy_slice, audit_labels):
    """With ``holdout``, changing every held-out code leaves the other rows' probabilities unchanged."""
    noisy, _ = noisy_slice
    docs = sorted(noisy["group"].unique())
    holdout = noisy["group"].isin(docs[:4]).to_numpy()  # four whole documents play the test set
    folds = np.full(len(noisy), -1)
    folds[~holdout] = audit_folds(noisy[~holdout].reset_index(drop=True), audit_labels, n_folds=4, seed=0)
    Y = noisy[audit_labels].to_numpy()
    P = out_of_fold_proba(noisy["text"], Y, folds, holdout=holdout)
    Y_other = Y.copy()
    Y_other[holdout] = 1 - Y_other[holdout]  # every test code flipped
    P_other = out_of_fold_proba(noisy["text"], Y_other, folds, holdout=holdout)
    np.testing.assert_array_equal(P_other[~holdout], P[~holdout])
    assert np.isfinite(P).all()
    # the held-out rows are scored by one model of all other rows: their codes do not matter to it either
    np.testing.assert_array_equal(P_other[holdout], P[holdout])
    without = out_of_fold_proba(noisy["text"], Y_other, np.where(holdout, 0, folds))  # no holdout: leaks
    assert not np.array_equal(without[~holdout], P[~holdout])


def test_audit_run_holds_out_the_test_rows(small_run):
    import pandas as pd
    run_dir, _, audit = small_run
    oof = pd.read_parquet(run_dir / "audit_oof.parquet")
    split = pd.read_parquet(run_dir / "splits.parquet").set_index("id")["split"]
    is_test = oof["id"].map(split).eq("test").to_numpy()
    assert is_test.any() and (oof["fold"].to_numpy()[is_test] == -1).all()
    assert (oof["fold"].to_numpy()[~is_test] >= 0).all()
    assert audit.summary["settings"]["test_rows_held_out"] == int(is_test.sum())
