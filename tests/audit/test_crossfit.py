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
