"""Estimates and confidence intervals of a mean (a prevalence) from a gold sample and model outputs.

Plain functions over arrays: ``y`` holds the human codes of the gold sample, ``yhat`` the model's outputs
for the same rows and ``yhat_corpus`` the model's outputs for every corpus row. Point estimates and the
power-tuning weight are those of ``ppi_py`` (Angelopoulos, Duchi & Zrnic 2023, arXiv:2311.01453).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import LexcoderError

#: ``naive``: predictions only; ``classical``: gold sample only (CLT); ``agresti_coull``: gold sample only,
#: adjusted; ``ppi`` / ``ppi++``: ppi_py's intervals (lambda = 1 / tuned); ``ppi++_ac``: PPI++ with the
#: Agresti-Coull-style adjustment of :func:`ppi_mean_adjusted` (lexcoder's default). The adjusted methods
#: estimate the prevalence of the given corpus (finite-population correction), the others as ppi_py does.
METHODS = ("naive", "classical", "agresti_coull", "ppi", "ppi++", "ppi++_ac")


@dataclass(frozen=True)
class MeanCI:
    """A point estimate with its (1 - alpha) confidence interval ``[low, high]``."""

    estimate: float
    low: float
    high: float


def _ppi():
    try:
        import ppi_py
    except ImportError as err:  # pragma: no cover - ppi-python comes with the [estimate] extra
        raise LexcoderError("Estimates with confidence intervals need the ppi-python package: "
                            "pip install 'lexcoder[estimate]'") from err
    return ppi_py


def _weights(w: np.ndarray | None) -> np.ndarray | None:
    return None if w is None else np.asarray(w, dtype=float)


def ppi_mean(y: np.ndarray, yhat: np.ndarray, yhat_corpus: np.ndarray, *, alpha: float = 0.05,
             weights: np.ndarray | None = None, lam: float | None = None) -> MeanCI:
    """Prediction-powered estimate of the mean of ``y`` over the corpus, with ppi_py's Wald interval.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Human codes (0/1) of the gold sample.
    yhat : np.ndarray, shape (n,)
        Model outputs (probabilities or 0/1 codes) for the same gold rows.
    yhat_corpus : np.ndarray, shape (N,)
        Model outputs for every corpus row.
    alpha : float, default 0.05
        Error level: the interval targets coverage ``1 - alpha``.
    weights : np.ndarray of shape (n,), optional
        Inverse inclusion probabilities of the gold rows (any scale); None for a uniform random sample.
    lam : float, optional
        Weight of the predictions: None estimates it from the data (PPI++, ppi_py's rule), 1 is plain
        PPI, 0 the gold sample alone; a given value (e.g. one weight shared by the classes of a
        variable, :func:`power_tuning_lambda`) is used as it is.

    Returns
    -------
    MeanCI
        ``ppi_py.ppi_mean_pointestimate`` and ``ppi_py.ppi_mean_ci``.
    """
    ppi = _ppi()
    y, yhat, yhat_corpus = (np.asarray(a, dtype=float) for a in (y, yhat, yhat_corpus))
    w = _weights(weights)
    est = ppi.ppi_mean_pointestimate(y, yhat, yhat_corpus, lam=lam, w=w)
    low, high = ppi.ppi_mean_ci(y, yhat, yhat_corpus, alpha=alpha, lam=lam, w=w)
    return MeanCI(float(np.squeeze(est)), float(np.squeeze(low)), float(np.squeeze(high)))


def classical_mean(y: np.ndarray, *, alpha: float = 0.05, weights: np.ndarray | None = None) -> MeanCI:
    """Human-only estimate: the (weighted) mean of the gold sample with its CLT interval (ppi_py's baseline).

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Human codes (0/1) of the gold sample.
    alpha : float, default 0.05
        Error level: the interval targets coverage ``1 - alpha``.
    weights : np.ndarray of shape (n,), optional
        Inverse inclusion probabilities of the gold rows (any scale).

    Returns
    -------
    MeanCI
    """
    ppi = _ppi()
    y = np.asarray(y, dtype=float)
    w = _weights(weights)
    est = float(np.average(y, weights=w))
    low, high = ppi.classical_mean_ci(y, w=w, alpha=alpha)
    return MeanCI(est, float(low), float(high))


def naive_mean(yhat_corpus: np.ndarray, *, alpha: float = 0.05) -> MeanCI:
    """Predictions-only estimate: the model's mean over the corpus, with a CLT interval that ignores its errors.

    Parameters
    ----------
    yhat_corpus : np.ndarray, shape (N,)
        Model outputs (0/1 codes or probabilities) for every corpus row.
    alpha : float, default 0.05
        Error level.

    Returns
    -------
    MeanCI
        Biased wherever the model errs: shown for comparison, never as the answer.
    """
    ppi = _ppi()
    yhat_corpus = np.asarray(yhat_corpus, dtype=float)
    low, high = ppi.classical_mean_ci(yhat_corpus, alpha=alpha)
    return MeanCI(float(yhat_corpus.mean()), float(low), float(high))


def interval(method: str, y: np.ndarray, yhat: np.ndarray, yhat_corpus: np.ndarray, *, alpha: float = 0.05,
             weights: np.ndarray | None = None) -> MeanCI:
    """The estimate and interval of one of :data:`METHODS` from one gold sample.

    Parameters
    ----------
    method : {"naive", "classical", "agresti_coull", "ppi", "ppi++", "ppi++_ac"}
        See :data:`METHODS`.
    y, yhat, yhat_corpus, alpha : see :func:`ppi_mean`.
    weights : np.ndarray of shape (n,), optional
        Inverse inclusion probabilities; used by ``classical``, ``ppi`` and ``ppi++`` only (the adjusted
        methods assume a uniform random sample).

    Returns
    -------
    MeanCI

    Raises
    ------
    LexcoderError
        If ``method`` is not one of :data:`METHODS`.
    """
    if method == "naive":
        return naive_mean(yhat_corpus, alpha=alpha)
    if method == "classical":
        return classical_mean(y, alpha=alpha, weights=weights)
    if method == "agresti_coull":
        return ppi_mean_adjusted(y, yhat, yhat_corpus, alpha=alpha, lam=0.0, finite_population=True)
    if method == "ppi++_ac":
        return ppi_mean_adjusted(y, yhat, yhat_corpus, alpha=alpha, finite_population=True)
    if method in ("ppi", "ppi++"):
        return ppi_mean(y, yhat, yhat_corpus, alpha=alpha, weights=weights, lam=None if method == "ppi++" else 1.0)
    raise LexcoderError(f"Unknown estimation method {method!r}; choose one of {METHODS}.")


def power_tuning_lambda(y: np.ndarray, yhat: np.ndarray, yhat_corpus: np.ndarray, *,
                        weights: np.ndarray | None = None) -> float:
    """PPI++'s variance-minimising weight of the predictions, clipped to [0, 1] (as ``ppi_py`` computes it).

    ``lambda = cov(y, yhat) / ((1 + n/N) var(yhat))``, with the covariance from the gold sample and the
    variance over the gold and corpus predictions together. With several columns (the class indicators
    of a categorical variable), one ``lambda`` minimises the *sum* of the columns' variances: covariances
    and variances are summed over the columns (ppi_py's ``lam_optim_mode="overall"``, its default for a
    d-dimensional mean).

    Parameters
    ----------
    y : np.ndarray of float, shape (n,) or (n, d)
        Human codes of the gold sample.
    yhat : np.ndarray of float, same shape as ``y``
        Model outputs for the same rows.
    yhat_corpus : np.ndarray of float, shape (N,) or (N, d)
        Model outputs for every corpus row.
    weights : np.ndarray of shape (n,), optional
        Inverse inclusion probabilities of the gold rows (any scale), as ppi_py weighs them.

    Returns
    -------
    float
        In [0, 1]; 0 when the predictions do not vary.
    """
    y, yhat, yhat_corpus = (np.asarray(a, dtype=float).reshape(len(a), -1) for a in (y, yhat, yhat_corpus))
    n, big_n = len(y), len(yhat_corpus)
    w = np.ones((n, 1)) if weights is None else (np.asarray(weights, float) / np.sum(weights) * n)[:, None]
    # ppi_py's gradients at the lambda = 1 estimate; without weights the centre cancels out
    centre = yhat_corpus.mean(0) + (w * (y - yhat)).mean(0)
    grads, grads_hat = w * (y - centre), w * (yhat - centre)
    cov = float(np.sum(np.mean((grads - grads.mean(0)) * (grads_hat - grads_hat.mean(0)), axis=0)))
    var = float(np.sum(np.var(np.concatenate([grads_hat, yhat_corpus - centre]), axis=0, ddof=1)))
    if var <= 0:
        return 0.0
    return float(np.clip(cov / ((1 + n / big_n) * var), 0.0, 1.0))


def ppi_mean_adjusted(y: np.ndarray, yhat: np.ndarray, yhat_corpus: np.ndarray, *, alpha: float = 0.05,
                      lam: float | None = None, pseudo: float | None = None,
                      finite_population: bool = False) -> MeanCI:
    """PPI++ estimate of a 0/1 prevalence with an Agresti-Coull-style interval that stays valid for rare labels.

    ppi_py's (Wald) interval plugs in the gold sample's spread of ``y - lambda * yhat``; when the sample
    holds only a handful of positives that spread is underestimated and the interval under-covers (the
    same failure as the textbook Wald interval for a proportion). As Agresti and Coull (1998) do for a
    proportion, the interval is computed after adding ``pseudo`` rows coded 1 and as many coded 0 to the
    gold sample, each with the corpus-mean prediction as its model output; its centre moves accordingly.
    The point estimate is the unadjusted PPI++ estimate. With ``lam = 0`` the interval is the
    Agresti-Coull interval of the gold sample; with ``pseudo = 0`` it is ppi_py's ``ppi_mean_ci``.
    (Hand-written: no library offers this adjustment.)

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Human 0/1 codes of a uniform random gold sample of the corpus.
    yhat : np.ndarray, shape (n,)
        Model outputs for the same rows.
    yhat_corpus : np.ndarray, shape (N,)
        Model outputs for every corpus row.
    alpha : float, default 0.05
        Error level: the interval targets coverage ``1 - alpha``.
    lam : float, optional
        Weight of the predictions: None estimates it (:func:`power_tuning_lambda`, PPI++), 1 is plain
        PPI, 0 the gold sample alone.
    pseudo : float, optional
        Pseudo-rows added per class; default ``z^2 / 2`` (about 2 for alpha = 0.05).
    finite_population : bool, default False
        True: the estimand is the prevalence in *this* corpus and the gold rows were drawn from it without
        replacement; the corpus mean of ``yhat`` is then a fixed number, and the variance of the
        gold-sample correction shrinks by ``1 - n/N`` (finite-population correction). False treats the
        corpus as a sample from a larger population, as ppi_py does.

    Returns
    -------
    MeanCI
        The interval is clipped to [0, 1]; the estimate is not.
    """
    from scipy.stats import norm
    y, yhat, yhat_corpus = (np.asarray(a, dtype=float) for a in (y, yhat, yhat_corpus))
    z = norm.ppf(1 - alpha / 2)
    k = z * z / 2 if pseudo is None else float(pseudo)
    lam = power_tuning_lambda(y, yhat, yhat_corpus) if lam is None else float(lam)
    m = float(yhat_corpus.mean())
    estimate = lam * m + float(np.mean(y - lam * yhat))
    resid = np.concatenate([y - lam * yhat, [1 - lam * m, -lam * m]])
    w = np.concatenate([np.ones(len(y)), [k, k]])
    centre = float(np.average(resid, weights=w))
    spread = float(np.average((resid - centre) ** 2, weights=w))
    if finite_population:
        se = np.sqrt(max(1 - len(y) / len(yhat_corpus), 0.0) * spread / w.sum())
    else:
        se = np.sqrt(lam ** 2 * yhat_corpus.var() / len(yhat_corpus) + spread / w.sum())
    mid = lam * m + centre
    return MeanCI(estimate, float(max(mid - z * se, 0.0)), float(min(mid + z * se, 1.0)))
