"""Valid estimates from predicted labels: prediction-powered inference (PPI++) for prevalences and regressions.

A model codes the whole corpus; humans code a random sample of it (the *gold* sample). The naive estimate
(the share of texts the model codes positive) is biased wherever the model errs; the classical estimate
(the share in the gold sample) is unbiased but wide. Prediction-powered inference combines both: the
model's average over the corpus, corrected by the average model error measured on the gold sample
(Angelopoulos et al. 2023, *Science*; power-tuned "PPI++", Angelopoulos, Duchi & Zrnic 2023,
arXiv:2311.01453). Point estimates and the power-tuning weight are those of ``ppi-python`` (``ppi_py``);
the tests check lexcoder's numbers against it.

Decisions, measured in ``benchmarks/bench_ppi_coverage.py`` (ToS and ECHR corpora with known truth):

* ``Yhat`` is the model's probability (``<label>_prob``) by default: same coverage as the 0/1 codes and
  narrower intervals for the frequent labels.
* ppi_py's normal-approximation interval under-covers labels with few positives in the gold sample; the
  default interval (:func:`ppi_mean_adjusted`) adds Agresti-Coull pseudo-observations and covers
  93-98% down to 0.2% prevalence with 300 gold rows.
* Regressions (:func:`ppi_glm`) follow ppi_py's PPI++ OLS/logistic algorithm in vectorised numpy (ppi_py
  compiles numba loops on every start, 20-40 s).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from .errors import DataError, LexcoderError, format_rows

log = logging.getLogger(__name__)

YhatKind = Literal["prob", "pred"]
#: Below this many human-coded positives in a gold sample (or group), intervals are flagged as unreliable.
MIN_GOLD_POSITIVES = 10


@dataclass(frozen=True)
class MeanCI:
    """A point estimate with its (1 - alpha) confidence interval."""

    estimate: float
    low: float
    high: float


def _ppi():
    try:
        import ppi_py
    except ImportError as err:  # pragma: no cover - ppi-python is a core dependency
        raise LexcoderError("`lexcoder estimate` needs the ppi-python package: "
                            "pip install 'lexcoder[estimate]'") from err
    return ppi_py


def _weights(w: np.ndarray | None) -> np.ndarray | None:
    return None if w is None else np.asarray(w, dtype=float)


def ppi_mean(y: np.ndarray, yhat: np.ndarray, yhat_corpus: np.ndarray, *, alpha: float = 0.05,
             weights: np.ndarray | None = None, power_tuning: bool = True) -> MeanCI:
    """Prediction-powered estimate and interval of the mean of ``y`` over the corpus.

    Parameters
    ----------
    y : (n,) human codes (0/1) of the gold sample
    yhat : (n,) model outputs (probabilities or 0/1) for the same gold rows
    yhat_corpus : (N,) model outputs for every corpus row
    alpha : error level; the interval targets coverage 1 - alpha
    weights : (n,) optional inverse inclusion probabilities of the gold rows (any scale)
    power_tuning : PPI++ (estimate the weight ``lambda`` of the predictions from the data); False is plain PPI

    Returns
    -------
    MeanCI
    """
    ppi = _ppi()
    y, yhat, yhat_corpus = (np.asarray(a, dtype=float) for a in (y, yhat, yhat_corpus))
    lam = None if power_tuning else 1.0
    w = _weights(weights)
    est = ppi.ppi_mean_pointestimate(y, yhat, yhat_corpus, lam=lam, w=w)
    low, high = ppi.ppi_mean_ci(y, yhat, yhat_corpus, alpha=alpha, lam=lam, w=w)
    return MeanCI(float(np.squeeze(est)), float(np.squeeze(low)), float(np.squeeze(high)))


def classical_mean(y: np.ndarray, *, alpha: float = 0.05, weights: np.ndarray | None = None) -> MeanCI:
    """Human-only estimate: (weighted) mean of the gold sample with its CLT interval (ppi_py baseline)."""
    ppi = _ppi()
    y = np.asarray(y, dtype=float)
    w = _weights(weights)
    est = float(np.average(y, weights=w))
    low, high = ppi.classical_mean_ci(y, w=w, alpha=alpha)
    return MeanCI(est, float(low), float(high))


def naive_mean(yhat_corpus: np.ndarray, *, alpha: float = 0.05) -> MeanCI:
    """Predictions-only estimate: the model's mean over the corpus, with the interval that ignores its errors."""
    ppi = _ppi()
    yhat_corpus = np.asarray(yhat_corpus, dtype=float)
    low, high = ppi.classical_mean_ci(yhat_corpus, alpha=alpha)
    return MeanCI(float(yhat_corpus.mean()), float(low), float(high))


