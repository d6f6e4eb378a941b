"""Per-label decision thresholds, chosen on the validation split only (never on test).

The decision rule everywhere in lexcoder is ``predicted = probability >= threshold``.
"""
from __future__ import annotations

import logging

import numpy as np
from sklearn.metrics import precision_recall_curve

log = logging.getLogger(__name__)


def f1_curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """F1 of the rule ``p >= t`` against ``y`` at every distinct score ``t`` (along the precision–recall curve).

    The one place lexcoder computes F1 as a function of the threshold: threshold tuning, the fine-tuned
    models' early stopping and the report's "F1 by threshold" panel all read it from here.

    Parameters
    ----------
    y : (n,) 0/1 human codes, with at least one 1
    p : (n,) probabilities (or any scores: only their order matters)

    Returns
    -------
    thresholds : (k,) the distinct scores, increasing (as :func:`sklearn.metrics.precision_recall_curve`
        gives them)
    f1 : (k,) F1 of ``p >= thresholds[i]``; 0 where precision and recall are both 0
    """
    precision, recall, thresholds = precision_recall_curve(y, p)
    denom = precision + recall
    # the curve's last point (recall 0, precision 1) has no threshold
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)[:-1]
    return thresholds, f1


def f1_optimal_threshold(y: np.ndarray, p: np.ndarray, *, default: float = 0.5) -> float:
    """The threshold that maximises F1 of ``p >= t`` against ``y`` (``default`` if ``y`` has no 1s).

    Ties are broken towards the higher threshold (fewer positives predicted, the more conservative code).
    """
    y = np.asarray(y)
    if y.sum() == 0:
        return float(default)
    thresholds, f1 = f1_curve(y, p)
    best = np.flatnonzero(f1 == f1.max())[-1]
    return float(thresholds[best])


def choose_thresholds(Y_val: np.ndarray, P_val: np.ndarray, *, method: str = "f1", fixed: float = 0.5,
                      label_names: list[str] | None = None) -> np.ndarray:
    """One threshold per label.

    Parameters
    ----------
    Y_val : (n, n_labels) human labels of the validation split
    P_val : (n, n_labels) predicted probabilities for the same rows
    method : "f1" (maximise F1 per label) or "fixed" (use ``fixed`` for every label)

    Returns
    -------
    thresholds : (n_labels,) float array
    """
    n_labels = P_val.shape[1]
    if method == "fixed":
        return np.full(n_labels, float(fixed))
    if method != "f1":
        raise ValueError(f"Unknown threshold method {method!r}; use 'f1' or 'fixed'.")
    out = np.empty(n_labels)
    for j in range(n_labels):
        if Y_val[:, j].sum() == 0:
            name = label_names[j] if label_names else j
            log.warning("Label %s has no positive in the validation split: threshold %.2f used.", name, fixed)
        out[j] = f1_optimal_threshold(Y_val[:, j], P_val[:, j], default=fixed)
    return out
