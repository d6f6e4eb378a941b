"""The review queue: likely coding errors, most likely first, ready to be reviewed in a spreadsheet.

One row per (text, label) pair that confident learning flags or whose text has an identical copy coded
differently. The reviewer fills in ``decision`` (``keep`` or ``flip``) and optionally ``note``; the file
is then fed to ``lexcoder corrections apply``. Text cells that a spreadsheet would run as formulas are
written with a leading ``'`` (see :mod:`lexcoder.safety`).

A run with categorical variables (``class_columns``) gets the columns of :data:`CLASS_QUEUE_COLUMNS`:
a variable's row names the variable in ``label``, the given class in ``human_value``, the class the
model suggests instead in ``suggested_value`` (the most probable class other than the given one) with its
out-of-fold probability ``suggested_probability``; ``model_probability`` and ``score`` are the probability
of the given class. The reviewer writes ``keep`` or ``change`` in ``decision``, and for ``change`` the new
class in ``new_value`` (empty: the suggested class). A 0/1 label's row in such a queue shows its code as
text, the other code as ``suggested_value`` (with ``1 - score``), and is decided with keep/flip as always.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import safety
from ..io import atomic_path, table_format, write_table

QUEUE_COLUMNS = ["rank", "id", "label", "text", "human_value", "model_probability", "score", "reason",
                 "decision", "note", "source_row"]
CLASS_QUEUE_COLUMNS = ["rank", "id", "label", "text", "human_value", "suggested_value", "suggested_probability",
                       "model_probability", "score", "reason", "decision", "new_value", "note", "source_row"]


@dataclass
class ClassScores:
    """One categorical variable's audit, row by row (``n`` rows of the audited table).

    Attributes
    ----------
    classes : (k,) the classes, sorted
    P : (n, k) out-of-fold class probabilities
    score : (n,) probability of the given class (lower = more likely wrong)
    flagged : (n,) rows flagged by confident learning
    conflicts : (n,) rows whose text has an identical copy given another class
    """

    classes: np.ndarray
    P: np.ndarray
    score: np.ndarray
    flagged: np.ndarray
    conflicts: np.ndarray


def conflict_mask(df: pd.DataFrame, conflicts: pd.DataFrame, label_columns: Sequence[str]) -> np.ndarray:
    """Boolean ``(n, n_labels)``: the row's text has an identical copy coded differently for that label.

    ``conflicts`` is :func:`lexcoder.clean.find_conflicts` output (``ids`` and ``label`` per conflict).
    """
    mask = np.zeros((len(df), len(label_columns)), dtype=bool)
    position = pd.Series(np.arange(len(df)), index=df["id"].astype(str))
    column = {lab: j for j, lab in enumerate(label_columns)}
    for ids, label in zip(conflicts.get("ids", []), conflicts.get("label", [])):
        if label in column:
            rows = position.reindex([str(i) for i in ids]).dropna().astype(int)
            mask[rows.to_numpy(), column[label]] = True
    return mask


def _reason(human: int, p: float, flagged: bool, conflict: bool, copies: str) -> str:
    parts = []
    if flagged:
        parts.append(f"model confident positive (p={p:.2f}), coded 0" if human == 0
                     else f"model confident negative (p={p:.2f}), coded 1")
    if conflict:
        parts.append(f"conflicting duplicate (identical text coded {copies})")
    return "; ".join(parts)


def _copies(df: pd.DataFrame, label: str, row: int) -> str:
    if "dup_group" not in df:
        return "differently"
    same = df["dup_group"].to_numpy() == df["dup_group"].iloc[row]
    values = df.loc[same, label].astype(int)
    return f"1 in {int(values.sum())} and 0 in {int((values == 0).sum())} copies"


def build_queue(df: pd.DataFrame, label_columns: Sequence[str], P: np.ndarray, score: np.ndarray,
                flagged: np.ndarray, conflicts: np.ndarray, *, variables: Mapping[str, ClassScores] | None = None
                ) -> pd.DataFrame:
    """The full review queue, sorted by ``score`` ascending (most likely error first).

    Parameters
    ----------
    df : table with ``id``, ``text``, ``source_row`` and the (possibly corrected) label and class columns
    P : (n, n_labels) out-of-fold probabilities
    score : (n, n_labels) label-quality score, lower = more likely wrong
    flagged : (n, n_labels) pairs flagged by confident learning
    conflicts : (n, n_labels) pairs whose text has a copy coded differently (:func:`conflict_mask`)
    variables : the categorical variables' audits (``{variable: ClassScores}``); with any, the queue has
        :data:`CLASS_QUEUE_COLUMNS`

    Returns
    -------
    DataFrame with :data:`QUEUE_COLUMNS` (or :data:`CLASS_QUEUE_COLUMNS`); ``decision`` and ``note``
    (and ``new_value``) are empty for the reviewer
    """
    labels = _label_rows(df, list(label_columns), P, score, flagged, conflicts)
    if not variables:
        return _ranked(labels, QUEUE_COLUMNS)
    labels = labels.assign(human_value=labels["human_value"].astype(str),
                           suggested_value=(1 - labels["human_value"]).astype(str),
                           suggested_probability=(1 - labels["score"]).round(4), new_value="")
    parts = [labels, *(_class_rows(df, v, scores) for v, scores in variables.items())]
    return _ranked(pd.concat([p for p in parts if len(p)] or [labels], ignore_index=True), CLASS_QUEUE_COLUMNS)


def _ranked(rows: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    out = rows.sort_values(["score", "id", "label"], kind="stable").reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out[columns]


def _label_rows(df: pd.DataFrame, labels: list[str], P: np.ndarray, score: np.ndarray, flagged: np.ndarray,
                conflicts: np.ndarray) -> pd.DataFrame:
    """The queue rows of the 0/1 labels, unsorted."""
    rows, cols = np.nonzero(flagged | conflicts)
    Y = df[labels].to_numpy().astype(int)
    return pd.DataFrame({
        "id": df["id"].to_numpy()[rows], "label": [labels[c] for c in cols], "text": df["text"].to_numpy()[rows],
        "human_value": Y[rows, cols], "model_probability": P[rows, cols].round(4),
        "score": score[rows, cols].round(4),
        "reason": [_reason(Y[r, c], P[r, c], flagged[r, c], conflicts[r, c],
                           _copies(df, labels[c], r) if conflicts[r, c] else "") for r, c in zip(rows, cols)],
        "decision": "", "note": "",
        "source_row": _source_rows(df, rows),
    })


def _source_rows(df: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    return df["source_row"].to_numpy()[rows] if "source_row" in df else rows + 1


def suggested_classes(y: np.ndarray, P: np.ndarray) -> np.ndarray:
    """(n,) index of the class the model suggests instead of ``y`` (indices): the most probable other one."""
    others = np.array(P, dtype=float, copy=True)
    others[np.arange(len(y)), y] = -np.inf
    return others.argmax(axis=1)


def _class_rows(df: pd.DataFrame, variable: str, s: ClassScores) -> pd.DataFrame:
    """The queue rows of one categorical variable, unsorted."""
    rows = np.flatnonzero(s.flagged | s.conflicts)
    given = df[variable].astype(str).to_numpy()
    y = np.searchsorted(s.classes, given)
    suggested = suggested_classes(y, s.P)
    p_given, p_suggested = s.P[rows, y[rows]], s.P[rows, suggested[rows]]
    reasons = []
    for i, r in enumerate(rows):
        parts = [f"model suggests {s.classes[suggested[r]]!r} (p={p_suggested[i]:.2f}), coded {given[r]!r} "
                 f"(p={p_given[i]:.2f})"] if s.flagged[r] else []
        if s.conflicts[r]:
            parts.append(f"conflicting duplicate (identical text coded {_class_copies(df, variable, r)})")
        reasons.append("; ".join(parts))
    return pd.DataFrame({
        "id": df["id"].to_numpy()[rows], "label": variable, "text": df["text"].to_numpy()[rows],
        "human_value": given[rows], "suggested_value": s.classes[suggested[rows]].astype(str),
        "suggested_probability": p_suggested.round(4), "model_probability": p_given.round(4),
        "score": s.score[rows].round(4), "reason": reasons, "decision": "", "new_value": "", "note": "",
        "source_row": _source_rows(df, rows),
    })


def _class_copies(df: pd.DataFrame, variable: str, row: int) -> str:
    """``'Facts' in 2 and 'Argument' in 1 copies``: the classes of a row's identical texts."""
    if "dup_group" not in df:
        return "differently"
    same = df["dup_group"].to_numpy() == df["dup_group"].iloc[row]
    counts = df.loc[same, variable].astype(str).value_counts()
    return " and ".join(f"{c!r} in {n}" for c, n in counts.items()) + " copies"