#: ``naive``: predictions only; ``classical``: gold sample only (CLT); ``agresti_coull``: gold sample only,
#: adjusted; ``ppi`` / ``ppi++``: ppi_py's intervals (lambda = 1 / tuned); ``ppi++_ac``: PPI++ with the
#: Agresti-Coull-style adjustment of :func:`ppi_mean_adjusted` (lexcoder's default). The adjusted methods
#: estimate the prevalence of the given corpus (finite-population correction), the others as ppi_py does.
METHODS = ("naive", "classical", "agresti_coull", "ppi", "ppi++", "ppi++_ac")


def interval(method: str, y: np.ndarray, yhat: np.ndarray, yhat_corpus: np.ndarray, *, alpha: float = 0.05,
             weights: np.ndarray | None = None) -> MeanCI:
    """The estimate of ``method`` (one of :data:`METHODS`) from one gold sample; see :func:`ppi_mean`."""
    if method == "naive":
        return naive_mean(yhat_corpus, alpha=alpha)
    if method == "classical":
        return classical_mean(y, alpha=alpha, weights=weights)
    if method == "agresti_coull":
        return ppi_mean_adjusted(y, yhat, yhat_corpus, alpha=alpha, lam=0.0, finite_population=True)
    if method == "ppi++_ac":
        return ppi_mean_adjusted(y, yhat, yhat_corpus, alpha=alpha, finite_population=True)
    if method in ("ppi", "ppi++"):
        return ppi_mean(y, yhat, yhat_corpus, alpha=alpha, weights=weights, power_tuning=method == "ppi++")
    raise LexcoderError(f"Unknown estimation method {method!r}; choose one of {METHODS}.")


def simulate_coverage(y_corpus: np.ndarray, yhat_corpus: np.ndarray, *, n_gold: int, reps: int = 500,
                      alpha: float = 0.05, seed: int = 0, methods: tuple[str, ...] = METHODS) -> pd.DataFrame:
    """Check interval coverage where the truth is known: repeated random gold samples from a coded corpus.

    Each repetition draws ``n_gold`` corpus rows without replacement as the human-coded sample (their
    true codes from ``y_corpus``) and computes every method's interval for the corpus prevalence.

    Parameters
    ----------
    y_corpus : (N,) true 0/1 codes of every corpus row (known only in a simulation)
    yhat_corpus : (N,) model outputs for every corpus row
    n_gold : size of each simulated human-coded sample
    reps : number of repetitions
    alpha, seed : error level; seed of the sampling

    Returns
    -------
    DataFrame
        One row per method: ``coverage`` (share of intervals containing the truth), ``mean_width``,
        ``bias`` (mean estimate minus truth), ``rmse``, ``mean_gold_positives``, ``truth``.
    """
    y_corpus = np.asarray(y_corpus, dtype=float)
    yhat_corpus = np.asarray(yhat_corpus, dtype=float)
    truth = float(y_corpus.mean())
    rng = np.random.default_rng(seed)
    rows = {m: [] for m in methods}
    positives = []
    for _ in range(reps):
        idx = rng.choice(len(y_corpus), size=n_gold, replace=False)
        positives.append(y_corpus[idx].sum())
        for m in methods:
            rows[m].append(interval(m, y_corpus[idx], yhat_corpus[idx], yhat_corpus, alpha=alpha))
    return pd.DataFrame([_summarise(m, cis, truth, np.mean(positives)) for m, cis in rows.items()])


