"""Prevalence of each label in a coded corpus: naive, classical and prediction-powered (PPI++) estimates.

The helpers that split the tables into groups, compute the three estimates of one 0/1 indicator and flag
small samples serve :mod:`~lexcoder.estimate.shares` (class shares) as well.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from ..active.provenance import check_gold_provenance
from .design import DESIGN_METHOD, design_strata, stratified_mean_adjusted
from .intervals import MeanCI, classical_mean, naive_mean, ppi_mean, ppi_mean_adjusted
from .tables import YhatKind, inverse_probability_weights, match_gold, output_column, require_columns

#: Below this many human-coded positives in a gold sample (or group), intervals are flagged as unreliable.
MIN_GOLD_POSITIVES = 10
#: The sampling design of the gold rows: (inverse inclusion probabilities or None, design strata or None).
Design = tuple[np.ndarray | None, np.ndarray | None]


def estimate_prevalence(corpus: pd.DataFrame, gold: pd.DataFrame, labels: list[str], *, id_column: str = "id",
                        by: str | None = None, weight_column: str | None = None, alpha: float = 0.05,
                        yhat: YhatKind = "prob", min_positives: int = MIN_GOLD_POSITIVES,
                        names: tuple[str, str] = ("corpus", "gold")) -> pd.DataFrame:
    """Prevalence of each label in a coded corpus: naive, classical and prediction-powered (PPI++).

    Parameters
    ----------
    corpus : pd.DataFrame
        Every text of the target corpus, coded by ``lexcoder predict`` (``<label>_prob``/``_pred``).
    gold : pd.DataFrame
        A random sample of the corpus coded by humans: ``id_column`` and one 0/1 column per label.
    labels : list of str
        Label names.
    id_column : str, default "id"
        Column identifying rows in both tables.
    by : str, optional
        Corpus column; estimates are then given per value (court, year, ...).
    weight_column : str, optional
        Gold column with each row's inclusion probability (0 < p <= 1) when the sample was not uniform;
        estimates are then inverse-probability weighted, with the design-based interval of
        :mod:`~lexcoder.estimate.design` when the sample is stratified (a ``lexcoder sample`` file's strata,
        or rows of equal probability), else ppi_py's weighted Wald interval. A ``lexcoder sample`` file's
        inclusion probabilities and strata are used without this.
    alpha : float, default 0.05
        Error level: (1 - alpha) confidence intervals.
    yhat : {"prob", "pred"}, default "prob"
        Model output used by PPI: the probability (more efficient) or the 0/1 code.
    min_positives : int, default :data:`MIN_GOLD_POSITIVES`
        Gold samples (per group) with fewer human-coded positives are flagged in ``note``.
    names : (str, str), default ("corpus", "gold")
        Names of the two tables in error messages (e.g. their file names).

    Returns
    -------
    pd.DataFrame
        One row per (group,) label: ``n_corpus``, ``n_gold``, ``gold_positives``, ``naive``,
        ``naive_low``, ``naive_high``, ``classical``, ``classical_low``, ``classical_high``, ``ppi``,
        ``ppi_low``, ``ppi_high``, ``method``, ``reliable`` and ``note``. Estimates and bounds are
        clipped to [0, 1].

    Raises
    ------
    DataError
        A table lacks a column, ids are duplicated or unmatched, or inclusion probabilities are not in (0, 1].
    """
    outputs = [output_column(lab, yhat) for lab in labels]
    require_columns(corpus, [id_column, *outputs] + ([by] if by else []), names[0],
                    "Code the corpus first with `lexcoder predict` (in Python: lexcoder.predict_file); it adds "
                    "<label>_prob and <label>_pred.")
    matched = match_gold(corpus, gold, labels, id_column=id_column, yhat=yhat,
                         extra_columns=(by,) if by else (), names=names)
    rows = []
    for key, c_part, g_part, design, finite in gold_groups(corpus, gold, matched, id_column=id_column, by=by,
                                                           weight_column=weight_column, names=names):
        for lab in labels:
            col = output_column(lab, yhat)
            naive_col = f"{lab}_pred" if f"{lab}_pred" in corpus.columns else col
            fields = three_estimates(g_part[lab].to_numpy(float), g_part[col].to_numpy(float),
                                     c_part[col].to_numpy(float), c_part[naive_col].to_numpy(float), design,
                                     alpha=alpha, finite_population=finite)
            count = int(g_part[lab].sum())
            rows.append(key | {"label": lab, "n_corpus": len(c_part), "n_gold": len(g_part),
                               "gold_positives": count} | fields | reliability(count, len(g_part), min_positives))
    return pd.DataFrame(rows)


def gold_groups(corpus: pd.DataFrame, gold: pd.DataFrame, matched: pd.DataFrame, *, id_column: str,
                by: str | None, weight_column: str | None, names: tuple[str, str]
                ) -> Iterator[tuple[dict, pd.DataFrame, pd.DataFrame, Design, bool]]:
    """The parts to estimate on: ``({by: value} or {}, corpus rows, matched gold rows, their design,
    finite_population)``, once for the whole corpus or once per value of the corpus column ``by``.

    The design is ``(weights, strata)`` of the gold rows: inverse inclusion probabilities (None for a
    uniform sample) and design strata (None unless the sample is stratified,
    :func:`~lexcoder.estimate.design.design_strata`). Within a ``by`` group the strata's sizes are
    estimated from the weights of the group's gold rows (a domain of a stratified sample).

    ``finite_population`` is True when every gold row was drawn from the corpus: the intervals are then
    for the prevalence in this corpus (finite-population correction). Gold rows chosen by ``lexcoder next``
    are refused, and a ``lexcoder sample`` file's unequal inclusion probabilities are used when no weight
    column is named (:func:`~lexcoder.active.provenance.check_gold_provenance`).
    """
    weight_column = check_gold_provenance(gold, weight_column, names[1])
    weights = None
    if weight_column:
        require_columns(gold, [weight_column], names[1],
                        "Name the gold column that holds each row's inclusion probability.")
        weights = inverse_probability_weights(gold[weight_column], weight_column, names[1])
    strata, weights = design_strata(gold, weights, names[1])
    finite = bool((pd.Index(corpus[id_column].astype(str)).get_indexer(matched[id_column]) >= 0).all())
    if not by:
        yield {}, corpus, matched, (weights, strata), finite
        return
    for value in pd.unique(corpus[by].dropna()):
        in_gold = (matched[by] == value).to_numpy()
        yield ({by: value}, corpus[corpus[by] == value], matched[in_gold],
               tuple(None if a is None else a[in_gold] for a in (weights, strata)), finite)


def three_estimates(y: np.ndarray, h: np.ndarray, h_corpus: np.ndarray, naive_codes: np.ndarray,
                    design: Design, *, alpha: float, finite_population: bool, lam: float | None = None) -> dict:
    """The naive, classical and PPI++ estimates of one 0/1 indicator's share, with the method's name.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Human 0/1 codes of the gold rows.
    h : np.ndarray, shape (n,)
        Model outputs for the gold rows.
    h_corpus : np.ndarray, shape (N,)
        Model outputs for the corpus rows.
    naive_codes : np.ndarray, shape (N,)
        What the naive estimate averages (the model's 0/1 codes where the corpus has them).
    design : (weights, strata)
        Inverse inclusion probabilities of the gold rows (None: a uniform sample) and their design strata
        (None: not a stratified sample); see :func:`gold_groups`. Stratified samples get the design-based
        interval (:func:`~lexcoder.estimate.design.stratified_mean_adjusted`), other weighted ones ppi_py's
        weighted Wald interval, uniform ones the Agresti-Coull adjusted one.
    alpha : float
        Error level of each interval.
    finite_population : bool
        See :func:`~lexcoder.estimate.intervals.ppi_mean_adjusted`.
    lam : float, optional
        Weight of the predictions; None tunes it for this indicator alone (PPI++).

    Returns
    -------
    dict
        ``naive``, ``classical``, ``ppi`` each with ``_low``/``_high`` (clipped to [0, 1]) and ``method``;
        with fewer than 2 gold rows, the classical and PPI++ fields are NaN and ``method`` is empty.
    """
    row = _ci_fields("naive", naive_mean(naive_codes, alpha=alpha))
    if len(y) < 2:
        nan = MeanCI(np.nan, np.nan, np.nan)
        return row | _ci_fields("classical", nan) | _ci_fields("ppi", nan) | {"method": ""}
    weights, strata = design
    finite = ", finite corpus)" if finite_population else ")"
    if strata is not None:
        classical, ppi = (stratified_mean_adjusted(y, h, h_corpus, strata, weights, alpha=alpha, lam=value,
                                                   finite_population=finite_population) for value in (0.0, lam))
        method = DESIGN_METHOD + finite
    elif weights is None:
        classical = ppi_mean_adjusted(y, h, h_corpus, alpha=alpha, lam=0.0, finite_population=finite_population)
        ppi = ppi_mean_adjusted(y, h, h_corpus, alpha=alpha, lam=lam, finite_population=finite_population)
        method = "PPI++ (Agresti-Coull adjusted" + finite
    else:
        classical = classical_mean(y, alpha=alpha, weights=weights)
        ppi, method = ppi_mean(y, h, h_corpus, alpha=alpha, weights=weights, lam=lam), "PPI++ (weighted, Wald)"
    return row | _ci_fields("classical", classical) | _ci_fields("ppi", ppi) | {"method": method}


def reliability(positives: int, n_gold: int, min_positives: int, what: str = "positive(s)") -> dict:
    """``reliable`` and ``note``: flags an estimate resting on fewer than ``min_positives`` human-coded
    positives (or on fewer than 2 gold rows, which give no estimate)."""
    if n_gold < 2:
        return {"reliable": False, "note": "fewer than 2 human-coded rows: no estimate"}
    if positives >= min_positives:
        return {"reliable": True, "note": ""}
    return {"reliable": False, "note": f"only {positives} human-coded {what} (< {min_positives}): the interval "
                                       "may be unreliable; have more texts coded"}


def _ci_fields(prefix: str, ci: MeanCI) -> dict:
    """``{prefix, prefix_low, prefix_high}``, clipped to [0, 1]."""
    # a prevalence outside [0, 1] (possible for PPI's unbiased estimate or a Wald bound) is shown clipped
    return {prefix: _unit(ci.estimate), f"{prefix}_low": _unit(ci.low), f"{prefix}_high": _unit(ci.high)}


def _unit(value: float) -> float:
    return float(np.clip(value, 0.0, 1.0))