def select(queue: pd.DataFrame, *, label: str | None = None, top: int | None = None) -> pd.DataFrame:
    """A view of the queue: one label only and/or the ``top`` highest-ranked rows (ranks kept)."""
    view = queue if label is None else queue[queue["label"] == label]
    return view.head(top) if top is not None else view


def write_queue(view: pd.DataFrame, path, *, parquet_path=None, full: pd.DataFrame | None = None,
                neutralise_formulas: bool = True) -> Path:
    """Write the view for review in a spreadsheet, and the full queue as Parquet.

    Parameters
    ----------
    view : the rows to review (:func:`select`)
    path : ``.csv`` (UTF-8 with BOM, so Excel shows accents) or any other table format by extension
        (``.xlsx``, ``.tsv`` ...)
    parquet_path : where to write ``full`` (or ``view``) unchanged, for programs
    neutralise_formulas : prefix ``'`` to text cells that a spreadsheet would run as formulas (ids,
        labels, texts starting with ``= + - @``, tab or CR; see :func:`lexcoder.safety.neutralise_formulas`).
        ``lexcoder corrections apply`` removes the prefix again when it reads the reviewed file.

    Returns
    -------
    ``path``
    """
    path = Path(path)
    sheet = safety.neutralise_formulas(view) if neutralise_formulas else view
    if table_format(path) == "csv" and path.suffix.lower() == ".csv":
        with atomic_path(path) as tmp:
            sheet.to_csv(tmp, index=False, encoding="utf-8-sig")
    else:
        write_table(sheet, path)
    if parquet_path is not None:
        write_table(view if full is None else full, parquet_path)
    return path
