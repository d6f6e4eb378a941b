"""Per-label quality figures against the human labels (scikit-learn's metrics, not re-implemented).

Output follows the ``metrics.json`` shape fixed in docs/ARCHITECTURE.md; with the options of
:func:`evaluate_predictions` each label also gets bootstrap intervals (``f1_ci``, ``precision_ci``,
``recall_ci``, ``cohen_kappa_ci``; ``macro.f1_ci`` …), agreement with the human coders
(``krippendorff_alpha``, ``gwet_ac1``), calibration (``ece``, ``brier``, ``reliability``) and, where a
second coder's columns exist, the same agreement figures human-vs-human under ``second_coder``.

Every label is also set against its trivial baseline (``baseline``, ``f1_over_baseline``,
``beats_baseline``) and flagged when its positives are too few to trust its figures (``small_support``):
a model F1 of 0.94 means little when coding every text 1 scores 0.936, and one test positive more or less
can swing a label's F1 (and the macro-F1) by a lot.

A categorical variable (one of k classes per text) gets its own block from :func:`evaluate_variable`:
accuracy, macro-/weighted-F1, κ, α, AC1, the k×k confusion matrix, per-class figures, calibration of the
chosen class's probability, and the majority-class baseline.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (accuracy_score, average_precision_score, cohen_kappa_score, confusion_matrix,
                             f1_score, log_loss, precision_recall_fscore_support, precision_score, recall_score,
                             roc_auc_score)

from .config import Config
from .data import second_coder_columns
from .stats import agreement, bootstrap_metrics, expected_calibration_error, gwet_ac1, krippendorff_alpha
from .stats import reliability_curve
from .stats.bootstrap import bootstrap_classes

SMALL_SUPPORT = 10
"""A label with fewer positives than this in the evaluated split is flagged ``small_support``."""

BASELINE_TOLERANCE = 1e-12
"""A model F1 within this of its baseline's counts as not beating it (float noise of equal figures)."""


