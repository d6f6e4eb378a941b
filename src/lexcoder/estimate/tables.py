"""The two input tables of an estimate, checked and matched by id.

The *corpus* is every text of the target corpus as ``lexcoder predict`` codes it (``<label>_prob`` and
``<label>_pred`` columns; ``<variable>_pred`` and ``<variable>_prob_<class>`` for a categorical variable);
the *gold* sample is a random sample of it coded by humans (the id column, one 0/1 column per label and
one column per categorical variable holding its class). The prevalence, class-share and regression
estimates all start here.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from ..data import normalize_classes, normalize_labels
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
    gname = names[1]
    require_columns(gold, [id_column, *labels], gname,
                    "The gold table needs the id column and one 0/1 column per label coded by humans.")
    codes = {}
    for lab in labels:
        values = normalize_labels(gold[lab], column=lab, source=gname)
        if values.isna().any():
            raise DataError(f"{gname}: column {lab!r} is empty in rows "
                            f"{format_rows(np.flatnonzero(values.isna().to_numpy()) + 1)}. Every gold row "
                            "needs a human code for every label.")
        codes[lab] = values.astype(int).to_numpy()
    outputs = [output_column(lab, yhat) for lab in labels]
    return _with_outputs(corpus, gold, codes, outputs, id_column=id_column, extra_columns=extra_columns,
                         names=names)


def class_output_columns(variable: str, classes: list[str], yhat: YhatKind) -> list[str]:
    """The corpus columns holding the model's output for a categorical variable: ``<variable>_prob_<class>``
    for every class (``yhat="prob"``) or ``<variable>_pred`` (``yhat="pred"``)."""
    if yhat not in ("prob", "pred"):
        raise LexcoderError(f"yhat must be 'prob' or 'pred', not {yhat!r}.")
    return [f"{variable}_pred"] if yhat == "pred" else [f"{variable}_prob_{c}" for c in classes]


def check_classes(values: pd.Series, classes: list[str], *, column: str, name: str,
                  fix: str = "Recode those cells to one of them (same spelling and case).") -> np.ndarray:
    """``values`` as the run's class names (``1`` and ``1.0`` alike, as at training: :func:`normalize_classes`);
    a :class:`DataError` naming the table, column, rows and the valid classes for an empty cell or a value
    that is not one of ``classes`` (``fix`` ends the message).

    Returns
    -------
    np.ndarray of object, shape (len(values),)
    """
    # only the distinct values are read (a corpus of millions of rows holds a handful of classes)
    codes, uniques = pd.factorize(values.astype(object), use_na_sentinel=False)
    try:
        distinct = normalize_classes(pd.Series(uniques, dtype=object), column=column, source=name)
    except DataError:
        normalize_classes(values, column=column, source=name)  # the same error, naming the rows of ``values``
        raise
    distinct = distinct.astype(object).to_numpy()
    valid = set(classes)
    ok = np.array([not pd.isna(v) and v in valid for v in distinct], dtype=bool)
    if not ok[codes].all():
        bad = ~ok[codes]
        shown = sorted({"(empty)" if pd.isna(v) else str(v) for v in distinct[~ok]})[:5]
        raise DataError(f"{name}: column {column!r} holds {shown} in rows {format_rows(np.flatnonzero(bad) + 1)}, "
                        f"which are not classes of the run; its classes are {classes}. {fix}")
    return distinct[codes]


def match_gold_classes(corpus: pd.DataFrame, gold: pd.DataFrame, variables: dict[str, list[str]], *,
                       id_column: str, yhat: YhatKind = "prob", extra_columns: tuple[str, ...] = (),
                       names: tuple[str, str] = ("corpus", "gold")) -> pd.DataFrame:
    """:func:`match_gold` for categorical variables: the gold rows with their human-coded classes.

    Parameters
    ----------
    corpus : pd.DataFrame
        The coded corpus: ``id_column``, the :func:`class_output_columns` of every variable and
        ``extra_columns``.
    gold : pd.DataFrame
        The human-coded sample: ``id_column`` and one column per variable holding one of its classes.
    variables : dict of str to list of str
        Each variable with the run's classes (as text).
    id_column, yhat, extra_columns, names
        As in :func:`match_gold`.

    Returns
    -------
    pd.DataFrame
        One row per gold row: ``id_column`` (text), each variable's class (text), the model output
        columns and ``extra_columns``.

    Raises
    ------
    DataError
        A missing column, a duplicate id, an empty cell or a value that is not a class of the run, or
        gold ids missing from the corpus.
    """
    gname = names[1]
    require_columns(gold, [id_column, *variables], gname,
                    "The gold table needs the id column and one column per categorical variable holding the "
                    "class humans coded.")
    codes = {v: check_classes(gold[v], classes, column=v, name=gname) for v, classes in variables.items()}
    outputs = [c for v, classes in variables.items() for c in class_output_columns(v, classes, yhat)]
    return _with_outputs(corpus, gold, codes, outputs, id_column=id_column, extra_columns=extra_columns,
                         names=names)


def _with_outputs(corpus: pd.DataFrame, gold: pd.DataFrame, codes: dict[str, np.ndarray], outputs: list[str], *,
                  id_column: str, extra_columns: tuple[str, ...], names: tuple[str, str]) -> pd.DataFrame:
    """The gold ids, their human ``codes`` and, from the corpus row with the same id (or from the gold
    table itself when it carries them), the model ``outputs`` and ``extra_columns``."""
    cname, gname = names
    gids = unique_ids(gold, id_column, gname)
    cids = unique_ids(corpus, id_column, cname)
    out = pd.DataFrame({id_column: gids.to_numpy(), **codes})
    source = corpus.set_index(cids)
    found = source.index.get_indexer(gids) >= 0  # (a hash lookup: Series.isin is slow on Arrow strings)
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
