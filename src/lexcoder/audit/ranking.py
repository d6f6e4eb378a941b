"""Scores that mean the same across labels: cross-fitted calibration, a noise-aware posterior, interleaving.

**Calibration** (:func:`calibrate`, used by the default ``"calibrated"`` ranking of
:mod:`lexcoder.audit.scoring`). The self-confidence treats "coded 0, model p = 0.97" the same on every
label, but a model that is over-confident on one label (its p = 0.97 are right 85 % of the time) floods a
queue sorted by it. Per label, the out-of-fold probabilities are mapped by a map fitted on the *other*
cross-fitting folds' rows -- a row's own code never enters the map that calibrates it (the map's one or two
parameters are fitted on rows whose models saw this row in training: a second-order effect on one
monotone curve, documented rather than removed by nested cross-fitting). ``"temperature"`` scaling,
``sigmoid(logit p / T)``, keeps the order of the self-confidences within a label and fold; ``"platt"``
(``sigmoid(a logit p + b)``) and ``"isotonic"`` also move 0- and 1-coded rows against each other.

**Posterior** (:func:`posterior_evidence`, the ``"posterior"`` ranking). With ``q = P(coded 1 | text)``
(Platt-calibrated as above) and confident learning's noise rates per label
(:func:`lexcoder.audit.scoring.noise_rates`:
``r0 = P(coded 1 | truly 0)``, ``r1 = P(coded 0 | truly 1)``, from cleanlab's calibrated confident joint),
class-conditional noise gives ``q = (1 - r1)·t + r0·(1 - t)``, so the text truly carries the label with
probability ``t = (q - r0) / (1 - r0 - r1)`` (clipped to [0.001, 0.999]), and by Bayes' rule the human
code ``y`` is wrong with probability

* ``y = 0``: ``w = r1·t / (r1·t + (1 - r0)·(1 - t))``
* ``y = 1``: ``w = r0·(1 - t) / (r0·(1 - t) + (1 - r1)·t)``.

On the injected-flip benchmark it ranks worse than the self-confidence (the clipped ``t`` ties the many
texts with ``q`` near ``r0``; ``benchmarks/README.md``), so it is an option, not the default.

**Interleaving** (:func:`interleave`, the default queue order). Labels take turns: label ``j`` with ``E_j``
expected wrong codes (:func:`lexcoder.audit.queue.interleave_weights`: the sum of the calibrated
probabilities that its codes are wrong) holds the places ``(r + 1/2) / E_j`` for its ``r``-th pair
(Sainte-Laguë apportionment), so any top ``N`` holds about ``N·E_j / ΣE`` pairs of label ``j``. ``quota``
caps the pairs per label (:func:`apply_quota`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import ConfigError

CALIBRATIONS = ("temperature", "platt", "isotonic")
_EPS = 1e-3


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _fit_map(p: np.ndarray, y: np.ndarray, how: str):
    """A monotone map p -> P(y = 1 | p) fitted on (p, y); a one-class y maps to its class rate."""
    if y.min() == y.max():
        rate = float(y.mean())
        return lambda x: np.full(len(x), rate)
    if how == "temperature":
        return _temperature_map(p, y)
    if how == "isotonic":
        from sklearn.isotonic import IsotonicRegression
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
        return iso.predict
    from sklearn.linear_model import LogisticRegression
    platt = LogisticRegression(C=1e4).fit(_logit(p)[:, None], y)
    return lambda x: platt.predict_proba(_logit(x)[:, None])[:, 1]


def _temperature_map(p: np.ndarray, y: np.ndarray):
    """Temperature scaling: p -> sigmoid(logit(p) / T), T fitted by log loss on (p, y).

    One parameter and no shift: ``logit p`` keeps its sign, so "coded 1, p" and "coded 0, 1 - p" stay
    in the same order within a label while an over- or under-confident label is brought to scale.
    """
    from scipy.optimize import minimize_scalar
    z = _logit(p)

    def loss(log_t: float) -> float:
        q = np.clip(1 / (1 + np.exp(-z / np.exp(log_t))), 1e-12, 1 - 1e-12)
        return -float(np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))
    t = float(np.exp(minimize_scalar(loss, bounds=(-3, 3), method="bounded").x))
    return lambda x: 1 / (1 + np.exp(-_logit(x) / t))


def calibrate(Y: np.ndarray, P: np.ndarray, folds: np.ndarray | None = None, *, how: str = "platt",
              seed: int = 0) -> np.ndarray:
    """Cross-fitted calibration of out-of-fold probabilities, label by label.

    Parameters
    ----------
    Y : (n, n_labels) 0/1 human codes
    P : (n, n_labels) out-of-fold probabilities
    folds : (n,) the cross-fitting folds (any values, e.g. -1 for held-out rows); each fold's rows are
        calibrated by a map fitted on all other rows. Default: 5 seeded random folds.
    how : ``"temperature"`` (``sigmoid(logit p / T)``: one parameter, the order of the self-confidences
        within a label is kept), ``"platt"`` (logistic regression on ``logit p``) or ``"isotonic"`` (a
        step function; :func:`posterior_evidence` breaks its ties by the self-confidence)

    Returns
    -------
    Q : (n, n_labels) calibrated probabilities that the human codes 1
    """
    if how not in CALIBRATIONS:
        raise ConfigError(f"Unknown calibration {how!r}; choose one of {', '.join(CALIBRATIONS)}.")
    Y, P = np.asarray(Y).astype(int), np.asarray(P, dtype=float)
    if folds is None:
        folds = np.random.default_rng(seed).integers(0, 5, len(Y))
    folds = np.asarray(folds)
    Q = np.empty_like(P)
    for f in np.unique(folds):
        part = folds == f
        for j in range(Y.shape[1]):
            Q[part, j] = _fit_map(P[~part, j], Y[~part, j], how)(P[part, j]) if (~part).any() else P[part, j]
    return Q


def posterior_wrong(Y: np.ndarray, Q: np.ndarray, r0: np.ndarray, r1: np.ndarray) -> np.ndarray:
    """(n, n_labels) probability that each human code is wrong (the formula in the module docstring).

    Parameters
    ----------
    Y : (n, n_labels) 0/1 human codes
    Q : (n, n_labels) calibrated P(coded 1 | text) (:func:`calibrate`)
    r0, r1 : (n_labels,) noise rates (:func:`lexcoder.audit.scoring.noise_rates`)
    """
    Y = np.asarray(Y).astype(int)
    t = np.clip((Q - r0) / (1 - r0 - r1), _EPS, 1 - _EPS)  # P(truly 1 | text)
    wrong0 = r1 * t / (r1 * t + (1 - r0) * (1 - t))
    wrong1 = r0 * (1 - t) / (r0 * (1 - t) + (1 - r1) * t)
    return np.where(Y == 1, wrong1, wrong0)


def posterior_evidence(Y: np.ndarray, P: np.ndarray, rates: tuple[np.ndarray, np.ndarray],
                       folds: np.ndarray | None = None, *, calibration: str = "platt") -> np.ndarray:
    """Calibrate and return the posterior that each code is wrong ``(n, n_labels)``, given the noise rates
    ``rates = (r0, r1)`` (:func:`lexcoder.audit.scoring.noise_rates`).

    Ties (isotonic calibration makes steps) are broken by the self-confidence, so the order within a step
    is the model's own.
    """
    Y, P = np.asarray(Y).astype(int), np.clip(np.asarray(P, dtype=float), 1e-6, 1 - 1e-6)
    W = posterior_wrong(Y, calibrate(Y, P, folds, how=calibration), *rates)
    if calibration == "isotonic":  # a tiny, order-only nudge: lower self-confidence, higher w
        W = W + 1e-9 * (1 - np.where(Y == 1, P, 1 - P))
    return W


def interleave(labels: np.ndarray, evidence: np.ndarray, weights: Mapping[int, float] | np.ndarray) -> np.ndarray:
    """Order candidate pairs so that labels take turns, in proportion to their expected errors.

    Parameters
    ----------
    labels : (m,) label index of each candidate pair
    evidence : (m,) higher = more likely wrong (the order within a label)
    weights : expected wrong codes ``E_j`` per label index (a label with weight 0 comes last)

    Returns
    -------
    (m,) positions into the candidates, first = first in the queue. Label ``j``'s ``r``-th pair (0-based,
    by ``evidence``) gets the place ``(r + 1/2) / E_j``; equal places go to the stronger evidence.
    """
    labels, evidence = np.asarray(labels), np.asarray(evidence, dtype=float)
    within = np.empty(len(labels))
    for j in np.unique(labels):
        idx = np.flatnonzero(labels == j)
        within[idx[np.argsort(-evidence[idx], kind="stable")]] = np.arange(len(idx))
    w = np.asarray([weights[j] for j in labels], dtype=float) if len(labels) else np.zeros(0)
    place = np.where(w > 0, (within + 0.5) / np.maximum(w, 1e-12), np.inf)
    return np.lexsort((-evidence, place))


def apply_quota(labels: Sequence[str], quota: int | Mapping[str, int] | None) -> np.ndarray:
    """Boolean mask keeping, in the given order, at most ``quota`` pairs per label.

    ``quota``: one cap for every label, or ``{label: cap}`` (labels not named are not capped).
    """
    labels = np.asarray(labels, dtype=object)
    if quota is None:
        return np.ones(len(labels), dtype=bool)
    caps = quota if isinstance(quota, Mapping) else {lab: quota for lab in set(labels)}
    seen: dict[str, int] = {}
    keep = np.ones(len(labels), dtype=bool)
    for i, lab in enumerate(labels):
        seen[lab] = seen.get(lab, 0) + 1
        keep[i] = lab not in caps or seen[lab] <= caps[lab]
    return keep


def check_quota(quota: int | Mapping[str, int] | None, names: Sequence[str]) -> None:
    """Refuse a negative cap or a cap on a label the run does not have (with the run's labels listed)."""
    if quota is None:
        return
    caps = quota if isinstance(quota, Mapping) else {"every label": quota}
    for lab, cap in caps.items():
        if isinstance(quota, Mapping) and lab not in names:
            raise ConfigError(f"quota names {lab!r}, which is not one of the run's labels or variables: "
                              f"{', '.join(names)}.")
        if not isinstance(cap, (int, np.integer)) or isinstance(cap, bool) or cap < 0:
            raise ConfigError(f"quota for {lab} must be a whole number of rows >= 0 (got {cap!r}).")
