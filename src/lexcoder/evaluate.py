"""Per-label quality figures against the human labels (scikit-learn's metrics, not re-implemented).

Output follows the ``metrics.json`` shape fixed in DESIGN.md.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (accuracy_score, average_precision_score, cohen_kappa_score, confusion_matrix,
                             f1_score, precision_score, recall_score, roc_auc_score)


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
    }


def _kappa(y: np.ndarray, pred: np.ndarray) -> float | None:
    if len(np.unique(np.concatenate([y, pred]))) < 2:
        return None  # undefined when both raters use one category only
    return float(cohen_kappa_score(y, pred))


def evaluate_predictions(Y: np.ndarray, P: np.ndarray, thresholds: Sequence[float],
                         label_names: Sequence[str]) -> dict[str, Any]:
    """Per-label, macro and micro figures for one split.

    Parameters
    ----------
    Y : (n, n_labels) human labels
    P : (n, n_labels) probabilities
    thresholds : (n_labels,) decision thresholds, or (n, n_labels) for per-row thresholds
    label_names : names of the label columns

    Returns
    -------
    dict with keys ``labels`` ({label: figures}), ``macro`` and ``micro`` (f1, precision, recall), ``n``
    """
    Y = np.asarray(Y).astype(int)
    T = np.broadcast_to(np.asarray(thresholds, dtype=float), np.shape(P))
    pred = (np.asarray(P) >= T).astype(int)
    labels = {name: label_metrics(Y[:, j], P[:, j], T[:, j]) for j, name in enumerate(label_names)}
    summary = {}
    for avg in ("macro", "micro"):
        summary[avg] = {
            "f1": float(f1_score(Y, pred, average=avg, zero_division=0)),
            "precision": float(precision_score(Y, pred, average=avg, zero_division=0)),
            "recall": float(recall_score(Y, pred, average=avg, zero_division=0)),
        }
    kappas = [m["cohen_kappa"] for m in labels.values() if m["cohen_kappa"] is not None]
    summary["macro"]["cohen_kappa"] = float(np.mean(kappas)) if kappas else None
    return {"n": int(len(Y)), "labels": labels, **summary}
