"""Cross-fitting: out-of-fold probabilities for every labelled row.

The rows are cut into K folds exactly like the main split (label combination × TF-IDF cluster strata,
whole groups and duplicate texts kept together); a fresh model of any family is trained on K-1 folds
and scores the held-out fold, so no text is ever scored by a model that saw its label. A run's test rows
can be held out of every training part (``holdout``), so that reviewed corrections of the training rows
never carry information from the test codes into the retrained model's evaluation.

0/1 labels share one multi-label model per fold (:func:`out_of_fold_proba`); a categorical variable gets
a multi-class model over its classes per fold (:func:`out_of_fold_class_proba`). Models read the inputs
that :func:`lexcoder.context.model_inputs` makes (the texts, or the texts with their context).

``kind = "blend"`` cross-fits the TF-IDF + encoder blend: each fold's model is a fine-tuned encoder (default
``name = "minilm"``) whose probabilities are averaged with a TF-IDF model's of the same training part, i.e.
the family ``encoder`` with ``blend_tfidf = 0.5`` (the mean that beat either model alone on every ToS fold,
``benchmarks/bench_encoder_cv.py``). Fine-tuning on a CPU is slow: :func:`estimate_seconds` times a few
training steps and extrapolates to all folds before the work starts.
"""
from __future__ import annotations

import logging
import time
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

BLEND = "blend"  # cross-fitting kind: the encoder family with the TF-IDF blend (see the module docstring)
BLEND_WEIGHT = 0.5  # the plain mean of the two families' probabilities
BLEND_ENCODER = "minilm"


def family_settings(kind: str, name: str | None, params: dict[str, Any] | None
                    ) -> tuple[str, str | None, dict[str, Any]]:
    """The model family, pretrained model and settings that cross-fitting ``kind`` builds.

    ``"blend"`` is the ``encoder`` family (default ``name`` ``"minilm"``) with ``blend_tfidf = 0.5``
    unless ``params`` sets another weight; every other kind is returned as it is.
    """
    params = dict(params or {})
    if kind != BLEND:
        return kind, name, params
    return "encoder", name or BLEND_ENCODER, {**params, "blend_tfidf": params.get("blend_tfidf") or BLEND_WEIGHT}


def tfidf_settings(kind: str, name: str | None, params: dict[str, Any] | None) -> dict[str, Any] | None:
    """Settings of the TF-IDF model inside cross-fitting ``kind``'s fold models (None: there is none).

    ``tfidf`` is one; an encoder blended with TF-IDF (``blend``, or ``encoder`` with ``blend_tfidf``) trains
    a default TF-IDF model with the encoder's seed beside the network (:mod:`lexcoder.models.encoder`).
    """
    family, _, params = family_settings(kind, name, params)
    if family == "tfidf":
        return params
    if family == "encoder" and params.get("blend_tfidf"):
        return {"seed": int(params.get("seed", 0))}
    return None


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


def fit_fold_model(inputs: Inputs, Y: np.ndarray, train: np.ndarray, *, kind: str, name: str | None,
                   params: dict[str, Any] | None, names: Sequence[str]) -> tuple[Any, np.ndarray]:
    """The multi-label model cross-fitting trains on the ``train`` rows (a boolean mask).

    Returns
    -------
    model : the fitted model of the learnable labels (None if no label is learnable there)
    learnable : (n_labels,) bool, the labels coded both ways in the training rows (the model's columns)
    """
    inputs = _as_inputs(inputs)
    pos = Y[train].sum(axis=0)
    learnable = (pos > 0) & (pos < train.sum())
    if not learnable.any():
        return None, learnable
    model = build_model(*family_settings(kind, name, params))
    model.fit(take(inputs, train), Y[train][:, learnable],
              label_names=[n for n, ok in zip(names, learnable) if ok])
    return model, learnable


def fit_fold_class_model(inputs: Inputs, y: np.ndarray, train: np.ndarray, *, kind: str, name: str | None,
                         params: dict[str, Any] | None) -> Any:
    """The multi-class model cross-fitting trains on the ``train`` rows (None if they hold one class)."""
    if len(set(y[train])) < 2:
        return None
    model = build_model(*family_settings(kind, name, params))
    return model.fit(take(_as_inputs(inputs), train), y[train])


def _fit_and_score(inputs: pd.Series | pd.DataFrame, Y: np.ndarray, train: np.ndarray, test: np.ndarray, *,
                   kind: str, name: str | None, params: dict[str, Any] | None, names: list[str]) -> np.ndarray:
    """Fit on ``train`` rows (learnable labels only) and return probabilities for ``test`` rows."""
    pos = Y[train].sum(axis=0)
    out = np.tile((pos / max(train.sum(), 1)).astype(float), (int(test.sum()), 1))
    model, learnable = fit_fold_model(inputs, Y, train, kind=kind, name=name, params=params, names=names)
    if model is None:
        return out
    for j in np.flatnonzero(~learnable):
        log.warning("Label %s has a single class in a cross-fitting training part; its held-out rows "
                    "get the training prevalence as probability.", names[j])
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
    model = fit_fold_class_model(inputs, y, train, kind=kind, name=name, params=params)
    if model is None:  # nothing to learn: the rows get the only class seen
        out[:, column[present[0]]] = 1.0
        return out
    out[:, [column[c] for c in model.classes_]] = model.predict_proba(take(inputs, test))
    return out