def _summarise(method: str, cis: list[MeanCI], truth: float, positives: float) -> dict:
    est = np.array([c.estimate for c in cis])
    low, high = np.array([c.low for c in cis]), np.array([c.high for c in cis])
    return {"method": method, "coverage": float(np.mean((low <= truth) & (truth <= high))),
            "mean_width": float(np.mean(high - low)), "bias": float(est.mean() - truth),
            "rmse": float(np.sqrt(np.mean((est - truth) ** 2))), "mean_gold_positives": float(positives),
            "truth": truth}


def power_tuning_lambda(y: np.ndarray, yhat: np.ndarray, yhat_corpus: np.ndarray) -> float:
    """PPI++'s variance-minimising weight of the predictions, clipped to [0, 1] (as ``ppi_py`` computes it).

    ``lambda = cov(y, yhat) / ((1 + n/N) var(yhat))`` with the covariance from the gold sample and the
    variance over gold and corpus predictions together.
    """
    n, big_n = len(y), len(yhat_corpus)
    cov = float(np.mean((y - y.mean()) * (yhat - yhat.mean())))
    var = float(np.var(np.concatenate([yhat, yhat_corpus]), ddof=1))
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
    proportion, the interval is computed after adding ``pseudo`` (default ``z^2 / 2``, about 2) rows
    coded 1 and as many coded 0 to the gold sample, each with the corpus-mean prediction as its model
    output; its centre moves accordingly. The point estimate is the unadjusted PPI++ estimate. With
    ``lam = 0`` the interval is the Agresti-Coull interval of the gold sample; with ``pseudo = 0`` it is
    ppi_py's ``ppi_mean_ci``.

    Parameters
    ----------
    y : (n,) human 0/1 codes of a uniform random gold sample of the corpus
    yhat : (n,) model outputs for the same rows
    yhat_corpus : (N,) model outputs for every corpus row
    alpha : error level
    lam : weight of the predictions; None estimates it (PPI++), 1 is plain PPI
    pseudo : pseudo-rows added per class (default ``z^2 / 2``)
    finite_population : the estimand is the prevalence in *this* corpus and the gold rows were drawn from
        it without replacement: the corpus mean of ``yhat`` is then a fixed number, and the variance of the
        gold-sample correction shrinks by ``1 - n/N`` (finite-population correction). False treats the
        corpus as a sample from a larger population, as ppi_py does.

    Returns
    -------
    MeanCI
        The interval is clipped to [0, 1].
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


# --------------------------------------------------------------------------------------------------
# Tables: a coded corpus (``lexcoder predict`` output) and a human-coded gold sample, matched by id
# --------------------------------------------------------------------------------------------------

def _yhat_column(label: str, yhat: YhatKind) -> str:
    if yhat not in ("prob", "pred"):
        raise LexcoderError(f"yhat must be 'prob' or 'pred', not {yhat!r}.")
    return f"{label}_{yhat}"


def _require(df: pd.DataFrame, columns: list[str], name: str, hint: str) -> None:
    from .errors import did_you_mean
    missing = [c for c in columns if c not in df.columns]
    if missing:
        first = missing[0]
        raise DataError(f"{name}: missing column(s) {missing}{did_you_mean(first, df.columns)}. {hint}")


def _unique_ids(df: pd.DataFrame, id_column: str, name: str) -> pd.Series:
    ids = df[id_column].astype(str)
    dup = ids.duplicated(keep=False)
    if dup.any():
        raise DataError(f"{name}: column {id_column!r} must identify rows uniquely, but rows "
                        f"{format_rows(np.flatnonzero(dup.to_numpy()) + 1)} share ids "
                        f"{sorted(ids[dup].unique())[:5]}. Remove the duplicate rows.")
    return ids


