"""Design-based intervals for gold samples drawn with unequal inclusion probabilities (``lexcoder sample``).

A stratified sample (``lexcoder sample --design stratified`` or ``oversample``) draws ``n_h`` of the ``N_h``
texts of each stratum ``h`` at random; each row's inclusion probability is ``pi_h = n_h / N_h``. The
estimate of a prevalence is the *stratified* one, each stratum's mean weighted by its share of the corpus
``W_h = N_h / N`` (the same point as weighting every row by ``1 / pi``), and its variance is the sum of the
strata's variances, ``sum_h W_h^2 (1 - n_h / N_h) s_h^2 / n_h`` (each stratum a simple random sample of its
texts, finite-population corrected). ppi_py's weighted interval instead treats the weighted rows as one
sample: for a rare label the strata the design under-samples often hold no positive, their spread then
looks like 0 and that interval covered the truth in only 51-92% of oversampled samples
(``benchmarks/bench_active_learning.py --coverage``).

The rare-label repair is the one :func:`~lexcoder.estimate.intervals.ppi_mean_adjusted` makes for a simple
random sample (Agresti-Coull pseudo-rows), made per stratum: stratum ``h`` gets ``k n_h / n`` pseudo-rows
coded 1 and as many coded 0 (``k = z^2 / 2``; the pseudo-rows of all strata add up to Agresti-Coull's
``k``), each with the stratum's mean model output. A stratum whose sampled texts hold no positive thus still
contributes a spread, in proportion to how few texts were drawn from it. With one stratum this is
:func:`~lexcoder.estimate.intervals.ppi_mean_adjusted` (whose pseudo-rows carry the corpus's mean model output).

PPI++ per stratum: the residual ``y - lambda * yhat`` takes the place of ``y`` (one ``lambda``, tuned with
the inverse-probability weights as ppi_py tunes it); the corpus mean of ``yhat`` is known exactly for the
corpus the sample was drawn from.

Strata come from the gold file's :data:`~lexcoder.active.provenance.STRATUM_COLUMN` (written by
``lexcoder sample``); a gold sample with inclusion probabilities but no stratum column is taken as
stratified by its distinct inclusion probabilities, as long as each value holds at least 2 rows (otherwise,
e.g. a probability-proportional-to-size sample, the weighted Wald interval is used, with a warning).
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..active.provenance import DESIGN_COLUMN, INCLUSION_COLUMN, STRATUM_COLUMN
from .intervals import MeanCI, power_tuning_lambda

log = logging.getLogger(__name__)

#: The ``method`` an estimate from a stratified gold sample reports (with ", finite corpus" when corrected).
DESIGN_METHOD = "PPI++ (design-based: stratified, weighted by 1/inclusion probability, Agresti-Coull adjusted " \
                "per stratum"


def design_strata(gold: pd.DataFrame, weights: np.ndarray | None, name: str = "gold"
                  ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The design strata of the gold rows and their inverse inclusion probabilities, when the sample is a
    stratified one; ``(None, weights)`` otherwise.

    Parameters
    ----------
    gold : the human-coded sample (rows in the order of ``weights``)
    weights : (n,) inverse inclusion probabilities the estimate uses, or None (self-weighting sample)
    name : the gold table's name in the log

    Returns
    -------
    (strata, weights) : strata as strings, shape (n,), or None; ``weights`` as given, or ``1 / p`` from
    :data:`INCLUSION_COLUMN` for a ``lexcoder sample`` file (:data:`DESIGN_COLUMN`) with equal probabilities
    """
    if STRATUM_COLUMN in gold.columns and gold[STRATUM_COLUMN].notna().all() and gold[STRATUM_COLUMN].nunique() > 1:
        if weights is None and DESIGN_COLUMN in gold.columns and INCLUSION_COLUMN in gold.columns:
            p = pd.to_numeric(gold[INCLUSION_COLUMN], errors="coerce").to_numpy(dtype=float)
            weights = 1.0 / p if np.all((p > 0) & (p <= 1)) else None
        if weights is not None:
            return gold[STRATUM_COLUMN].astype(str).to_numpy(dtype=object), np.asarray(weights, dtype=float)
    if weights is None:
        return None, None
    # no stratum column: rows of equal inclusion probability taken as one stratum (a stratified design)
    strata = pd.Series(np.asarray(weights, dtype=float)).round(9).astype(str).to_numpy(dtype=object)
    if pd.Series(strata).value_counts().min() >= 2:
        return strata, np.asarray(weights, dtype=float)
    log.warning("%s: the inclusion probabilities form no strata of at least 2 rows each (and there is no %r "
                "column), so the design-based interval does not apply: using the weighted Wald interval, which "
                "may cover a rare label's prevalence less often than stated.", name, STRATUM_COLUMN)
    return None, weights