# -- time estimate ------------------------------------------------------------------------------------
_TIMED_STEPS = 4  # training steps timed


def estimate_seconds(inputs: Inputs, Y: np.ndarray, folds: np.ndarray, *, kind: str, name: str | None = None,
                     params: dict[str, Any] | None = None, holdout: np.ndarray | None = None,
                     n_variables: int = 0) -> dict[str, Any] | None:
    """Estimated wall time of cross-fitting a fine-tuned family, from a few timed training steps.

    A short fit on the first texts (4 optimizer steps, no validation) gives the time of one training step;
    it is multiplied by the steps every fold's model takes (``epochs`` × batches of the
    fold's training texts, as the family counts them, ``negative_ratio`` included), plus the time to
    score every row once. A categorical variable adds one network per fold over all training texts.

    Parameters
    ----------
    inputs, Y, folds, kind, name, params, holdout : as :func:`out_of_fold_proba`
    n_variables : categorical variables cross-fitted beside the 0/1 labels (one more network each per fold)

    Returns
    -------
    None for families without fine-tuning (TF-IDF: seconds), else ``{"seconds": estimate, "steps": total
    optimizer steps, "seconds_per_step": measured, "fits": networks trained}``
    """
    from ..models.transformer import TransformerClassifier
    family, name, params = family_settings(kind, name, params)
    params = {**params, "blend_tfidf": 0.0} if family == "encoder" else params  # TF-IDF's share: seconds
    model = build_model(family, name, params)
    if not isinstance(model, TransformerClassifier):
        return None
    inputs, Y = _as_inputs(inputs), np.asarray(Y).astype(np.int8)
    holdout = _holdout(holdout, len(inputs))
    per_step, per_text = _timed_steps(family, name, params, inputs, max(Y.shape[1], 1))
    networks = (Y.shape[1] if getattr(model, "per_label", False) else 1) if Y.shape[1] else 0
    parts = _scored_parts(folds, holdout)
    steps = 0
    for test in parts:
        train = ~test & ~holdout
        steps += networks * _fold_steps(model, Y[train])
        steps += n_variables * _fold_steps(model, np.ones((int(train.sum()), 1)))  # every text has a class
    # every row is scored once by each kind of network (by its own fold's model)
    seconds = steps * per_step + (networks + n_variables) * len(inputs) * per_text
    return {"seconds": float(seconds), "steps": int(steps), "seconds_per_step": float(per_step),
            "fits": len(parts) * (networks + n_variables)}


def _fold_steps(model: Any, Y_train: np.ndarray) -> int:
    """Optimizer steps one fold's network takes on ``Y_train`` (counted as the family counts them)."""
    model._has_positive = Y_train.sum(axis=1) > 0
    return int(model._total_steps(model._epoch_size()))


def _timed_steps(family: str, name: str | None, params: dict[str, Any], inputs: pd.Series | pd.DataFrame,
                 width: int) -> tuple[float, float]:
    """Seconds per training step and per scored text of the family's settings, on the first texts.

    The step time is the training loop's own speed (texts per second from its first step to its last, as
    the family records it in ``history_``): loading the network is left out, which two fits of different
    lengths could only subtract with more noise than a step takes.
    """
    batch = int(build_model(family, name, params).batch_size)
    m = min(len(inputs), batch * _TIMED_STEPS)
    sample = take(inputs, np.arange(m))
    Y = (np.arange(m)[:, None] + np.arange(width)[None, :]) % 2  # the codes do not change a step's cost
    settings = {**params, "max_steps": _TIMED_STEPS, "epochs": max(int(params.get("epochs", 1)), _TIMED_STEPS),
                "negative_ratio": None, **({"per_label": False} if family == "encoder" else {})}
    model = build_model(family, name, settings)
    t0 = time.perf_counter()
    model.fit(sample, Y, label_names=[f"label{j}" for j in range(width)])
    elapsed = time.perf_counter() - t0
    speed = (getattr(model, "history_", None) or [{}])[-1].get("train_examples_per_s")
    per_step = batch / speed if speed else elapsed / _TIMED_STEPS
    t0 = time.perf_counter()
    model.predict_proba(sample)
    return per_step, (time.perf_counter() - t0) / m


def log_time_estimate(estimate: dict[str, Any] | None, kind: str) -> None:
    """Log :func:`estimate_seconds`' figure before cross-fitting starts (the CLI shows it)."""
    if estimate is None:
        return
    log.warning("Cross-fitting with %s: about %s on this machine (%d models, %s training steps at %.2f s "
                "each, measured on a few steps; early stopping can only shorten it).", kind,
                format_duration(estimate["seconds"]), estimate["fits"], f"{estimate['steps']:,}",
                estimate["seconds_per_step"])


def format_duration(seconds: float) -> str:
    """``"2 h 05 min"``, ``"7 min"`` or ``"40 s"``."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"