def match_gold(corpus: pd.DataFrame, gold: pd.DataFrame, labels: list[str], *, id_column: str,
               yhat: YhatKind = "prob", extra_columns: tuple[str, ...] = (),
               names: tuple[str, str] = ("corpus", "gold")) -> pd.DataFrame:
    """The gold rows with their human codes, the model outputs and ``extra_columns``, matched by id.

    Model outputs (``<label>_prob`` or ``<label>_pred``) and extra columns (group, covariates) are taken
    from the corpus row with the same id. Gold rows whose id is not in the corpus are an error, unless
    the gold table carries the model output columns itself (a sample coded outside the corpus file).

    Returns
    -------
    DataFrame
        (n_gold rows) ``id_column``, the label columns as 0/1 integers, the model output columns and
        ``extra_columns``.
    """
    from .data import normalize_labels
    cname, gname = names
    outputs = [_yhat_column(lab, yhat) for lab in labels]
    _require(gold, [id_column, *labels], gname,
             "The gold table needs the id column and one 0/1 column per label coded by humans.")
    gids = _unique_ids(gold, id_column, gname)
    cids = _unique_ids(corpus, id_column, cname)
    out = pd.DataFrame({id_column: gids.to_numpy()})
    for lab in labels:
        codes = normalize_labels(gold[lab], column=lab, source=gname)
        if codes.isna().any():
            raise DataError(f"{gname}: column {lab!r} is empty in rows "
                            f"{format_rows(np.flatnonzero(codes.isna().to_numpy()) + 1)}. Every gold row "
                            "needs a human code for every label.")
        out[lab] = codes.astype(int).to_numpy()
    source = corpus.set_index(cids)
    found = gids.isin(source.index).to_numpy()
    wanted = outputs + [c for c in extra_columns if c not in outputs]
    if found.all():
        picked = source.loc[gids, wanted]
    elif all(c in gold.columns for c in wanted):
        picked = gold[wanted]
    else:
        raise DataError(f"{gname}: {int((~found).sum())} of {len(gids)} ids are not in {cname} (e.g. "
                        f"{gids[~found].head(3).tolist()}; rows {format_rows(np.flatnonzero(~found) + 1)}). "
                        f"Check that --id-column names the same column in both files ({id_column!r}), or "
                        f"code the gold rows with `lexcoder predict` and keep their {outputs[0]!r}... columns.")
    for col in wanted:
        out[col] = picked[col].to_numpy()
    return out


