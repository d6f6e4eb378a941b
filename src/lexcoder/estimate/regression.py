"""Regression of or on predicted labels (PPI++), with covariates observed for every text.

:func:`ppi_glm` is ppi_py's PPI++ OLS / logistic algorithm in vectorised numpy, hand-written because
ppi_py compiles numba loops on every start (20-40 s); the tests check the results are identical. It
also handles predicted *covariates*, which ppi_py does not.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit
from scipy.stats import norm

from ..errors import DataError, LexcoderError, format_rows
from .tables import YhatKind, inverse_probability_weights, match_gold, require_columns

RegressionKind = Literal["ols", "logistic"]


def design_matrix(frame: pd.DataFrame, covariates: list[str], *, levels: dict | None = None
                  ) -> tuple[np.ndarray, list[str], dict]:
    """Intercept + covariates; text columns become 0/1 indicators (the first level is the reference).

    Parameters
    ----------
    frame : pd.DataFrame
        Holds the ``covariates`` columns.
    covariates : list of str
        Columns entering the model: numeric ones as they are, all others as indicators.
    levels : dict, optional
        ``{column: sorted levels}`` from an earlier call; pass the corpus's levels back so that the gold
        rows are coded exactly like the corpus (a column listed here is always categorical).

    Returns
    -------
    x : np.ndarray, shape (n, d)
        The design matrix, intercept first.
    names : list of str
        The d term names (``intercept``, ``<column>``, ``<column>[<level>]``).
    levels : dict
        ``levels`` with the categorical columns seen here added.
    """
    levels = dict(levels or {})
    parts, names = [np.ones((len(frame), 1))], ["intercept"]
    for col in covariates:
        values = frame[col]
        numeric = pd.to_numeric(values, errors="coerce")
        if col not in levels and numeric.notna().all():
            parts.append(numeric.to_numpy(float)[:, None])
            names.append(col)
            continue
        cats = levels.setdefault(col, sorted(values.dropna().astype(str).unique()))
        for cat in cats[1:]:
            parts.append((values.astype(str) == cat).to_numpy(float)[:, None])
            names.append(f"{col}[{cat}]")
    return np.hstack(parts), names, levels


def ppi_glm(x: np.ndarray, y: np.ndarray, yhat: np.ndarray, x_corpus: np.ndarray, yhat_corpus: np.ndarray, *,
            xhat: np.ndarray | None = None, kind: RegressionKind = "ols", alpha: float = 0.05,
            lam: float | None = None, weights: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PPI++ regression coefficients with Wald intervals.

    With predictions only in the outcome (``xhat`` None) this is the algorithm of ``ppi_py.ppi_ols_ci`` /
    ``ppi_py.ppi_logistic_ci``. With predicted covariates (``xhat``: the gold rows' design built from
    model outputs), it minimises the same PPI++ objective,
    ``lam * L(corpus, predicted) + L(gold, true) - lam * L(gold, predicted)``, with the same variance
    and choice of ``lam`` (Angelopoulos, Duchi & Zrnic 2023).

    Parameters
    ----------
    x : np.ndarray, shape (n, d)
        Design of the gold rows from human codes.
    y : np.ndarray, shape (n,)
        Outcome of the gold rows (human codes, or the observed outcome).
    yhat : np.ndarray, shape (n,)
        Outcome of the gold rows from model outputs (equal to ``y`` for an observed outcome).
    x_corpus : np.ndarray, shape (N, d)
        Design of the corpus (from model outputs).
    yhat_corpus : np.ndarray, shape (N,)
        Outcome of the corpus (from model outputs, or observed).
    xhat : np.ndarray of shape (n, d), optional
        Design of the gold rows from model outputs; default ``x`` (no predicted covariate).
    kind : {"ols", "logistic"}, default "ols"
        Linear (probability) model or logistic regression (0/1 outcome).
    alpha : float, default 0.05
        Error level: (1 - alpha) intervals.
    lam : float, optional
        Weight of the predictions: None estimates it (PPI++), 1 is PPI, 0 the classical estimate.
    weights : np.ndarray of shape (n,), optional
        Inverse inclusion probabilities of the gold rows (any scale).

    Returns
    -------
    estimate, low, high : np.ndarray, each of shape (d,)

    Raises
    ------
    LexcoderError
        If ``kind`` is not "ols" or "logistic".
    numpy.linalg.LinAlgError
        If the gold rows cannot identify the coefficients (singular Hessian).
    """
    if kind not in ("ols", "logistic"):
        raise LexcoderError(f"Regression kind must be 'ols' or 'logistic', not {kind!r}.")
    n, big_n, d = len(y), len(yhat_corpus), x.shape[1]
    w = np.ones(n) if weights is None else np.asarray(weights, float) / np.sum(weights) * n
    data = _GlmData(x, y, x if xhat is None else xhat, yhat, x_corpus, yhat_corpus, w, kind)
    theta = data.point(1.0 if lam is None else lam)
    if lam is None:  # ppi_py's *_ci: lambda from the lambda=1 fit, then once more from the refit
        for _ in range(2):
            lam = _glm_lambda(*data.stats(theta, True))
            theta = data.point(lam)
    g, gh, ghu, inv_h = data.stats(theta, lam != 0)
    var_u = np.cov(lam * ghu.T).reshape(d, d)
    var = np.cov(g.T - lam * gh.T).reshape(d, d)
    sigma = inv_h @ (n / big_n * var_u + var) @ inv_h
    half = norm.ppf(1 - alpha / 2) * np.sqrt(np.diag(sigma) / n)
    return theta, theta - half, theta + half


