"""Prevalence of each label in a coded corpus: naive, classical and prediction-powered (PPI++) estimates."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, LexcoderError
from ..io import read_table
from ..rundir import RunDir
from .intervals import MeanCI, classical_mean, naive_mean, ppi_mean, ppi_mean_adjusted
from .tables import YhatKind, inverse_probability_weights, match_gold, output_column, require_columns

log = logging.getLogger(__name__)

#: Below this many human-coded positives in a gold sample (or group), intervals are flagged as unreliable.
MIN_GOLD_POSITIVES = 10


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
        estimates are then inverse-probability weighted (ppi_py's Wald intervals).
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
    if weight_column:
        require_columns(gold, [weight_column], names[1],
                        "Name the gold column that holds each row's inclusion probability.")
    matched = match_gold(corpus, gold, labels, id_column=id_column, yhat=yhat,
                         extra_columns=(by,) if by else (), names=names)
    weights = None if not weight_column else inverse_probability_weights(gold[weight_column], weight_column,
                                                                         names[1])
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


def _split_groups(corpus: pd.DataFrame, matched: pd.DataFrame, weights: np.ndarray | None, by: str
                  ) -> Iterator[tuple[object, pd.DataFrame, pd.DataFrame, np.ndarray | None]]:
    """(value, corpus rows, gold rows, gold weights) for each value of the corpus column ``by``."""
    for value in pd.unique(corpus[by].dropna()):
        in_gold = (matched[by] == value).to_numpy()
        yield (value, corpus[corpus[by] == value], matched[in_gold],
               None if weights is None else weights[in_gold])


def _label_row(label: str, corpus: pd.DataFrame, gold: pd.DataFrame, weights: np.ndarray | None, *,
               yhat: YhatKind, alpha: float, min_positives: int, finite_population: bool) -> dict:
    """One row of :func:`estimate_prevalence`'s table: the three estimates of one label in one group."""
    col = output_column(label, yhat)
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
    """``{prefix, prefix_low, prefix_high}``, clipped to [0, 1]."""
    # a prevalence outside [0, 1] (possible for PPI's unbiased estimate or a Wald bound) is shown clipped
    return {prefix: _unit(ci.estimate), f"{prefix}_low": _unit(ci.low), f"{prefix}_high": _unit(ci.high)}


def _unit(value: float) -> float:
    return float(np.clip(value, 0.0, 1.0))


def estimate_run(run_dir: str | Path, corpus_path: str | Path, gold_path: str | Path, *,
                 labels: list[str] | None = None, id_column: str | None = None, **options) -> pd.DataFrame:
    """:func:`estimate_prevalence` for files: the labels and the id column default to the run's config.

    Parameters
    ----------
    run_dir : str or Path
        The run whose model coded the corpus.
    corpus_path, gold_path : str or Path
        The coded corpus and the human-coded sample (any format :func:`lexcoder.io.read_table` reads).
    labels : list of str, optional
        Labels to estimate (default: all of the run's).
    id_column : str, optional
        Column identifying rows in both files (default: the run's).
    **options
        Passed on to :func:`estimate_prevalence` (``by``, ``weight_column``, ``alpha``, ``yhat``,
        ``min_positives``).

    Returns
    -------
    pd.DataFrame
        As :func:`estimate_prevalence`; estimates with too few human-coded positives are also logged.

    Raises
    ------
    LexcoderError
        If neither ``id_column`` nor the run's config names an id column.
    """
    cfg = RunDir(Path(run_dir)).load_config()
    labels = labels or list(cfg.data.label_columns)
    if not labels:
        raise ConfigError(f"Prevalence estimates cover 0/1 labels, and the run {run_dir} has none: the shares "
                          f"of its categorical variables ({', '.join(cfg.data.class_columns)}) are not "
                          "estimated yet.")
    id_column = id_column or cfg.data.id_column
    if not id_column:
        raise LexcoderError(f"The run in {run_dir} has no id column; give the column that identifies rows in "
                            "both files as id_column.")
    corpus, gold = read_table(corpus_path), read_table(gold_path)
    table = estimate_prevalence(corpus, gold, labels, id_column=id_column,
                                names=(str(corpus_path), str(gold_path)), **options)
    if not table["reliable"].all():
        log.warning("%d of %d estimates rest on fewer than %d human-coded positives; see the 'note' column.",
                    int((~table["reliable"]).sum()), len(table), options.get("min_positives", MIN_GOLD_POSITIVES))
    return table