def estimate_prevalence(corpus: pd.DataFrame, gold: pd.DataFrame, labels: list[str], *, id_column: str = "id",
                        by: str | None = None, weight_column: str | None = None, alpha: float = 0.05,
                        yhat: YhatKind = "prob", min_positives: int = MIN_GOLD_POSITIVES,
                        names: tuple[str, str] = ("corpus", "gold")) -> pd.DataFrame:
    """Prevalence of each label in a coded corpus: naive, classical and prediction-powered (PPI++).

    Parameters
    ----------
    corpus : every text of the target corpus, coded by ``lexcoder predict`` (``<label>_prob``/``_pred``)
    gold : a random sample of the corpus coded by humans: ``id_column`` and one 0/1 column per label
    labels : label names
    id_column : column identifying rows in both tables
    by : optional corpus column; estimates are then given per value (court, year, ...)
    weight_column : optional gold column with each row's inclusion probability (0 < p <= 1) when the
        sample was not uniform; estimates are then inverse-probability weighted (ppi_py's Wald intervals)
    alpha : error level: (1 - alpha) confidence intervals
    yhat : model output used by PPI: "prob" (default, more efficient) or "pred" (0/1 codes)
    min_positives : gold samples (per group) with fewer human-coded positives are flagged in ``note``
    names : names of the two tables in error messages (e.g. their file names)

    Returns
    -------
    DataFrame
        One row per (group,) label: ``n_corpus``, ``n_gold``, ``gold_positives``, ``naive``,
        ``naive_low``, ``naive_high``, ``classical``, ``classical_low``, ``classical_high``, ``ppi``,
        ``ppi_low``, ``ppi_high``, ``method``, ``reliable`` and ``note``.
    """
    outputs = [_yhat_column(lab, yhat) for lab in labels]
    _require(corpus, [id_column, *outputs] + ([by] if by else []), names[0],
             "Code the corpus first: `lexcoder predict RUN corpus.csv --out coded.parquet` adds "
             "<label>_prob and <label>_pred.")
    if weight_column:
        _require(gold, [weight_column], names[1], "Name the inclusion-probability column with --weights.")
    matched = match_gold(corpus, gold, labels, id_column=id_column, yhat=yhat,
                         extra_columns=(by,) if by else (), names=names)
    weights = None if not weight_column else _inverse_probabilities(gold[weight_column], weight_column, names[1])
    groups = [(None, corpus, matched, weights)] if not by else _split_groups(corpus, matched, weights, by)
    # a gold sample drawn from the corpus: intervals for the corpus prevalence (finite-population correction)
    drawn_from_corpus = bool(matched[id_column].isin(corpus[id_column].astype(str)).all())
    rows = []
    for value, c_part, g_part, w_part in groups:
        for lab in labels:
            row = _label_row(lab, c_part, g_part, w_part, yhat=yhat, alpha=alpha, min_positives=min_positives,
                             finite_population=drawn_from_corpus)
            rows.append(({by: value} if by else {}) | row)
    return pd.DataFrame(rows)


def _inverse_probabilities(p: pd.Series, column: str, name: str) -> np.ndarray:
    values = pd.to_numeric(p, errors="coerce").to_numpy(dtype=float)
    bad = ~((values > 0) & (values <= 1))
    if bad.any():
        raise DataError(f"{name}: column {column!r} must hold inclusion probabilities in (0, 1], but rows "
                        f"{format_rows(np.flatnonzero(bad) + 1)} do not (e.g. {p[bad].head(3).tolist()}).")
    return 1.0 / values


def _split_groups(corpus: pd.DataFrame, matched: pd.DataFrame, weights: np.ndarray | None, by: str):
    for value in pd.unique(corpus[by].dropna()):
        in_gold = (matched[by] == value).to_numpy()
        yield (value, corpus[corpus[by] == value], matched[in_gold],
               None if weights is None else weights[in_gold])


def _label_row(label: str, corpus: pd.DataFrame, gold: pd.DataFrame, weights: np.ndarray | None, *,
               yhat: YhatKind, alpha: float, min_positives: int, finite_population: bool) -> dict:
    col = _yhat_column(label, yhat)
    naive_col = f"{label}_pred" if f"{label}_pred" in corpus.columns else col
    y, h = gold[label].to_numpy(float), gold[col].to_numpy(float)
    h_corpus = corpus[col].to_numpy(float)
    row = {"label": label, "n_corpus": len(corpus), "n_gold": len(gold), "gold_positives": int(y.sum())}
    row |= _ci_fields("naive", naive_mean(corpus[naive_col].to_numpy(float), alpha=alpha))
    if len(gold) < 2:
        nan = MeanCI(np.nan, np.nan, np.nan)
        return row | _ci_fields("classical", nan) | _ci_fields("ppi", nan) | {
            "method": "", "reliable": False, "note": "fewer than 2 human-coded rows: no estimate"}
    if weights is None:
        classical = ppi_mean_adjusted(y, h, h_corpus, alpha=alpha, lam=0.0, finite_population=finite_population)
        ppi = ppi_mean_adjusted(y, h, h_corpus, alpha=alpha, finite_population=finite_population)
        method = "PPI++ (Agresti-Coull adjusted" + (", finite corpus)" if finite_population else ")")
    else:
        classical = classical_mean(y, alpha=alpha, weights=weights)
        ppi, method = ppi_mean(y, h, h_corpus, alpha=alpha, weights=weights), "PPI++ (weighted, Wald)"
    reliable = row["gold_positives"] >= min_positives
    note = "" if reliable else (f"only {row['gold_positives']} human-coded positive(s) (< {min_positives}): "
                                "the interval may be unreliable; have more texts coded")
    return row | _ci_fields("classical", classical) | _ci_fields("ppi", ppi) | {
        "method": method, "reliable": reliable, "note": note}


