"""How a human-coded text was chosen, and the check that keeps actively chosen texts out of a gold sample.

Texts chosen by ``lexcoder next`` were picked *because* of what the model thinks of them (uncertain, likely
positive of a rare label, ...). They are the best texts to train on and the worst to estimate from: a
prevalence computed from them is biased, and nothing in the data shows it. So every file lexcoder writes for
coders carries its provenance in columns that survive the coding (coders fill in the label columns and
leave the rest):

- ``lexcoder next`` writes :data:`BATCH_COLUMN`, :data:`STRATEGY_COLUMN` and :data:`REASON_COLUMN`; the
  training table of ``lexcoder add --out`` keeps the first two;
- ``lexcoder sample`` writes :data:`DESIGN_COLUMN` and :data:`INCLUSION_COLUMN` (each row's inclusion
  probability), and :data:`STRATUM_COLUMN` for the stratified designs.

:func:`check_gold_provenance` reads them before an estimate: rows chosen by active learning are refused
(naming the rows and what to do instead); a ``lexcoder sample`` file with unequal inclusion probabilities
is corrected for them (inverse-probability weights) when no weight column was given, and the log says so.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..errors import DataError, format_rows

log = logging.getLogger(__name__)

BATCH_COLUMN = "lexcoder_batch"
STRATEGY_COLUMN = "lexcoder_strategy"
REASON_COLUMN = "lexcoder_reason"
DESIGN_COLUMN = "lexcoder_design"
STRATUM_COLUMN = "lexcoder_stratum"
INCLUSION_COLUMN = "inclusion_probability"
#: Inclusion probabilities that differ by less than this factor (max / min) count as equal: the sample is
#: self-weighting and the unweighted (Agresti-Coull adjusted) interval applies.
EQUAL_PROBABILITIES = 1.05


def check_gold_provenance(gold: pd.DataFrame, weight_column: str | None, name: str = "gold") -> str | None:
    """The weight column an estimate from ``gold`` must use; refuses texts chosen by active learning.

    Parameters
    ----------
    gold : the human-coded sample given to an estimate
    weight_column : the column of inclusion probabilities the user named (None: none)
    name : the gold table's name in messages (its file)

    Returns
    -------
    ``weight_column`` as given, or :data:`INCLUSION_COLUMN` when ``gold`` is a ``lexcoder sample`` file whose
    inclusion probabilities are unequal and no weight column was named (a warning says so).

    Raises
    ------
    DataError
        When rows carry a ``lexcoder next`` batch (:data:`BATCH_COLUMN` or :data:`STRATEGY_COLUMN` filled
        in): the message names the rows, their strategies and how to draw a gold sample instead.
    """
    chosen = _actively_chosen(gold)
    if chosen.any():
        strategies = sorted({str(s) for s in gold.get(STRATEGY_COLUMN, pd.Series(dtype=object))[chosen].dropna()})
        what = f" (strategies: {', '.join(strategies)})" if strategies else ""
        raise DataError(f"{name}: rows {format_rows(np.flatnonzero(chosen) + 1)} of {len(gold)} were chosen by "
                        f"`lexcoder next`{what}, i.e. picked for what the model thinks of them, not drawn at "
                        "random: an estimate from them would be biased. Train on them (lexcoder add), and "
                        "estimate from a gold sample drawn with `lexcoder sample` (or remove those rows and "
                        f"the column {BATCH_COLUMN!r} if they really were drawn at random).")
    if weight_column or DESIGN_COLUMN not in gold.columns or INCLUSION_COLUMN not in gold.columns:
        return weight_column
    p = pd.to_numeric(gold[INCLUSION_COLUMN], errors="coerce")
    if p.notna().all() and p.gt(0).all() and p.max() / p.min() >= EQUAL_PROBABILITIES:
        designs = ", ".join(sorted(set(gold[DESIGN_COLUMN].astype(str))))
        log.warning("%s was drawn by `lexcoder sample` (design: %s) with unequal inclusion probabilities "
                    "(%.3g to %.3g): the estimate weights each row by 1 / %s to correct for them.", name, designs,
                    p.min(), p.max(), INCLUSION_COLUMN)
        return INCLUSION_COLUMN
    return weight_column


def _actively_chosen(gold: pd.DataFrame) -> np.ndarray:
    """Rows whose batch or strategy column (as ``lexcoder next`` writes them) is filled in."""
    chosen = np.zeros(len(gold), dtype=bool)
    for column in (BATCH_COLUMN, STRATEGY_COLUMN):
        if column in gold.columns:
            values = gold[column].astype(object)
            filled = values.notna() & values.map(lambda v: str(v).strip() not in ("", "nan", "None"))
            chosen |= filled.to_numpy(dtype=bool)
    return chosen


def check_not_handed_out(gold: pd.DataFrame, handed_out: pd.DataFrame, id_column: str, name: str = "gold") -> None:
    """Refuse gold rows whose ids a ``lexcoder next`` of the run handed out (its ``batches.parquet``).

    The provenance columns (:func:`check_gold_provenance`) go wherever the coders' file goes, but a user may
    drop them; the run's own record of what it handed out cannot be edited away.

    Parameters
    ----------
    gold : the human-coded sample given to an estimate
    handed_out : the run's record of chosen texts (columns ``id``, ``batch``, ``strategy``); may be empty
    id_column : the gold column holding the ids
    name : the gold table's name in messages

    Raises
    ------
    DataError
        Naming the rows, their batches and what to do instead.
    """
    if handed_out.empty or id_column not in gold.columns:
        return
    from ..data import id_to_str
    ids = gold[id_column].map(lambda v: None if pd.isna(v) else id_to_str(v))
    # rows that still carry their provenance are refused by check_gold_provenance, with its message
    chosen = ids.isin(set(handed_out["id"].astype(str))).to_numpy() & ~_actively_chosen(gold)
    if chosen.any():
        batches = sorted(set(handed_out.loc[handed_out["id"].astype(str).isin(set(ids[chosen])), "batch"].astype(str)))
        raise DataError(f"{name}: rows {format_rows(np.flatnonzero(chosen) + 1)} of {len(gold)} have ids that "
                        f"`lexcoder next` handed out for coding (batch {', '.join(batches)}), i.e. texts picked "
                        "for what the model thinks of them, not drawn at random: an estimate from them would be "
                        "biased. Estimate from a gold sample drawn with `lexcoder sample`, without those texts.")

