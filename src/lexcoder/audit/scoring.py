"""Scoring (row, label) pairs by how likely the human code is wrong, from out-of-fold probabilities.

Two modes are offered (one function per mode, chosen through :data:`RANKERS`):

- ``"loss"`` (default): the out-of-fold self-confidence, i.e. the probability the model gives to the
  code the human chose (``p`` if coded 1, ``1 - p`` if coded 0); sorting it ascending is sorting by
  out-of-fold cross-entropy loss, descending.
- ``"cleanlab"``: the same score, but the queue holds the pairs that cleanlab's default confident-learning
  filter (``prune_by_noise_rate``) flags, in cleanlab's order.

Which pairs count as *issues* (the review queue, the counts in the summary) is decided by confident
learning, one label at a time: each label is its own two-class problem (coded 0 / coded 1, with
probabilities ``1 - p`` and ``p``) given to :func:`cleanlab.filter.find_label_issues`. The ``"loss"`` mode
flags cleanlab's estimate of the number of wrong codes (:func:`cleanlab.count.num_label_issues`: the
off-diagonal pairs of the confident joint whose predicted class is not the human code) with the lowest
self-confidence (cleanlab's ``low_self_confidence`` filter); the ``"cleanlab"`` mode flags cleanlab's
default set. A label coded the same way in every row has no second class to learn from and flags nothing.

This is exactly what cleanlab's multi-label ``find_multilabel_issues_per_class`` does internally (one
binary ``find_label_issues`` per class, same defaults); calling the binary function directly needs no
multi-label list format and no special case for a single label. The summary's noise estimates
(:func:`noise_estimates`) use the same per-label view but the *calibrated* confident joint, so a label's
estimated number of wrong codes and its number of flagged pairs may differ a little.

A categorical variable is one k-class problem (:func:`score_classes`, :func:`class_noise_estimates`):
the score is the out-of-fold probability of the class the human gave (ascending = by the loss
``-log p(given class)``, descending), and the same two cleanlab filters flag rows of the whole k-class
problem (cleanlab's multi-class ``find_label_issues`` on class indices 0..k-1).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..errors import ConfigError, LexcoderError


FILTER_BY = {"loss": "low_self_confidence", "cleanlab": "prune_by_noise_rate"}  # cleanlab filter per mode


def _cleanlab():
    try:
        import cleanlab.count
        import cleanlab.filter
    except ImportError:
        raise LexcoderError("The audit needs cleanlab: `pip install 'lexcoder[audit]'`.") from None
    return cleanlab.count, cleanlab.filter


def _scorable(Y: np.ndarray) -> np.ndarray:
    """Boolean ``(n_labels,)``: the labels coded 1 in some rows and 0 in others (confident learning
    needs both classes; a constant label has nothing to be wrong about)."""
    return Y.any(axis=0) & ~Y.all(axis=0)


def _binary(p: np.ndarray) -> np.ndarray:
    """One label as cleanlab's two-class problem: ``(n, 2)`` probabilities of a 0 and of a 1."""
    return np.c_[1.0 - p, p]