def _ci_fields(prefix: str, ci: MeanCI) -> dict:
    # a prevalence outside [0, 1] (possible for PPI's unbiased estimate or a Wald bound) is shown clipped
    clip = lambda v: float(np.clip(v, 0.0, 1.0))  # noqa: E731
    return {prefix: clip(ci.estimate), f"{prefix}_low": clip(ci.low), f"{prefix}_high": clip(ci.high)}


def estimate_run(run_dir: str | Path, corpus_path: str | Path, gold_path: str | Path, *,
                 labels: list[str] | None = None, id_column: str | None = None, **options) -> pd.DataFrame:
    """:func:`estimate_prevalence` for files: the labels and id column default to the run's config.

    ``options`` are passed on (``by``, ``weight_column``, ``alpha``, ``yhat``, ``min_positives``).
    """
    from .io import read_table
    from .rundir import RunDir
    cfg = RunDir(Path(run_dir)).load_config()
    labels = labels or list(cfg.data.label_columns)
    id_column = id_column or cfg.data.id_column
    if not id_column:
        raise LexcoderError(f"The run in {run_dir} has no id column; name the column that identifies rows in "
                            "both files with --id-column.")
    corpus, gold = read_table(corpus_path), read_table(gold_path)
    table = estimate_prevalence(corpus, gold, labels, id_column=id_column,
                                names=(str(corpus_path), str(gold_path)), **options)
    if not table["reliable"].all():
        log.warning("%d of %d estimates rest on fewer than %d human-coded positives; see the 'note' column.",
                    int((~table["reliable"]).sum()), len(table), options.get("min_positives", MIN_GOLD_POSITIVES))
    return table


# --------------------------------------------------------------------------------------------------
# Regression of a predicted label on covariates observed for every text
# --------------------------------------------------------------------------------------------------

RegressionKind = Literal["ols", "logistic"]


def design_matrix(frame: pd.DataFrame, covariates: list[str], *, levels: dict | None = None
                  ) -> tuple[np.ndarray, list[str], dict]:
    """Intercept + covariates; text columns become 0/1 indicators (first level is the reference).

    Returns the (n, d) matrix, the d term names and the category levels (pass them back as ``levels``
    so that the gold rows are coded exactly like the corpus).
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
    ``ppi_py.ppi_logistic_ci`` in vectorised numpy (ppi_py compiles numba loops on every start, 20-40 s;
    the tests check the results are identical). With predicted covariates (``xhat``: the gold rows'
    design built from model outputs), it minimises the same PPI++ objective,
    ``lam * L(corpus, predicted) + L(gold, true) - lam * L(gold, predicted)``, with the same variance
    and choice of ``lam`` (Angelopoulos, Duchi & Zrnic 2023).

    Parameters
    ----------
    x : (n, d) design of the gold rows from human codes; y : (n,) outcome of the gold rows (human codes)
    yhat : (n,) outcome of the gold rows from model outputs (equal to ``y`` for an observed outcome)
    x_corpus : (N, d) design of the corpus (model outputs); yhat_corpus : (N,) outcome of the corpus
    xhat : (n, d) design of the gold rows from model outputs (default ``x``: no predicted covariate)
    kind : "ols" (linear / linear probability model) or "logistic" (0/1 outcome)
    lam : weight of the predictions: None estimates it (PPI++), 1 is PPI, 0 the classical estimate
    weights : (n,) optional inverse inclusion probabilities of the gold rows

    Returns
    -------
    (estimate, low, high), each of shape (d,)
    """
    from scipy.stats import norm
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
    sw = np.sqrt(w)
    return np.linalg.lstsq(x * sw[:, None], y * sw, rcond=None)[0]