def stratified_mean_adjusted(y: np.ndarray, yhat: np.ndarray, yhat_corpus: np.ndarray, strata: np.ndarray,
                             weights: np.ndarray, *, alpha: float = 0.05, lam: float | None = None,
                             pseudo: float | None = None, finite_population: bool = True) -> MeanCI:
    """Stratified PPI++ estimate of a 0/1 prevalence with a per-stratum Agresti-Coull-adjusted interval.

    Parameters
    ----------
    y : (n,) human 0/1 codes of the gold rows
    yhat : (n,) model outputs for the same rows
    yhat_corpus : (N,) model outputs for every corpus row
    strata : (n,) each gold row's design stratum
    weights : (n,) inverse inclusion probabilities ``1 / pi``; a stratum's weights add up to its size
    alpha : error level: the interval targets coverage ``1 - alpha``
    lam : weight of the predictions; None tunes it (PPI++, with ``weights``), 0 gives the human codes alone
    pseudo : pseudo-rows per class over all strata (default ``z^2 / 2``), shared by the strata in
        proportion to their sampled rows
    finite_population : the gold rows were drawn from this corpus without replacement: each stratum's
        variance shrinks by ``1 - n_h / N_h`` and the corpus mean of ``yhat`` is a fixed number

    Returns
    -------
    MeanCI
        The unadjusted stratified point estimate; the interval clipped to [0, 1].
    """
    from scipy.stats import norm
    y, yhat, yhat_corpus, weights = (np.asarray(a, dtype=float) for a in (y, yhat, yhat_corpus, weights))
    z = norm.ppf(1 - alpha / 2)
    k = z * z / 2 if pseudo is None else float(pseudo)
    lam = power_tuning_lambda(y, yhat, yhat_corpus, weights=weights) if lam is None else float(lam)
    m = float(yhat_corpus.mean())
    names, codes = np.unique(np.asarray(strata, dtype=str), return_inverse=True)
    sizes = np.bincount(codes, weights=weights, minlength=len(names))  # N_h: Horvitz-Thompson stratum sizes
    share = sizes / sizes.sum()
    estimate, centre, variance = lam * m, lam * m, 0.0
    for h in range(len(names)):
        rows = codes == h
        resid = y[rows] - lam * yhat[rows]
        mean_h, var_h = _adjusted_stratum(resid, lam * float(yhat[rows].mean()), k * rows.sum() / len(y))
        fpc = max(1 - rows.sum() / sizes[h], 0.0) if finite_population else 1.0
        estimate += share[h] * float(resid.mean())
        centre += share[h] * mean_h
        variance += share[h] ** 2 * fpc * var_h
    if not finite_population:  # the corpus is itself a sample: its mean of yhat varies too
        variance += lam ** 2 * float(yhat_corpus.var()) / len(yhat_corpus)
    se = float(np.sqrt(variance))
    return MeanCI(estimate, float(max(centre - z * se, 0.0)), float(min(centre + z * se, 1.0)))


def _adjusted_stratum(resid: np.ndarray, pseudo_output: float, k: float) -> tuple[float, float]:
    """Mean and variance of the mean of one stratum's residuals after adding ``k`` pseudo-rows coded 1 and
    ``k`` coded 0 (residuals ``1 - pseudo_output`` and ``-pseudo_output``)."""
    values = np.concatenate([resid, [1 - pseudo_output, -pseudo_output]])
    w = np.concatenate([np.ones(len(resid)), [k, k]])
    mean = float(np.average(values, weights=w))
    spread = float(np.average((values - mean) ** 2, weights=w))
    return mean, spread / w.sum()
