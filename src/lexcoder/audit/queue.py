"""The review queue: likely coding errors, most likely first, ready to be reviewed in a spreadsheet.

One row per (text, label) pair that confident learning flags or whose text has an identical copy coded
differently. The reviewer fills in ``decision`` (``keep`` or ``flip``) and optionally ``note``; the file
is then fed to ``lexcoder corrections apply``. Text cells that a spreadsheet would run as formulas are
written with a leading ``'`` (see :mod:`lexcoder.safety`).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .. import safety
from ..io import atomic_path, table_format, write_table

QUEUE_COLUMNS = ["rank", "id", "label", "text", "human_value", "model_probability", "score", "reason",
                 "decision", "note", "source_row"]


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
                flagged: np.ndarray, conflicts: np.ndarray) -> pd.DataFrame:
    """The full review queue, sorted by ``score`` ascending (most likely error first).

    Parameters
    ----------
    df : table with ``id``, ``text``, ``source_row`` and the (possibly corrected) label columns
    P : (n, n_labels) out-of-fold probabilities
    score : (n, n_labels) label-quality score, lower = more likely wrong
    flagged : (n, n_labels) pairs flagged by confident learning
    conflicts : (n, n_labels) pairs whose text has a copy coded differently (:func:`conflict_mask`)

    Returns
    -------
    DataFrame with :data:`QUEUE_COLUMNS`; ``decision`` and ``note`` are empty for the reviewer
    """
    rows, cols = np.nonzero(flagged | conflicts)
    labels = list(label_columns)
    Y = df[labels].to_numpy().astype(int)
    out = pd.DataFrame({
        "id": df["id"].to_numpy()[rows], "label": [labels[c] for c in cols], "text": df["text"].to_numpy()[rows],
        "human_value": Y[rows, cols], "model_probability": P[rows, cols].round(4),
        "score": score[rows, cols].round(4),
        "reason": [_reason(Y[r, c], P[r, c], flagged[r, c], conflicts[r, c],
                           _copies(df, labels[c], r) if conflicts[r, c] else "") for r, c in zip(rows, cols)],
        "decision": "", "note": "",
        "source_row": df["source_row"].to_numpy()[rows] if "source_row" in df else rows + 1,
    })
    out = out.sort_values(["score", "id", "label"], kind="stable").reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out[QUEUE_COLUMNS]


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
