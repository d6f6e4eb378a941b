"""Cross-fitting: out-of-fold probabilities for every labelled row.

The rows are cut into K folds exactly like the main split (label combination × TF-IDF cluster strata,
whole groups and duplicate texts kept together); a fresh model of any family is trained on K-1 folds
and scores the held-out fold, so no text is ever scored by a model that saw its label. A run's test rows
can be held out of every training part (``holdout``), so that reviewed corrections of the training rows
never carry information from the test codes into the retrained model's evaluation.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..models import build_model
from ..progress import track
from ..split import assign_folds, split_units, strata

log = logging.getLogger(__name__)


def audit_folds(df: pd.DataFrame, label_columns: Sequence[str], *, n_folds: int = 5, seed: int = 42,
                n_clusters: int = 40, min_stratum: int = 4) -> np.ndarray:
    """Fold index per row for cross-fitting (group-aware, stratified, duplicates kept together).

    Parameters
    ----------
    df : cleaned canonical table (``text``, label columns, optional ``group`` and ``dup_group``)
    label_columns : labels used for stratification
    n_folds : number of folds K (each row is scored by a model trained on the other K-1)

    Returns
    -------
    folds : (n_rows,) int array with values 0..K-1
    """
    st = strata(df["text"], df[list(label_columns)].to_numpy(), n_clusters=n_clusters,
                min_stratum=min_stratum, seed=seed)
    # identical texts never straddle folds (a copy in training would leak its code); groups stay whole
    # apart from the texts they share with other groups
    return assign_folds(st, split_units(df, "keep_duplicates"), n_folds, seed)


def out_of_fold_proba(texts: Sequence[str], Y: np.ndarray, folds: np.ndarray, *, kind: str = "tfidf",
                      name: str | None = None, params: dict[str, Any] | None = None,
                      label_names: Sequence[str] | None = None, holdout: np.ndarray | None = None) -> np.ndarray:
    """Out-of-fold probabilities: row ``i`` is scored by a model fitted without fold ``folds[i]``.

    Parameters
    ----------
    texts : (n,) texts
    Y : (n, n_labels) 0/1 human codes
    folds : (n,) fold index per row (see :func:`audit_folds`)
    kind, name, params : model family, pretrained model and family settings (as ``[model]`` in the config)
    label_names : names of the label columns (for messages)
    holdout : (n,) bool, rows whose codes no model may train on (e.g. a run's test rows, so that
        corrections of training rows never carry information from the test codes); they are scored by
        one more model, fitted on all other rows. Their ``folds`` values are ignored.

    Returns
    -------
    P : (n, n_labels) float array of probabilities. A label with a single class in some fold's training
        part cannot be learnt there; its held-out rows get the training prevalence (0 or 1) instead.
    """
    texts = pd.Series(list(texts), dtype=object)
    Y = np.asarray(Y).astype(np.int8)
    names = list(label_names) if label_names is not None else [str(j) for j in range(Y.shape[1])]
    holdout = np.zeros(len(Y), dtype=bool) if holdout is None else np.asarray(holdout, dtype=bool)
    scored = [(folds == k) & ~holdout for k in np.unique(folds[~holdout])]
    if holdout.any():
        scored.append(holdout)
    P = np.full(Y.shape, np.nan)
    for test in track(scored, description=f"Cross-fitting {len(scored)} models"):
        P[test] = _fit_and_score(texts, Y, ~test & ~holdout, test, kind=kind, name=name, params=params,
                                 names=names)
    return P


def _fit_and_score(texts: pd.Series, Y: np.ndarray, train: np.ndarray, test: np.ndarray, *, kind: str,
                   name: str | None, params: dict[str, Any] | None, names: list[str]) -> np.ndarray:
    """Fit on ``train`` rows (learnable labels only) and return probabilities for ``test`` rows."""
    pos = Y[train].sum(axis=0)
    learnable = (pos > 0) & (pos < train.sum())
    out = np.tile((pos / max(train.sum(), 1)).astype(float), (int(test.sum()), 1))
    if not learnable.any():
        return out
    for j in np.flatnonzero(~learnable):
        log.warning("Label %s has a single class in a cross-fitting training part; its held-out rows "
                    "get the training prevalence as probability.", names[j])
    model = build_model(kind, name, params)
    model.fit(texts[train].tolist(), Y[train][:, learnable],
              label_names=[n for n, ok in zip(names, learnable) if ok])
    out[:, learnable] = model.predict_proba(texts[test].tolist())
    return out