def _wls(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted least squares coefficients."""
    sw = np.sqrt(w)
    return np.linalg.lstsq(x * sw[:, None], y * sw, rcond=None)[0]


@dataclass
class _GlmData:
    """Gold rows (true ``x, y``; predicted ``xh, yh``), corpus rows (predicted ``xu, yu``), weights, family."""

    x: np.ndarray
    y: np.ndarray
    xh: np.ndarray
    yh: np.ndarray
    xu: np.ndarray
    yu: np.ndarray
    w: np.ndarray
    kind: str

    def mean(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        return x @ theta if self.kind == "ols" else expit(x @ theta)

    def point(self, lam: float) -> np.ndarray:
        """The PPI++ point estimate for a fixed ``lam`` (as ppi_py computes it when ``xh`` is ``x``)."""
        if self.kind == "ols" and self.xh is self.x:
            return _wls(self.xu, lam * self.yu, np.ones(len(self.yu))) + _wls(self.x, self.y - lam * self.yh, self.w)
        if self.kind == "ols":  # normal equations of the PPI++ objective
            n, big_n = len(self.y), len(self.yu)
            gram = lambda a, b, w: (a * w[:, None]).T @ b  # noqa: E731
            hess = lam * gram(self.xu, self.xu, np.ones(big_n)) / big_n + (
                gram(self.x, self.x, self.w) - lam * gram(self.xh, self.xh, self.w)) / n
            rhs = lam * self.xu.T @ self.yu / big_n + (
                self.x.T @ (self.w * self.y) - lam * self.xh.T @ (self.w * self.yh)) / n
            return np.linalg.solve(hess, rhs)
        return self._logistic_point(lam)

    def _logistic_point(self, lam: float) -> np.ndarray:
        n, big_n, w = len(self.y), len(self.yu), self.w

        def nll(x, y, t, weights):
            z = x @ t
            return np.sum(weights * (-y * z + np.logaddexp(0, z)))  # logaddexp(0, z) = log(1 + e^z), stable

        def loss(t):
            return (lam / big_n * nll(self.xu, self.yu, t, 1.0) - lam / n * nll(self.xh, self.yh, t, w)
                    + nll(self.x, self.y, t, w) / n)

        def grad(t):
            return (lam / big_n * self.xu.T @ (expit(self.xu @ t) - self.yu)
                    - lam / n * self.xh.T @ (w * (expit(self.xh @ t) - self.yh))
                    + self.x.T @ (w * (expit(self.x @ t) - self.y)) / n)

        return minimize(loss, np.zeros(self.x.shape[1]), jac=grad, method="L-BFGS-B", tol=1e-15,
                        options={"ftol": 1e-15}).x

    def stats(self, theta: np.ndarray, use_corpus: bool):
        """Per-row gradients (gold true, gold predicted, corpus predicted) and the inverse Hessian."""
        n, big_n = len(self.y), len(self.yu)
        mu, mu_h, mu_u = self.mean(self.x, theta), self.mean(self.xh, theta), self.mean(self.xu, theta)
        ones = self.kind == "ols"
        curv, curv_u = (np.ones(n), np.ones(big_n)) if ones else (mu * (1 - mu), mu_u * (1 - mu_u))
        # ppi_py pools the Hessian over gold and corpus rows; with predicted covariates the corpus rows'
        # design is not the true one, so the Hessian then comes from the gold rows' true design alone
        pool = use_corpus and self.xh is self.x
        denom = (big_n + n) if pool else n
        hessian = (self.x * (self.w * curv / denom)[:, None]).T @ self.x
        if pool:
            hessian += (self.xu * (curv_u / denom)[:, None]).T @ self.xu
        ghu = self.xu * (mu_u - self.yu)[:, None] if use_corpus else np.zeros_like(self.xu, dtype=float)
        g = self.x * (self.w * (mu - self.y))[:, None]
        gh = self.xh * (self.w * (mu_h - self.yh))[:, None]
        return g, gh, ghu, np.linalg.inv(hessian)


def _glm_lambda(g, gh, ghu, inv_h) -> float:
    """PPI++'s variance-minimising ``lam`` for all coefficients together, clipped to [0, 1] (ppi_py's rule)."""
    n, big_n, d = len(g), len(ghu), inv_h.shape[0]
    gc, ghc = g - g.mean(0), gh - gh.mean(0)
    cov = (gc.T @ ghc + ghc.T @ gc) / n
    var = np.cov(np.concatenate([gh, ghu]).T).reshape(d, d)
    num = np.trace(inv_h @ cov @ inv_h)
    den = 2 * (1 + n / big_n) * np.trace(inv_h @ var @ inv_h)
    return float(np.clip(num / den, 0.0, 1.0)) if den > 0 else 0.0


def estimate_regression(corpus: pd.DataFrame, gold: pd.DataFrame, outcome: str, predictors: list[str], *,
                        labels: list[str], kind: RegressionKind = "ols", id_column: str = "id",
                        alpha: float = 0.05, yhat: YhatKind = "prob", weight_column: str | None = None,
                        names: tuple[str, str] = ("corpus", "gold"), variables: tuple[str, ...] = ()
                        ) -> pd.DataFrame:
    """Prediction-powered (PPI++) regression where the outcome and/or predictors are coded labels.

    Every variable that is one of ``labels`` is taken from the human codes in the gold sample and from
    the model outputs (``<label>_prob`` or ``_pred``) in the corpus; every other variable is a corpus
    column known for all texts (year, court, the case outcome). So both questions work: "is argument X
    more frequent in later years?" (``outcome="X", predictors=["year"]``) and "do cases with argument X
    end in a win more often?" (``outcome="won", predictors=["X"]``). A linear (probability) model
    (``"ols"``) or a logistic regression (``"logistic"``, 0/1 outcome) is fitted by :func:`ppi_glm`.

    Parameters
    ----------
    corpus, gold, id_column, alpha, yhat, weight_column, names
        As in :func:`lexcoder.estimate.estimate_prevalence`.
    outcome : str
        The variable to explain.
    predictors : list of str
        Explanatory variables; numeric columns enter as they are, text columns as indicators.
    labels : list of str
        The names that are coded labels (e.g. the run's label columns).
    kind : {"ols", "logistic"}, default "ols"
        See :func:`ppi_glm`.
    variables : tuple of str, default ()
        The run's categorical variables (``class_columns``): not supported in a regression yet, so a
        regression naming one is refused (their class shares: :func:`~lexcoder.estimate.estimate_shares`).

    Returns
    -------
    pd.DataFrame
        One row per term: ``term``, ``ppi``, ``ppi_low``, ``ppi_high``, ``classical`` (+ interval: gold
        sample only), ``naive`` (+ interval: the model's 0/1 codes taken as true codes), ``n_corpus``,
        ``n_gold``.

    Raises
    ------
    LexcoderError
        If no variable is a coded label, or one is a categorical variable.
    DataError
        A missing column, unmatched ids, a non-numeric outcome, or coefficients the gold sample cannot
        identify.
    """
    categorical = [v for v in dict.fromkeys([outcome, *predictors]) if v in variables]
    if categorical:
        raise LexcoderError(f"{categorical[0]!r} is a categorical variable (class_columns) of the run; regressions "
                            "take its 0/1 labels and corpus columns only, not yet a coded categorical variable. "
                            "Its class shares are estimated by `lexcoder estimate` (in Python: estimate_shares).")
    variables = [outcome, *predictors]
    coded = [v for v in dict.fromkeys(variables) if v in labels]
    observed = [v for v in dict.fromkeys(variables) if v not in labels]
    if not coded:
        raise LexcoderError(f"None of {variables} is a coded label ({labels}); an ordinary regression on the "
                            "corpus answers that question.")
    require_columns(corpus, [id_column, *observed] + [f"{v}_{s}" for v in coded for s in {yhat, "pred"}],
                    names[0], "The corpus needs the observed variables and the model outputs of `lexcoder predict`.")
    matched = match_gold(corpus, gold, coded, id_column=id_column, yhat=yhat, extra_columns=tuple(observed),
                         names=names)
    frames = {"true": _variables(matched, coded, observed, None), "gold_hat": _variables(matched, coded, observed, yhat),
              "corpus_hat": _variables(corpus, coded, observed, yhat),
              "naive": _variables(corpus, coded, observed, "pred")}
    _, terms, levels = design_matrix(frames["corpus_hat"], predictors)
    X = {k: design_matrix(f, predictors, levels=levels)[0] for k, f in frames.items()}
    Y = {k: _numeric(f[outcome], outcome, names[0]) for k, f in frames.items()}
    w = None if not weight_column else inverse_probability_weights(gold[weight_column], weight_column, names[1])
    xhat = None if not set(coded) & set(predictors) else X["gold_hat"]
    out = pd.DataFrame({"term": terms})
    try:
        for prefix, lam in (("ppi", None), ("classical", 0.0)):
            out[prefix], out[f"{prefix}_low"], out[f"{prefix}_high"] = ppi_glm(
                X["true"], Y["true"], Y["gold_hat"], X["corpus_hat"], Y["corpus_hat"], xhat=xhat, kind=kind,
                alpha=alpha, lam=lam, weights=w)
        out["naive"], out["naive_low"], out["naive_high"] = ppi_glm(
            X["naive"], Y["naive"], Y["naive"], X["naive"], Y["naive"], kind=kind, alpha=alpha, lam=0.0)
    except np.linalg.LinAlgError:
        raise DataError(f"The coefficients of {terms[1:]} cannot be estimated from the {len(matched)} "
                        f"human-coded rows of {names[1]}: a category has no (or too few) human-coded rows, "
                        "or two predictors carry the same information. Use fewer or coarser predictors "
                        "(e.g. group rare courts together).") from None
    out["n_corpus"], out["n_gold"] = len(corpus), len(matched)
    return out


def _numeric(values: pd.Series, column: str, name: str) -> np.ndarray:
    """``values`` as floats; a :class:`DataError` naming the rows that are empty or not numbers."""
    out = pd.to_numeric(values, errors="coerce")
    if out.isna().any():
        raise DataError(f"{name}: the outcome {column!r} must be a number in every row, but rows "
                        f"{format_rows(np.flatnonzero(out.isna().to_numpy()) + 1)} are empty or not numbers.")
    return out.to_numpy(float)


def _variables(frame: pd.DataFrame, coded: list[str], observed: list[str], source: str | None) -> pd.DataFrame:
    """The regression variables of ``frame``: coded labels from human codes (``source`` None) or from the
    model output columns ``<label>_<source>``; observed variables as they are."""
    out = frame[observed].copy()
    for v in coded:
        out[v] = pd.to_numeric(frame[v if source is None else f"{v}_{source}"]).to_numpy(float)
    return out
