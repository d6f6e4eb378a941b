"""Cross-fitting: out-of-fold probabilities for every labelled row.

The rows are cut into K folds exactly like the main split (label combination × TF-IDF cluster strata,
whole groups and duplicate texts kept together); a fresh model of any family is trained on K-1 folds
and scores the held-out fold, so no text is ever scored by a model that saw its label. A run's test rows
can be held out of every training part (``holdout``), so that reviewed corrections of the training rows
never carry information from the test codes into the retrained model's evaluation.

0/1 labels share one multi-label model per fold (:func:`out_of_fold_proba`); a categorical variable gets
a multi-class model over its classes per fold (:func:`out_of_fold_class_proba`). Models read the inputs
that :func:`lexcoder.context.model_inputs` makes (the texts, or the texts with their context).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..context import take
from ..models import build_model
from ..progress import track
from ..split import assign_folds, split_units, strata

log = logging.getLogger(__name__)

Inputs = Sequence[str] | pd.Series | pd.DataFrame  # texts, or texts with their context (lexcoder.context)


def audit_folds(df: pd.DataFrame, label_columns: Sequence[str], *, n_folds: int = 5, seed: int = 42,
                n_clusters: int = 40, min_stratum: int = 4) -> np.ndarray:
    """Fold index per row for cross-fitting (group-aware, stratified, duplicates kept together).

    Parameters
    ----------
    df : cleaned canonical table (``text``, label columns, optional ``group`` and ``dup_group``)
    label_columns : 0/1 columns used for stratification (a categorical variable enters as one indicator
        column per class, :func:`lexcoder.split.class_indicators`)
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


def out_of_fold_proba(inputs: Inputs, Y: np.ndarray, folds: np.ndarray, *, kind: str = "tfidf",
                      name: str | None = None, params: dict[str, Any] | None = None,
                      label_names: Sequence[str] | None = None, holdout: np.ndarray | None = None) -> np.ndarray:
    """Out-of-fold probabilities: row ``i`` is scored by a model fitted without fold ``folds[i]``.

    Parameters
    ----------
    inputs : (n,) model inputs: texts, or :func:`lexcoder.context.model_inputs` (texts with their context)
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
    inputs = _as_inputs(inputs)
    Y = np.asarray(Y).astype(np.int8)
    names = list(label_names) if label_names is not None else [str(j) for j in range(Y.shape[1])]
    holdout = _holdout(holdout, len(Y))
    parts = _scored_parts(folds, holdout)
    P = np.full(Y.shape, np.nan)
    for test in track(parts, description=f"Cross-fitting {len(parts)} models"):
        P[test] = _fit_and_score(inputs, Y, ~test & ~holdout, test, kind=kind, name=name, params=params,
                                 names=names)
    return P


def out_of_fold_class_proba(inputs: Inputs, y: Sequence[str], folds: np.ndarray, *,
                            classes: Sequence[str] | None = None, kind: str = "tfidf", name: str | None = None,
                            params: dict[str, Any] | None = None, holdout: np.ndarray | None = None,
                            variable: str = "the variable") -> np.ndarray:
    """Out-of-fold class probabilities of one categorical variable (a multi-class model per fold).

    Parameters
    ----------
    inputs : (n,) model inputs (as :func:`out_of_fold_proba`)
    y : (n,) the human codes, class values as text
    folds, kind, name, params, holdout : as :func:`out_of_fold_proba`
    classes : the k classes, sorted (default: the sorted values of ``y``)
    variable : the variable's name (for messages)

    Returns
    -------
    P : (n, k) float array, rows summing to 1, columns in the order of ``classes``. A class absent from a
        fold's training part gets probability 0 for that fold's rows; a training part with one class only
        gives its rows that class.
    """
    inputs = _as_inputs(inputs)
    y = np.asarray(y, dtype=object).astype(str)
    classes = np.asarray(sorted(set(y)) if classes is None else list(classes), dtype=object)
    holdout = _holdout(holdout, len(y))
    parts = _scored_parts(folds, holdout)
    P = np.full((len(y), len(classes)), np.nan)
    for test in track(parts, description=f"Cross-fitting {len(parts)} models of {variable}"):
        P[test] = _fit_and_score_classes(inputs, y, classes, ~test & ~holdout, test, kind=kind, name=name,
                                         params=params, variable=variable)
    return P


def _as_inputs(inputs: Inputs) -> pd.Series | pd.DataFrame:
    """Model inputs indexed 0..n-1, so that :func:`lexcoder.context.take` cuts them by position."""
    if isinstance(inputs, (pd.Series, pd.DataFrame)):
        return inputs.reset_index(drop=True)
    return pd.Series(list(inputs), dtype=object)


def _holdout(holdout: np.ndarray | None, n: int) -> np.ndarray:
    return np.zeros(n, dtype=bool) if holdout is None else np.asarray(holdout, dtype=bool)


def _scored_parts(folds: np.ndarray, holdout: np.ndarray) -> list[np.ndarray]:
    """Boolean masks of the rows each cross-fitting model scores: one per fold, and the held-out rows."""
    folds = np.asarray(folds)
    parts = [(folds == k) & ~holdout for k in np.unique(folds[~holdout])]
    if holdout.any():
        parts.append(holdout)
    return parts


def _fit_and_score(inputs: pd.Series | pd.DataFrame, Y: np.ndarray, train: np.ndarray, test: np.ndarray, *,
                   kind: str, name: str | None, params: dict[str, Any] | None, names: list[str]) -> np.ndarray:
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
    model.fit(take(inputs, train), Y[train][:, learnable],
              label_names=[n for n, ok in zip(names, learnable) if ok])
    out[:, learnable] = model.predict_proba(take(inputs, test))
    return out


def _fit_and_score_classes(inputs: pd.Series | pd.DataFrame, y: np.ndarray, classes: np.ndarray,
                           train: np.ndarray, test: np.ndarray, *, kind: str, name: str | None,
                           params: dict[str, Any] | None, variable: str) -> np.ndarray:
    """Fit a multi-class model on ``train`` rows and return ``(n_test, k)`` probabilities for ``test`` rows."""
    column = {c: j for j, c in enumerate(classes)}
    present = sorted(set(y[train]))
    out = np.zeros((int(test.sum()), len(classes)))
    if len(present) < len(classes):
        log.warning("Class(es) %s of %s do not occur in a cross-fitting training part; that part's model "
                    "gives them probability 0.", sorted(set(classes) - set(present)), variable)
    if len(present) == 1:  # nothing to learn: the rows get the only class seen
        out[:, column[present[0]]] = 1.0
        return out
    model = build_model(kind, name, params)
    model.fit(take(inputs, train), y[train])
    out[:, [column[c] for c in model.classes_]] = model.predict_proba(take(inputs, test))
    return out
