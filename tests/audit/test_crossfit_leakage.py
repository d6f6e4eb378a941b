"""No leakage in cross-fitting: a row's out-of-fold probability never depends on its own code.

Real ToS sentences (a few documents of the noisy slice), TF-IDF fold models: seconds.
"""
from __future__ import annotations

import numpy as np
import pytest

from lexcoder.audit import audit_folds, out_of_fold_proba


@pytest.fixture(scope="module")
def few_docs(noisy_slice, audit_labels):
    """8 documents of the slice with 5 % flips (about 2k sentences)."""
    noisy, _ = noisy_slice
    sizes = noisy["group"].value_counts()
    keep = noisy["group"].isin(sorted(sizes.index[sizes <= 400])[:8])
    return noisy[keep].reset_index(drop=True)


@pytest.mark.parametrize("n_folds", [3, 6])
def test_a_folds_codes_never_reach_its_own_probabilities(few_docs, audit_labels, n_folds):
    """Flipping every code of one fold leaves that fold's probabilities bit for bit unchanged, and moves
    the other folds' (whose models trained on those codes)."""
    folds = audit_folds(few_docs, audit_labels, n_folds=n_folds, seed=0)
    Y = few_docs[audit_labels].to_numpy()
    P = out_of_fold_proba(few_docs["text"], Y, folds)
    one = folds == folds[0]
    changed = Y.copy()
    changed[one] = 1 - changed[one]
    P_changed = out_of_fold_proba(few_docs["text"], changed, folds)
    assert len(np.unique(folds)) == n_folds and np.isfinite(P).all()
    np.testing.assert_array_equal(P_changed[one], P[one])
    assert not np.allclose(P_changed[~one], P[~one])


def test_documents_never_straddle_folds(few_docs, audit_labels):
    """A document's sentences share one fold, so a neighbouring sentence cannot carry its code across."""
    for n_folds in (3, 6):
        folds = audit_folds(few_docs, audit_labels, n_folds=n_folds, seed=0)
        assert (few_docs.assign(fold=folds).groupby("group")["fold"].nunique() == 1).all()