def self_confidence(Y: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Probability the model gives to the human code, shape ``(n, n_labels)`` (low = suspect)."""
    Y = np.asarray(Y)
    return np.where(Y == 1, P, 1.0 - P)


def _checked(Y: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    Y, P = np.asarray(Y).astype(int), np.clip(np.asarray(P, dtype=float), 1e-6, 1 - 1e-6)
    if Y.shape != P.shape or Y.ndim != 2:
        raise LexcoderError(f"Labels {Y.shape} and probabilities {P.shape} must both be (n_rows, n_labels).")
    if np.isnan(P).any():
        raise LexcoderError("Out-of-fold probabilities contain NaN: some rows were never scored.")
    return Y, P


def _flag(Y: np.ndarray, P: np.ndarray, filter_by: str) -> np.ndarray:
    """Boolean ``(n, n_labels)`` mask of flagged pairs, one label at a time; constant labels flag nothing."""
    _, cl_filter = _cleanlab()
    mask = np.zeros(Y.shape, dtype=bool)
    for j in np.flatnonzero(_scorable(Y)):
        # n_jobs=1: cleanlab would otherwise start a process pool per label (one process per physical
        # core) for two classes; the result does not depend on n_jobs
        mask[:, j] = cl_filter.find_label_issues(labels=Y[:, j], pred_probs=_binary(P[:, j]),
                                                 filter_by=filter_by, n_jobs=1)
    return mask


def rank_loss(Y: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``"loss"`` mode: score = self-confidence; flagged = cleanlab's ``low_self_confidence`` set.

    Returns
    -------
    score : (n, n_labels) float, lower = more likely a coding error
    flagged : (n, n_labels) bool
    """
    Y, P = _checked(Y, P)
    return self_confidence(Y, P), _flag(Y, P, FILTER_BY["loss"])


def rank_cleanlab(Y: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``"cleanlab"`` mode: flagged = cleanlab's default filter (``prune_by_noise_rate``).

    The score is the same self-confidence, so the queue (the flagged pairs, sorted by score) is in
    cleanlab's own order (``return_indices_ranked_by="self_confidence"``).
    """
    Y, P = _checked(Y, P)
    return self_confidence(Y, P), _flag(Y, P, FILTER_BY["cleanlab"])


RANKERS: dict[str, Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]] = {
    "loss": rank_loss, "cleanlab": rank_cleanlab}


def score_pairs(Y: np.ndarray, P: np.ndarray, *, method: str = "loss") -> tuple[np.ndarray, np.ndarray]:
    """Score every (row, label) pair with the ranking ``method`` (see :data:`RANKERS`)."""
    if method not in RANKERS:
        raise ConfigError(f"Unknown audit method {method!r}; choose one of {sorted(RANKERS)}.")
    return RANKERS[method](Y, P)


def noise_estimates(Y: np.ndarray, P: np.ndarray, label_names: Sequence[str]) -> dict[str, dict]:
    """Confident-learning estimate of how many human codes are wrong, per label.

    Uses cleanlab's calibrated confident joint of each label's two-class view (the view :func:`score_pairs`
    flags on): ``joint[i, j]`` estimates the share of all rows coded ``i`` whose true value is ``j``.
    A label coded the same way in every row gets ``None`` (and is never flagged).

    Returns
    -------
    ``{label: {...}}`` with ``estimated_noise_rate`` (share of all rows coded wrongly),
    ``estimated_wrong_1s`` (rows coded 1 that should be 0), ``estimated_wrong_0s`` (coded 0, should be 1)
    """
    Y, P = _checked(Y, P)
    count, _ = _cleanlab()
    n = len(Y)
    scorable = _scorable(Y)
    rows = {}
    for j, name in enumerate(label_names):
        if not scorable[j]:
            rows[name] = {"estimated_noise_rate": None, "estimated_wrong_1s": None, "estimated_wrong_0s": None}
            continue
        joint = count.estimate_joint(labels=Y[:, j], pred_probs=_binary(P[:, j]))
        rows[name] = {"estimated_noise_rate": float(joint[0, 1] + joint[1, 0]),
                      "estimated_wrong_1s": int(round(joint[1, 0] * n)),
                      "estimated_wrong_0s": int(round(joint[0, 1] * n))}
    return rows


def _checked_classes(y: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class indices and probabilities clipped away from 0 and renormalised (cleanlab needs rows summing
    to 1; a class a fold's model never saw has probability 0)."""
    y, P = np.asarray(y).astype(int), np.asarray(P, dtype=float)
    if y.ndim != 1 or P.ndim != 2 or len(y) != len(P):
        raise LexcoderError(f"Classes {y.shape} and probabilities {P.shape} must be (n_rows,) and (n_rows, k).")
    if np.isnan(P).any():
        raise LexcoderError("Out-of-fold probabilities contain NaN: some rows were never scored.")
    if len(y) and (y.min() < 0 or y.max() >= P.shape[1]):
        raise LexcoderError(f"Class indices must lie in 0..{P.shape[1] - 1}.")
    P = np.clip(P, 1e-6, 1.0)
    return y, P / P.sum(axis=1, keepdims=True)


def score_classes(y: np.ndarray, P: np.ndarray, *, method: str = "loss") -> tuple[np.ndarray, np.ndarray]:
    """Score every row of one categorical variable by how likely its human class is wrong.

    Parameters
    ----------
    y : (n,) the human classes as indices 0..k-1 (into the sorted classes)
    P : (n, k) out-of-fold class probabilities
    method : ``"loss"`` (flags cleanlab's ``low_self_confidence`` set) or ``"cleanlab"`` (its default
        ``prune_by_noise_rate`` set), as for 0/1 labels

    Returns
    -------
    score : (n,) float, the probability of the human class (lower = more likely a coding error)
    flagged : (n,) bool, the rows confident learning flags
    """
    if method not in FILTER_BY:
        raise ConfigError(f"Unknown audit method {method!r}; choose one of {sorted(FILTER_BY)}.")
    y, P = _checked_classes(y, P)
    score = P[np.arange(len(y)), y]
    if len(np.unique(y)) < 2:  # one class coded everywhere: nothing to be wrong about
        return score, np.zeros(len(y), dtype=bool)
    _, cl_filter = _cleanlab()
    flagged = cl_filter.find_label_issues(labels=y, pred_probs=P, filter_by=FILTER_BY[method], n_jobs=1)
    return score, np.asarray(flagged, dtype=bool)


def class_noise_estimates(y: np.ndarray, P: np.ndarray, classes: Sequence[str]) -> dict:
    """Confident-learning estimate of how many human classes are wrong in one categorical variable.

    Returns
    -------
    ``{"estimated_noise_rate": share of all rows coded with a wrong class, "estimated_wrong": {class: rows
    given that class whose true class is another}}`` (from cleanlab's calibrated confident joint); ``None``
    values when one class is coded everywhere
    """
    y, P = _checked_classes(y, P)
    if len(np.unique(y)) < 2:
        return {"estimated_noise_rate": None, "estimated_wrong": {str(c): None for c in classes}}
    count, _ = _cleanlab()
    joint = count.estimate_joint(labels=y, pred_probs=P)
    wrong = joint.sum(axis=1) - np.diag(joint)
    return {"estimated_noise_rate": float(1.0 - np.trace(joint)),
            "estimated_wrong": {str(c): int(round(w * len(y))) for c, w in zip(classes, wrong)}}
