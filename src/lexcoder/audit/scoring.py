"""Scoring (row, label) pairs by how likely the human code is wrong, from out-of-fold probabilities.

Four modes are offered (one function per mode, chosen through :data:`RANKERS`):

- ``"calibrated"`` (default): the self-confidence after per-label temperature scaling, cross-fitted
  (:func:`lexcoder.audit.ranking.calibrate`): ``sigmoid(±logit(p) / T_label)``, with ``T`` fitted on the
  other folds' rows. Within a label and fold the order is the ``"loss"`` mode's (across folds nearly so),
  the flagged set is the ``"loss"`` mode's; across labels a score means the same, so an over-confident
  label (one whose ``p ≈ 0.97`` are right only 85 % of the time) no longer floods a queue sorted by score.
- ``"loss"``: the out-of-fold self-confidence, i.e. the probability the model gives to the
  code the human chose (``p`` if coded 1, ``1 - p`` if coded 0); sorting it ascending is sorting by
  out-of-fold cross-entropy loss, descending.
- ``"cleanlab"``: the same score, but the queue holds the pairs that cleanlab's default confident-learning
  filter (``prune_by_noise_rate``) flags, in cleanlab's order.
- ``"posterior"``: the probability that the code is wrong, from cross-fitted calibrated probabilities and
  the label's confident-learning noise rates (formula in :mod:`lexcoder.audit.ranking`); the score is
  ``1 - posterior``, and the queue holds as many pairs per label as the ``"loss"`` mode. On the
  injected-flip benchmark it finds fewer flips than ``"loss"`` (``benchmarks/README.md``), so it is an
  option, not the default.

How the labels' pairs are merged into one queue (interleaved by expected errors, or by score) is the
queue's business (:mod:`lexcoder.audit.queue`).

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
from .ranking import calibrate, posterior_evidence


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


def rank_loss(Y: np.ndarray, P: np.ndarray, folds: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``"loss"`` mode: score = self-confidence; flagged = cleanlab's ``low_self_confidence`` set.

    Returns
    -------
    score : (n, n_labels) float, lower = more likely a coding error
    flagged : (n, n_labels) bool
    """
    Y, P = _checked(Y, P)
    return self_confidence(Y, P), _flag(Y, P, FILTER_BY["loss"])


def rank_cleanlab(Y: np.ndarray, P: np.ndarray, folds: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``"cleanlab"`` mode: flagged = cleanlab's default filter (``prune_by_noise_rate``).

    The score is the same self-confidence, so the queue (the flagged pairs, sorted by score) is in
    cleanlab's own order (``return_indices_ranked_by="self_confidence"``).
    """
    Y, P = _checked(Y, P)
    return self_confidence(Y, P), _flag(Y, P, FILTER_BY["cleanlab"])


def rank_posterior(Y: np.ndarray, P: np.ndarray, folds: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``"posterior"`` mode: score = 1 - P(code wrong) (:func:`lexcoder.audit.ranking.posterior_evidence`).

    ``folds``: the cross-fitting folds, so that each fold is calibrated on the others (default: 5 seeded
    random folds). Flagged: per label the same number of pairs as the ``"loss"`` mode flags, taken by the
    posterior instead of the self-confidence.
    """
    Y, P = _checked(Y, P)
    W = posterior_evidence(Y, P, noise_rates(Y, P), folds)
    flagged = np.zeros(Y.shape, dtype=bool)
    counts = _flag(Y, P, FILTER_BY["loss"]).sum(axis=0)
    for j, n in enumerate(counts):
        flagged[np.argsort(-W[:, j], kind="stable")[:n], j] = True
    return 1.0 - W, flagged


def rank_calibrated(Y: np.ndarray, P: np.ndarray, folds: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``"calibrated"`` mode: score = self-confidence of the temperature-scaled probabilities (each fold
    scaled by a temperature fitted on the other folds); flagged = the ``"loss"`` mode's set (temperature
    scaling keeps the order within a label and fold)."""
    Y, P = _checked(Y, P)
    return self_confidence(Y, calibrate(Y, P, folds, how="temperature")), _flag(Y, P, FILTER_BY["loss"])


RANKERS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "calibrated": rank_calibrated, "loss": rank_loss, "cleanlab": rank_cleanlab, "posterior": rank_posterior}
DEFAULT_METHOD = "calibrated"


def score_pairs(Y: np.ndarray, P: np.ndarray, *, method: str = DEFAULT_METHOD, folds: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Score every (row, label) pair with the ranking ``method`` (see :data:`RANKERS`).

    Returns ``(score, flagged)``, both ``(n, n_labels)``: lower score = more likely a coding error.
    ``folds`` (the cross-fitting folds) is used by ``"posterior"`` only.
    """
    if method not in RANKERS:
        raise ConfigError(f"Unknown audit method {method!r}; choose one of {sorted(RANKERS)}.")
    return RANKERS[method](Y, P, folds)


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


def noise_rates(Y: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-label noise rates from cleanlab's calibrated confident joint of each label's two-class view.

    Returns
    -------
    r0 : (n_labels,) estimated P(coded 1 | truly 0)
    r1 : (n_labels,) estimated P(coded 0 | truly 1); both clipped to [0.0001, 0.49] (a label coded the
        same way everywhere gets the lower bound)
    """
    count, _ = _cleanlab()
    Y, P = np.asarray(Y).astype(int), np.clip(np.asarray(P, dtype=float), 1e-6, 1 - 1e-6)
    r0, r1 = np.zeros(Y.shape[1]), np.zeros(Y.shape[1])
    for j in np.flatnonzero(_scorable(Y)):
        joint = count.estimate_joint(labels=Y[:, j], pred_probs=_binary(P[:, j]))  # [coded, true]
        r0[j] = joint[1, 0] / max(joint[:, 0].sum(), 1e-12)
        r1[j] = joint[0, 1] / max(joint[:, 1].sum(), 1e-12)
    return np.clip(r0, 1e-4, 0.49), np.clip(r1, 1e-4, 0.49)


def expected_errors(Y: np.ndarray, P: np.ndarray, label_names: Sequence[str]) -> dict[str, float]:
    """Confident learning's estimate of the wrong codes of each label (1s that should be 0 plus 0s that
    should be 1; :func:`noise_estimates`): the interleaving weights of :func:`lexcoder.audit.ranking.interleave`. A label
    coded the same way everywhere gets 0."""
    return {lab: float((m["estimated_wrong_0s"] or 0) + (m["estimated_wrong_1s"] or 0))
            for lab, m in noise_estimates(Y, P, label_names).items()}


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
        ``prune_by_noise_rate`` set), as for 0/1 labels; ``"calibrated"`` and ``"posterior"`` rank it as
        ``"loss"`` does (the k-class calibration and posterior are not built)

    Returns
    -------
    score : (n,) float, the probability of the human class (lower = more likely a coding error)
    flagged : (n,) bool, the rows confident learning flags
    """
    if method not in RANKERS:
        raise ConfigError(f"Unknown audit method {method!r}; choose one of {sorted(RANKERS)}.")
    method = "loss" if method in ("posterior", "calibrated") else method
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