def _expit(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0, -z))


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
        return x @ theta if self.kind == "ols" else _expit(x @ theta)

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
        from scipy.optimize import minimize
        n, big_n, w = len(self.y), len(self.yu), self.w

        def nll(x, y, t, weights):
            z = x @ t
            return np.sum(weights * (-y * z + np.logaddexp(0, z)))

        def loss(t):
            return (lam / big_n * nll(self.xu, self.yu, t, 1.0) - lam / n * nll(self.xh, self.yh, t, w)
                    + nll(self.x, self.y, t, w) / n)

        def grad(t):
            return (lam / big_n * self.xu.T @ (_expit(self.xu @ t) - self.yu)
                    - lam / n * self.xh.T @ (w * (_expit(self.xh @ t) - self.yh))
                    + self.x.T @ (w * (_expit(self.x @ t) - self.y)) / n)

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
                        names: tuple[str, str] = ("corpus", "gold")) -> pd.DataFrame:
    """Prediction-powered (PPI++) regression where the outcome and/or predictors are coded labels.

    Every variable that is one of ``labels`` is taken from the human codes in the gold sample and from
    the model outputs (``<label>_prob`` or ``_pred``) in the corpus; every other variable is a corpus
    column known for all texts (year, court, the case outcome). So both questions work: "is argument X
    more frequent in later years?" (``outcome="X", predictors=["year"]``) and "do cases with argument X
    end in a win more often?" (``outcome="won", predictors=["X"]``). A linear (probability) model
    (``"ols"``) or a logistic regression (``"logistic"``, 0/1 outcome) is fitted by :func:`ppi_glm`.

    Parameters
    ----------
    corpus, gold, id_column, alpha, yhat, weight_column, names : as in :func:`estimate_prevalence`
    outcome : the variable to explain
    predictors : explanatory variables; numeric columns enter as they are, text columns as indicators
    labels : the names that are coded labels (e.g. the run's label columns)

    Returns
    -------
    DataFrame
        One row per term: ``ppi``, ``ppi_low``, ``ppi_high``, ``classical`` (+ interval: gold sample
        only), ``naive`` (+ interval: the model's 0/1 codes taken as true codes), ``n_corpus``, ``n_gold``.
    """
    variables = [outcome, *predictors]
    coded = [v for v in dict.fromkeys(variables) if v in labels]
    observed = [v for v in dict.fromkeys(variables) if v not in labels]
    if not coded:
        raise LexcoderError(f"None of {variables} is a coded label ({labels}); an ordinary regression on the "
                            "corpus answers that question.")
    _require(corpus, [id_column, *observed] + [f"{v}_{s}" for v in coded for s in {yhat, "pred"}], names[0],
             "The corpus needs the observed variables and the model outputs of `lexcoder predict`.")
    matched = match_gold(corpus, gold, coded, id_column=id_column, yhat=yhat, extra_columns=tuple(observed),
                         names=names)
    frames = {"true": _variables(matched, coded, observed, None), "gold_hat": _variables(matched, coded, observed, yhat),
              "corpus_hat": _variables(corpus, coded, observed, yhat),
              "naive": _variables(corpus, coded, observed, "pred")}
    _, terms, levels = design_matrix(frames["corpus_hat"], predictors)
    X = {k: design_matrix(f, predictors, levels=levels)[0] for k, f in frames.items()}
    Y = {k: _numeric(f[outcome], outcome, names[0]) for k, f in frames.items()}
    w = None if not weight_column else _inverse_probabilities(gold[weight_column], weight_column, names[1])
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