def label_metrics(y: np.ndarray, p: np.ndarray, threshold: float | np.ndarray) -> dict[str, Any]:
    """Figures for one label: y (n,) 0/1 human codes, p (n,) probabilities, decision ``p >= threshold``.

    ``threshold`` may be one number or one per row (pooled cross-validation folds).
    """
    y = np.asarray(y).astype(int)
    pred = (np.asarray(p) >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    both = 0 < y.sum() < len(y)
    return {
        "f1": float(f1_score(y, pred, zero_division=0)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "accuracy": float(accuracy_score(y, pred)),
        "roc_auc": float(roc_auc_score(y, p)) if both else None,
        "average_precision": float(average_precision_score(y, p)) if y.sum() else None,
        "cohen_kappa": _kappa(y, pred),
        "support": int(y.sum()),
        "n": int(len(y)),
        "prevalence": float(y.mean()) if len(y) else None,
        "predicted_prevalence": float(pred.mean()) if len(y) else None,
        "threshold": float(np.mean(threshold)),
        "tp": int(tp), "fp": int(fp), "tn": int(tn), "fn": int(fn),
        "krippendorff_alpha": krippendorff_alpha(y, pred),
        "gwet_ac1": gwet_ac1(y, pred),
    }


def calibration_metrics(y: np.ndarray, p: np.ndarray, *, n_bins: int = 10) -> dict[str, Any]:
    """ECE, Brier score and reliability curve of one label's probabilities ``p`` (n,) against ``y`` (n,)."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    return {"ece": expected_calibration_error(y, p, n_bins=n_bins),
            "brier": float(np.mean((p - y) ** 2)) if len(y) else None,
            "reliability": reliability_curve(y, p, n_bins=n_bins)}


def always_one_baseline(y: np.ndarray) -> dict[str, Any]:
    """The trivial rule for a 0/1 label: code every text 1. The best constant rule for F1.

    With ``k`` positives among ``n`` texts (prevalence ``p = k / n``): F1 = 2p / (1 + p), precision p,
    recall 1, accuracy p. Without positives F1, precision and recall are 0 (sklearn's ``zero_division=0``,
    as for the model's figures).

    Parameters
    ----------
    y : (n,) 0/1 human codes of the evaluated split

    Returns
    -------
    dict with ``rule``, ``f1``, ``precision``, ``recall``, ``accuracy``
    """
    # A categorical variable's sibling of this rule: :func:`majority_class_baseline`.
    y = np.asarray(y).astype(int)
    n, k = len(y), int(y.sum())
    if k == 0:
        return {"rule": "always 1", "f1": 0.0, "precision": 0.0, "recall": 0.0, "accuracy": 0.0}
    # 2k / (n + k) is 2p / (1 + p) on the counts: the same float sklearn gives for an all-1 prediction
    return {"rule": "always 1", "f1": 2 * k / (n + k), "precision": k / n, "recall": 1.0, "accuracy": k / n}


def versus_baseline(figures: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """The keys that set one label's (or class's) figures against its trivial baseline.

    Parameters
    ----------
    figures : the model's figures, with ``f1`` and ``support`` (positives in the evaluated split)
    baseline : the trivial rule's figures, with ``f1`` (e.g. :func:`always_one_baseline`)

    Returns
    -------
    dict with ``baseline``, ``f1_over_baseline`` (model F1 − baseline F1), ``beats_baseline`` and
    ``small_support`` (fewer than :data:`SMALL_SUPPORT` positives: the figures can swing widely)
    """
    gain = figures["f1"] - baseline["f1"]
    return {"baseline": baseline, "f1_over_baseline": float(gain),
            "beats_baseline": bool(gain > BASELINE_TOLERANCE),
            "small_support": bool(figures["support"] < SMALL_SUPPORT)}


def _kappa(y: np.ndarray, pred: np.ndarray) -> float | None:
    if len(np.unique(np.concatenate([y, pred]))) < 2:
        return None  # undefined when both raters use one category only
    return float(cohen_kappa_score(y, pred))


def evaluate_predictions(Y: np.ndarray, P: np.ndarray, thresholds: Sequence[float],
                         label_names: Sequence[str], *, groups: np.ndarray | None = None,
                         bootstrap: int = 0, seed: int = 42, ece_bins: int = 10,
                         Y_second: np.ndarray | None = None) -> dict[str, Any]:
    """Per-label, macro and micro figures for one split.

    Parameters
    ----------
    Y : (n, n_labels) human labels
    P : (n, n_labels) probabilities
    thresholds : (n_labels,) decision thresholds, or (n, n_labels) for per-row thresholds
    label_names : names of the label columns
    groups : (n,) group of each row; the bootstrap resamples whole groups. ``None``: single rows.
    bootstrap : number of bootstrap resamples for the ``*_ci`` intervals (0: no intervals)
    seed : seed of the bootstrap
    ece_bins : equal-width bins of the reliability curve and ECE
    Y_second : (n, n_labels) a second human coder's labels (NaN where not coded), for ``second_coder``

    Returns
    -------
    dict with keys ``labels`` ({label: figures, each with its ``baseline`` block and ``small_support``
    flag}), ``macro`` and ``micro`` (f1, precision, recall, ``baseline_f1``), ``n``,
    ``small_support_threshold`` (+ ``bootstrap`` settings when intervals were computed)
    """
    Y = np.asarray(Y).astype(int)
    T = np.broadcast_to(np.asarray(thresholds, dtype=float), np.shape(P))
    pred = (np.asarray(P) >= T).astype(int)
    labels = {name: {**label_metrics(Y[:, j], P[:, j], T[:, j]),
                     **calibration_metrics(Y[:, j], P[:, j], n_bins=ece_bins)}
              for j, name in enumerate(label_names)}
    for j, figures in enumerate(labels.values()):
        figures.update(versus_baseline(figures, always_one_baseline(Y[:, j])))
    summary = {}
    # scikit-learn reads a one-column label matrix as a binary target (macro would then average the F1 of
    # the 0s and of the 1s): pass the label indicator explicitly so one label averages as several do
    multilabel = np.c_[Y, np.zeros((len(Y), 1), int)]
    multipred = np.c_[pred, np.zeros((len(pred), 1), int)]
    cols = list(range(Y.shape[1]))
    for avg in ("macro", "micro"):
        summary[avg] = {name: float(fn(multilabel, multipred, labels=cols, average=avg, zero_division=0))
                        for name, fn in (("f1", f1_score), ("precision", precision_score),
                                         ("recall", recall_score))}
    kappas = [m["cohen_kappa"] for m in labels.values() if m["cohen_kappa"] is not None]
    summary["macro"]["cohen_kappa"] = float(np.mean(kappas)) if kappas else None
    add_baseline_summary(summary, labels, Y)
    out = {"n": int(len(Y)), "labels": labels, "small_support_threshold": SMALL_SUPPORT, **summary}
    if bootstrap and len(Y):
        add_intervals(out, bootstrap_metrics(Y, pred, groups=groups, n_boot=bootstrap, seed=seed))
    if Y_second is not None:
        add_second_coder(out, Y, pred, np.asarray(Y_second, dtype=float), label_names)
    return out


def add_baseline_summary(summary: dict[str, Any], labels: dict[str, dict[str, Any]], Y: np.ndarray) -> None:
    """Baseline F1 of the macro and micro averages, and how many labels are flagged ``small_support``.

    Both get ``baseline_f1``, ``f1_over_baseline`` and ``beats_baseline``: for ``macro`` the mean of the
    labels' always-1 F1, for ``micro`` the always-1 F1 of all (text, label) cells pooled. ``macro`` also counts
    the labels flagged ``small_support`` (``small_support_labels``) and those whose F1 does not beat their
    baseline (``labels_not_above_baseline``).
    """
    macro, micro = summary["macro"], summary["micro"]
    macro["baseline_f1"] = float(np.mean([m["baseline"]["f1"] for m in labels.values()])) if labels else 0.0
    micro["baseline_f1"] = always_one_baseline(np.ravel(Y))["f1"]
    for avg in (macro, micro):
        avg["f1_over_baseline"] = avg["f1"] - avg["baseline_f1"]
        avg["beats_baseline"] = bool(avg["f1_over_baseline"] > BASELINE_TOLERANCE)
    macro["small_support_labels"] = sum(m["small_support"] for m in labels.values())
    macro["labels_not_above_baseline"] = sum(not m["beats_baseline"] for m in labels.values())


def flagged_labels(block: dict[str, Any]) -> dict[str, list[str]]:
    """Labels of an evaluation block flagged ``small_support`` (``small``) and those whose F1 does not beat
    their baseline (``below_baseline``); none for a block written before these flags existed."""
    labels = block["labels"]
    return {"small": [lab for lab, m in labels.items() if m.get("small_support")],
            "below_baseline": [lab for lab, m in labels.items() if not m.get("beats_baseline", True)]}


def add_intervals(block: dict[str, Any], boot: dict[str, Any]) -> None:
    """Put bootstrap intervals into an evaluation block as ``<figure>_ci`` keys (labels and macro)."""
    for figures, intervals in zip(block["labels"].values(), boot["labels"]):
        figures.update({f"{k}_ci": v for k, v in intervals.items()})
    block["macro"].update({f"{k}_ci": v for k, v in boot["macro"].items()})
    block["bootstrap"] = boot["info"]


def add_second_coder(block: dict[str, Any], Y: np.ndarray, pred: np.ndarray, Y_second: np.ndarray,
                     label_names: Sequence[str]) -> None:
    """Human-vs-human agreement beside model-vs-human, on the rows the second coder coded.

    Each label with any second-coder code gets ``second_coder = {"human_vs_human": {...},
    "model_vs_human": {...}}`` (n, percent agreement, κ, α, AC1; model compared with the first coder).
    """
    for j, name in enumerate(label_names):
        coded = ~np.isnan(Y_second[:, j])
        if not coded.any():
            continue
        block["labels"][name]["second_coder"] = {
            "human_vs_human": agreement(Y[coded, j], Y_second[coded, j]),
            "model_vs_human": agreement(Y[coded, j], pred[coded, j]),
        }


def evaluate_variable(y: np.ndarray, P: np.ndarray, classes: Sequence[str], *, pred: np.ndarray | None = None,
                      groups: np.ndarray | None = None, bootstrap: int = 0, seed: int = 42, ece_bins: int = 10,
                      majority: int | np.ndarray | None = None) -> dict[str, Any]:
    """Figures of one categorical variable on one split, of the decisions ``pred`` (default: the most probable
    class).

    Parameters
    ----------
    y : (n,) human codes as class indices 0..k-1 (into ``classes``)
    P : (n, k) class probabilities (rows sum to 1), columns in the order of ``classes``
    classes : the k class names, in the model's order (``classes_``, sorted)
    pred : (n,) the decisions made, class indices (e.g. after a per-class bias, :mod:`lexcoder.decide`);
        ``None``: the most probable class of each row of ``P``
    groups : (n,) group of each row; the bootstrap resamples whole groups. ``None``: single rows.
    bootstrap : number of bootstrap resamples for the ``*_ci`` intervals (0: no intervals)
    seed : seed of the bootstrap
    ece_bins : equal-width bins of the ECE
    majority : index of the class the majority baseline answers, the most frequent one in the *training*
        split (the honest choice: a rule fixed before seeing the evaluated split), or ``(n,)`` indices, one per
        row (k-fold: :func:`fold_majorities`). ``None``: the most frequent class in ``y``.

    Returns
    -------
    dict with the fixed keys ``accuracy``, ``macro_f1``, ``weighted_f1``, ``cohen_kappa``, ``classes``,
    ``confusion`` (k × k counts, rows the human codes, columns the model's) and ``per_class`` ({class: f1,
    precision, recall, support, small_support}); and ``n``, ``krippendorff_alpha`` (nominal), ``gwet_ac1``,
    ``ece`` (of the chosen class's probability against being right), ``brier`` (sum over the classes, mean
    over the rows), ``log_loss``, ``baseline`` / ``macro_f1_over_baseline`` / ``beats_baseline``,
    ``small_support`` (classes with fewer than :data:`SMALL_SUPPORT` texts) and
    ``small_support_threshold``; with ``bootstrap``: ``accuracy_ci``, ``macro_f1_ci``, ``weighted_f1_ci``,
    ``cohen_kappa_ci``, each class's ``f1_ci``, ``precision_ci``, ``recall_ci``, and the ``bootstrap`` settings
    """
    y, P, names = _check_variable(y, P, classes)
    k, pred = len(names), _check_decisions(pred, P)
    out = {"n": int(len(y)), **class_agreement(y, pred, k), "classes": names,
           "confusion": confusion_matrix(y, pred, labels=np.arange(k)).tolist(),
           "per_class": per_class_metrics(y, pred, names),
           **probability_metrics(y, P, ece_bins=ece_bins, pred=pred)}
    baseline = majority_class_baseline(y, names, majority=majority)
    gain = out["macro_f1"] - baseline["macro_f1"]
    out.update({"baseline": baseline, "macro_f1_over_baseline": float(gain),
                "beats_baseline": bool(gain > BASELINE_TOLERANCE),
                "small_support": [c for c, m in out["per_class"].items() if m["small_support"]],
                "small_support_threshold": SMALL_SUPPORT})
    if bootstrap:
        boot = bootstrap_classes(y, pred, k, groups=groups, n_boot=bootstrap, seed=seed)
        out.update({f"{name}_ci": bounds for name, bounds in boot["overall"].items()})
        for figures, intervals in zip(out["per_class"].values(), boot["classes"]):
            figures.update({f"{name}_ci": bounds for name, bounds in intervals.items()})
        out["bootstrap"] = boot["info"]
    return out


def class_agreement(y: np.ndarray, pred: np.ndarray, k: int) -> dict[str, Any]:
    """Accuracy, macro-/weighted-F1 (over all k classes) and κ, α, AC1 of class indices ``y`` and ``pred``."""
    labels = np.arange(k)
    return {"accuracy": float(accuracy_score(y, pred)),
            "macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
            "weighted_f1": float(f1_score(y, pred, labels=labels, average="weighted", zero_division=0)),
            "cohen_kappa": _kappa(y, pred), "krippendorff_alpha": krippendorff_alpha(y, pred),
            "gwet_ac1": gwet_ac1(y, pred, categories=range(k))}


def per_class_metrics(y: np.ndarray, pred: np.ndarray, classes: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each class against the rest: F1, precision, recall, support (human codes), ``small_support`` flag."""
    precision, recall, f1, support = precision_recall_fscore_support(
        y, pred, labels=np.arange(len(classes)), zero_division=0)
    return {c: {"f1": float(f1[i]), "precision": float(precision[i]), "recall": float(recall[i]),
                "support": int(support[i]), "small_support": bool(support[i] < SMALL_SUPPORT)}
            for i, c in enumerate(classes)}


def probability_metrics(y: np.ndarray, P: np.ndarray, *, ece_bins: int = 10, pred: np.ndarray | None = None
                        ) -> dict[str, float]:
    """Calibration and proper scores of class probabilities ``P`` (n, k) against class indices ``y`` (n,).

    ``ece`` is the top-label ECE: the probability of the chosen class (``pred``, class indices (n,); default
    the most probable) against whether it is the human's; ``brier`` the multi-class Brier score (squared
    distance to the one-hot code, summed over the classes, mean over the rows: 0 best, 2 worst); ``log_loss``
    scikit-learn's, over all k classes.
    """
    k = P.shape[1]
    pred = P.argmax(axis=1) if pred is None else np.asarray(pred, dtype=int)
    correct = (pred == y).astype(float)
    return {"ece": expected_calibration_error(correct, P[np.arange(len(y)), pred], n_bins=ece_bins),
            "brier": float(np.mean(np.sum((P - np.eye(k)[y]) ** 2, axis=1))),
            "log_loss": float(log_loss(y, P, labels=np.arange(k)))}


def fold_majorities(y: np.ndarray, folds: np.ndarray, k: int) -> np.ndarray:
    """(n,) for each row, the most frequent class among the rows of the *other* folds (its fold's training rows
    in k-fold cross-validation): the honest majority baseline, fixed before seeing the row's fold."""
    out = np.empty(len(y), dtype=int)
    for fold in np.unique(folds):
        inside = folds == fold
        out[inside] = int(np.bincount(y[~inside], minlength=k).argmax()) if (~inside).any() else 0
    return out


def majority_class_baseline(y: np.ndarray, classes: Sequence[str], *, majority: int | np.ndarray | None = None
                            ) -> dict[str, Any]:
    """The trivial rule for a categorical variable: answer one class, the majority class, for every text.

    Parameters
    ----------
    y : (n,) human codes (class indices) of the evaluated split
    classes : the k class names
    majority : index of the class to answer (the training split's most frequent), or ``(n,)`` indices, one per
        row (k-fold: the most frequent class of the training folds of the row's fold,
        :func:`fold_majorities`); ``None``: the most frequent class in ``y`` (ties: the first in ``classes``)

    Returns
    -------
    dict with ``rule`` ("majority class"), ``class`` (its name; with several, the names joined by " / " in
    order of first use), ``accuracy``, ``macro_f1`` (over all k classes: the answered class's F1, 0 for the
    others, averaged)
    """
    k = len(classes)
    if majority is None:
        majority = int(np.argmax(np.bincount(y, minlength=k)))
    constant = np.broadcast_to(np.asarray(majority, dtype=int), (len(y),))
    if len(constant) and not ((constant >= 0) & (constant < k)).all():
        raise ValueError(f"majority must hold class indices in 0..{k - 1}; got {majority}.")
    answered = pd.unique(constant) if len(constant) else np.asarray([majority]).ravel()
    return {"rule": "majority class", "class": " / ".join(classes[int(c)] for c in answered),
            "accuracy": float(accuracy_score(y, constant)),
            "macro_f1": float(f1_score(y, constant, labels=np.arange(k), average="macro", zero_division=0))}


def _check_variable(y: np.ndarray, P: np.ndarray, classes: Sequence[str]
                    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``y`` as int class indices, ``P`` as a float (n, k) array, the class names as str; errors otherwise."""
    names = [str(c) for c in classes]
    y, P = np.asarray(y), np.asarray(P, dtype=float)
    if len(names) < 2 or len(set(names)) != len(names):
        raise ValueError(f"Expected two or more distinct class names; got {names}.")
    if y.ndim != 1 or P.shape != (len(y), len(names)):
        raise ValueError(f"Expected y of shape (n,) and P of shape (n, {len(names)}); got {y.shape} and {P.shape}.")
    if len(y) == 0:
        raise ValueError("No rows to evaluate: y is empty.")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= len(names):
        raise ValueError(f"y must hold class indices 0..{len(names) - 1}; got values {np.unique(y)[:10].tolist()}.")
    return y.astype(int), P, names


def _check_decisions(pred: np.ndarray | None, P: np.ndarray) -> np.ndarray:
    """The decisions as int class indices (n,), the argmax of ``P`` (n, k) when ``pred`` is None."""
    if pred is None:
        return P.argmax(axis=1)
    pred = np.asarray(pred)
    if pred.shape != (len(P),) or (len(pred) and (not np.issubdtype(pred.dtype, np.integer) or pred.min() < 0
                                                   or pred.max() >= P.shape[1])):
        raise ValueError(f"pred must hold {len(P)} class indices 0..{P.shape[1] - 1}; got shape {pred.shape}.")
    return pred.astype(int)


def evaluate_options(cfg: Config, df: pd.DataFrame, rows: np.ndarray) -> dict[str, Any]:
    """Keyword options of :func:`evaluate_predictions` for the rows ``rows`` (bool mask) of a run's table.

    Bootstrap settings come from ``[evaluate]``; the table's ``group`` column (if any) makes the bootstrap
    resample whole groups; ``<label><data.second_coder_suffix>`` columns give the second coder's labels.
    """
    second = second_coder_columns(cfg.data, df.columns)
    Y_second = None
    if second:
        Y_second = np.column_stack([_as_float(df[second[lab]]) if lab in second else np.full(len(df), np.nan)
                                    for lab in cfg.data.label_columns])[rows]
    groups = df["group"].to_numpy()[rows] if "group" in df.columns else None
    return {"groups": groups, "bootstrap": cfg.evaluate.bootstrap, "seed": cfg.evaluate.seed,
            "ece_bins": cfg.evaluate.ece_bins, "Y_second": Y_second}


def _as_float(column: pd.Series) -> np.ndarray:
    """0/1 codes as floats, NaN where a coder left the cell empty."""
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
