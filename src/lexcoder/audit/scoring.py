"""Scoring (row, label) pairs by how likely the human code is wrong, from out-of-fold probabilities.

Two modes are offered (one function per mode, chosen through :data:`RANKERS`):

- ``"loss"`` (default): the out-of-fold self-confidence, i.e. the probability the model gives to the
  code the human chose (``p`` if coded 1, ``1 - p`` if coded 0); sorting it ascending is sorting by
  out-of-fold cross-entropy loss, descending.
- ``"cleanlab"``: the same score, but the queue holds the pairs that cleanlab's default confident-learning
  filter (``prune_by_noise_rate``) flags, in cleanlab's order.

Which pairs count as *issues* (the review queue, the counts in the summary) is decided by confident
learning: per label, cleanlab estimates how many codes are wrong (calibrated confident joint) and the
``"loss"`` mode flags that many pairs with the lowest self-confidence (cleanlab's ``low_self_confidence``
filter); the ``"cleanlab"`` mode flags cleanlab's default set.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..errors import ConfigError, LexcoderError


def _cleanlab():
    try:
        import cleanlab.count
        import cleanlab.multilabel_classification.filter as mlfilter
    except ImportError:
        raise LexcoderError("The audit needs cleanlab: `pip install 'lexcoder[audit]'`.") from None
    return cleanlab.count, mlfilter


def _as_lists(Y: np.ndarray) -> list[list[int]]:
    """cleanlab's multi-label format: the list of positive label indices per row."""
    return [list(np.flatnonzero(row)) for row in np.asarray(Y)]


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
    """Boolean ``(n, n_labels)`` mask of flagged pairs; labels cleanlab cannot handle flag nothing."""
    _, mlfilter = _cleanlab()
    mask = np.zeros(Y.shape, dtype=bool)
    ok = (Y.sum(axis=0) > 0) & (Y.sum(axis=0) < len(Y))
    if ok.sum() >= 2:
        mask[:, ok] = mlfilter.find_multilabel_issues_per_class(
            labels=_as_lists(Y[:, ok]), pred_probs=P[:, ok], filter_by=filter_by)
    else:  # cleanlab's multi-label code needs two labels: score a lone label as two identical ones
        for j in np.flatnonzero(ok):
            mask[:, j] = mlfilter.find_multilabel_issues_per_class(
                labels=_as_lists(np.c_[Y[:, j], Y[:, j]]), pred_probs=np.c_[P[:, j], P[:, j]],
                filter_by=filter_by)[:, 0]
    return mask


def rank_loss(Y: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``"loss"`` mode: score = self-confidence; flagged = cleanlab's ``low_self_confidence`` set.

    Returns
    -------
    score : (n, n_labels) float, lower = more likely a coding error
    flagged : (n, n_labels) bool
    """
    Y, P = _checked(Y, P)
    return self_confidence(Y, P), _flag(Y, P, "low_self_confidence")


def rank_cleanlab(Y: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``"cleanlab"`` mode: flagged = cleanlab's default filter (``prune_by_noise_rate``).

    The score is the same self-confidence, so the queue (the flagged pairs, sorted by score) is in
    cleanlab's own order (``return_indices_ranked_by="self_confidence"``).
    """
    Y, P = _checked(Y, P)
    return self_confidence(Y, P), _flag(Y, P, "prune_by_noise_rate")


RANKERS: dict[str, Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]] = {
    "loss": rank_loss, "cleanlab": rank_cleanlab}


def score_pairs(Y: np.ndarray, P: np.ndarray, *, method: str = "loss") -> tuple[np.ndarray, np.ndarray]:
    """Score every (row, label) pair with the ranking ``method`` (see :data:`RANKERS`)."""
    if method not in RANKERS:
        raise ConfigError(f"Unknown audit method {method!r}; choose one of {sorted(RANKERS)}.")
    return RANKERS[method](Y, P)


def noise_estimates(Y: np.ndarray, P: np.ndarray, label_names: Sequence[str]) -> dict[str, dict]:
    """Confident-learning estimate of how many human codes are wrong, per label.

    Uses cleanlab's calibrated confident joint (one-vs-rest per label): ``joint[c, i, j]`` estimates
    the share of rows coded ``i`` whose true value is ``j``.

    Returns
    -------
    ``{label: {...}}`` with ``estimated_noise_rate`` (share of all rows coded wrongly),
    ``estimated_wrong_1s`` (rows coded 1 that should be 0), ``estimated_wrong_0s`` (coded 0, should be 1)
    """
    Y, P = _checked(Y, P)
    count, _ = _cleanlab()
    n = len(Y)
    rows = {}
    for j, name in enumerate(label_names):
        y = Y[:, j]
        if y.min() == y.max():
            rows[name] = {"estimated_noise_rate": None, "estimated_wrong_1s": None, "estimated_wrong_0s": None}
            continue
        joint = count.estimate_joint(labels=y, pred_probs=np.c_[1 - P[:, j], P[:, j]])
        rows[name] = {"estimated_noise_rate": float(joint[0, 1] + joint[1, 0]),
                      "estimated_wrong_1s": int(round(joint[1, 0] * n)),
                      "estimated_wrong_0s": int(round(joint[0, 1] * n))}
    return rows
