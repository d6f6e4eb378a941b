"""The two input tables of an estimate, checked and matched by id.

The *corpus* is every text of the target corpus as ``lexcoder predict`` codes it (``<label>_prob`` and
``<label>_pred`` columns); the *gold* sample is a random sample of it coded by humans (the id column and
one 0/1 column per label). Both the prevalence and the regression estimates start here.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from ..data import normalize_labels
from ..errors import DataError, LexcoderError, did_you_mean, format_rows

#: The model output used in place of a human code: the probability or the 0/1 code.
YhatKind = Literal["prob", "pred"]


def output_column(label: str, yhat: YhatKind) -> str:
    """``<label>_prob`` or ``<label>_pred``: the corpus column holding the model's output for ``label``."""
    if yhat not in ("prob", "pred"):
        raise LexcoderError(f"yhat must be 'prob' or 'pred', not {yhat!r}.")
    return f"{label}_{yhat}"


def require_columns(df: pd.DataFrame, columns: list[str], name: str, hint: str) -> None:
    """Raise a :class:`DataError` naming the table ``name``, the missing columns and ``hint`` (the fix)."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{name}: missing column(s) {missing}{did_you_mean(missing[0], df.columns)}. {hint}")


def unique_ids(df: pd.DataFrame, id_column: str, name: str) -> pd.Series:
    """The ids of ``df`` as text; a :class:`DataError` naming the rows if two rows share one."""
    ids = df[id_column].astype(str)
    dup = ids.duplicated(keep=False)
    if dup.any():
        raise DataError(f"{name}: column {id_column!r} must identify rows uniquely, but rows "
                        f"{format_rows(np.flatnonzero(dup.to_numpy()) + 1)} share ids "
                        f"{sorted(ids[dup].unique())[:5]}. Remove the duplicate rows.")
    return ids


def inverse_probability_weights(p: pd.Series, column: str, name: str) -> np.ndarray:
    """``1 / p`` for a gold column of inclusion probabilities; a :class:`DataError` unless all are in (0, 1]."""
    values = pd.to_numeric(p, errors="coerce").to_numpy(dtype=float)
    bad = ~((values > 0) & (values <= 1))
    if bad.any():
        raise DataError(f"{name}: column {column!r} must hold inclusion probabilities in (0, 1], but rows "
                        f"{format_rows(np.flatnonzero(bad) + 1)} do not (e.g. {p[bad].head(3).tolist()}).")
    return 1.0 / values


def match_gold(corpus: pd.DataFrame, gold: pd.DataFrame, labels: list[str], *, id_column: str,
               yhat: YhatKind = "prob", extra_columns: tuple[str, ...] = (),
               names: tuple[str, str] = ("corpus", "gold")) -> pd.DataFrame:
    """The gold rows with their human codes, the model outputs and ``extra_columns``, matched by id.

    Model outputs and extra columns (group, covariates) are taken from the corpus row with the same id.
    Gold rows whose id is not in the corpus are an error, unless the gold table carries the model output
    columns itself (a sample coded outside the corpus file).

    Parameters
    ----------
    corpus : pd.DataFrame
        The coded corpus: ``id_column``, ``<label>_<yhat>`` for every label and ``extra_columns``.
    gold : pd.DataFrame
        The human-coded sample: ``id_column`` and one 0/1 column per label.
    labels : list of str
        Label names.
    id_column : str
        Column identifying rows in both tables (compared as text).
    yhat : {"prob", "pred"}, default "prob"
        Model output taken: the probability or the 0/1 code.
    extra_columns : tuple of str, default ()
        Further corpus columns to carry over.
    names : (str, str), default ("corpus", "gold")
        Names of the two tables in error messages (e.g. their file names).

    Returns
    -------
    pd.DataFrame
        One row per gold row: ``id_column`` (text), the label columns as 0/1 integers, the model output
        columns and ``extra_columns``.

    Raises
    ------
    DataError
        A missing column, a duplicate id, an empty human code, or gold ids missing from the corpus.
    """
    cname, gname = names
    outputs = [output_column(lab, yhat) for lab in labels]
    require_columns(gold, [id_column, *labels], gname,
                    "The gold table needs the id column and one 0/1 column per label coded by humans.")
    gids = unique_ids(gold, id_column, gname)
    cids = unique_ids(corpus, id_column, cname)
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
                        f"Check that the id column {id_column!r} identifies the same texts in both tables, or "
                        f"code the gold rows with `lexcoder predict` and keep their {outputs[0]!r}... columns.")
    for col in wanted:
        out[col] = picked[col].to_numpy()
    return out
