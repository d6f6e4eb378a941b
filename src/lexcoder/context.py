"""What a model reads for each row: the text alone, or the text with its context ([context] in the config).

Every stage that fits or applies a model (pipeline, audit cross-fitting, predict) gets its inputs from
:func:`model_inputs` and cuts them with :func:`take`, so that a context-aware run feeds every model alike.

Context is on when ``[context] order_column`` (neighbours and position) or ``metadata_columns`` is set. The
inputs are then a DataFrame (the layout of :mod:`lexcoder.models.inputs`): ``text``; ``previous`` and
``next``, the ``window`` texts before and after it in its document (``document_column``, default
``[data] group_column``), in the order of ``order_column``, joined by spaces; ``position``, the text's
relative place in its document, ``(order - first) / (last - first)`` (0 for a document of one text);
and the metadata columns. Neighbours never cross documents, and the inputs of a row do not depend on the
order of the table's rows.

The table must hold the whole document for the neighbours to be right: a text whose neighbours were left
out of the table is read next to the nearest texts that are in it.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from .config import Config, ContextConfig, DataConfig
from .errors import ConfigError, DataError, did_you_mean, format_rows
from .models.inputs import CONTEXT_FIELDS, NEXT, POSITION, PREVIOUS, TEXT, category

# the canonical table's own columns (lexcoder.data): no input column of these names is carried into it
RESERVED = {"id", "text", "group", "source_row", "dup_group"}


def context_on(context: ContextConfig) -> bool:
    """Whether models read more than the text (an order column or metadata columns are set)."""
    return bool(context.order_column or context.metadata_columns)


def document_column(data: DataConfig, context: ContextConfig) -> str | None:
    """The input column naming each text's document: ``[context] document_column``, else the group column."""
    return context.document_column or data.group_column


def context_columns(data: DataConfig, context: ContextConfig) -> list[tuple[str, str]]:
    """``(config key, input column)`` for every column the context reads (none when context is off)."""
    named = []
    if context.order_column:
        document = document_column(data, context)
        if document is None:
            raise ConfigError("[context] order_column needs the document each text belongs to, so that neighbours "
                              "never cross documents: set [context] document_column (or [data] group_column).")
        named += [("document_column", document), ("order_column", context.order_column)]
    return named + [("metadata_columns", c) for c in context.metadata_columns]


def canonical_name(data: DataConfig, column: str) -> str:
    """The name an input column has in the canonical table (the group column is ``group``)."""
    return "group" if column == data.group_column else column


def check_context_columns(raw: pd.DataFrame, data: DataConfig, context: ContextConfig, *, source: str,
                          first_row: int = 1) -> dict[str, pd.Series]:
    """The columns the context reads, checked, under their canonical names (index as ``raw``'s).

    Documents become text (``7`` and ``7.0`` alike), the order becomes float; metadata are kept as they are
    (a missing value is a category of its own).

    Parameters
    ----------
    raw : the input table (or one chunk of it)
    source : the file, for messages
    first_row : the 1-based data row of ``raw``'s first row, for messages

    Raises
    ------
    ConfigError
        A context column is the text or id column, or a metadata column has a name the inputs use.
    DataError
        A column is missing; a document or order cell is empty; an order cell is not a number; two rows of
        a document share a position. Messages name the rows.
    """
    named = context_columns(data, context)
    _check_names(named, data)
    missing = [(key, col) for key, col in named if col not in raw.columns]
    if missing:
        lines = [f"  - [context] {key} = {col!r}{did_you_mean(col, raw.columns)}" for key, col in missing]
        raise DataError(f"{source}: column(s) not found:\n" + "\n".join(lines) + "\nThe file has columns: "
                        f"{', '.join(map(str, raw.columns[:30]))}. The run's model reads them as context; add "
                        "them to the data, or fix the [context] section of the config.")
    out: dict[str, Any] = {}
    rows = np.arange(first_row, first_row + len(raw))
    if context.order_column:
        key_doc = document_column(data, context)
        out[canonical_name(data, key_doc)] = _documents(raw[key_doc], rows, column=key_doc, source=source)
        out[context.order_column] = _order(raw[context.order_column], rows, column=context.order_column,
                                           source=source)
        _check_unique_positions(out[canonical_name(data, key_doc)], out[context.order_column], rows, source=source,
                                column=context.order_column)
    for col in context.metadata_columns:
        out.setdefault(canonical_name(data, col), raw[col])
    return out


def _check_names(named: list[tuple[str, str]], data: DataConfig) -> None:
    for key, col in named:
        if col in data.coded_columns:
            raise ConfigError(f"[context] {key} = {col!r} is a coded column: the model would read the answer. "
                              "Name another column.")
        if col in (data.text_column, data.id_column) and col != data.group_column:
            raise ConfigError(f"[context] {key} = {col!r} is the {'text' if col == data.text_column else 'id'} "
                              "column; name another column.")
        if col in RESERVED and col != data.group_column:
            raise DataError(f"Column {col!r} ([context] {key}) has a name lexcoder reserves ({sorted(RESERVED)}); "
                            "rename it in the data.")
        if key == "metadata_columns" and col in CONTEXT_FIELDS:
            raise ConfigError(f"[context] metadata_columns: {col!r} is a name the model inputs use for the context "
                              f"({', '.join(CONTEXT_FIELDS)}); rename that column in the data.")


def _documents(values: pd.Series, rows: np.ndarray, *, column: str, source: str) -> pd.Series:
    empty = values.isna().to_numpy() | values.astype(str).str.strip().eq("").to_numpy()
    if empty.any():
        raise DataError(f"{source}: column {column!r} (the document, for [context]) is empty in rows "
                        f"{format_rows(rows[empty])}. Every text needs its document; fill them in.")
    return values.map(category).astype(str)


def _order(values: pd.Series, rows: np.ndarray, *, column: str, source: str) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    empty = values.isna().to_numpy()
    if empty.any():
        raise DataError(f"{source}: column {column!r} ([context] order_column) is empty in rows "
                        f"{format_rows(rows[empty])}. Every text needs its position in the document.")
    bad = numbers.isna().to_numpy() | ~np.isfinite(numbers.to_numpy())
    if bad.any():
        examples = sorted({str(v) for v in values[bad].head(5)})
        raise DataError(f"{source}: column {column!r} ([context] order_column) must hold numbers (the text's "
                        f"position in its document), but rows {format_rows(rows[bad])} hold {examples}.")
    return numbers


def _check_unique_positions(documents: pd.Series, order: pd.Series, rows: np.ndarray, *, source: str,
                            column: str) -> None:
    """Two texts at one position of one document have no defined order: their neighbours would be arbitrary."""
    key = pd.DataFrame({"d": documents.to_numpy(), "o": order.to_numpy()})
    dup = key.duplicated(keep=False).to_numpy()
    if dup.any():
        first = key[dup].iloc[0]
        same = rows[((key["d"] == first["d"]) & (key["o"] == first["o"])).to_numpy()]
        raise DataError(f"{source}: rows {format_rows(same)} of document {first['d']!r} share the position "
                        f"{first['o']:g} in column {column!r} ([context] order_column); "
                        f"{int(key[dup].drop_duplicates().shape[0])} position(s) are taken twice or more. Give "
                        "every text of a document its own position.")


def model_inputs(df: pd.DataFrame, cfg: Config) -> pd.Series | pd.DataFrame:
    """The model inputs of the rows of the canonical table ``df``, in its row order (index 0..n-1).

    Returns
    -------
    The texts (a Series) when context is off; else a DataFrame with ``text``, ``previous`` and ``next``
    (when ``window`` > 0), ``position`` (when ``position`` is on) and the metadata columns — see the module
    docstring. ``df`` holds the columns :func:`check_context_columns` returns (as a run's table does).
    """
    context = cfg.context
    if not context_on(context):
        return df["text"].reset_index(drop=True)
    frame = pd.DataFrame({TEXT: df["text"].astype(str).to_numpy()})
    if context.order_column:
        documents = df[canonical_name(cfg.data, document_column(cfg.data, context))].astype(str).to_numpy()
        order = df[context.order_column].to_numpy(dtype=float)
        if context.window:
            frame[PREVIOUS], frame[NEXT] = neighbours(frame[TEXT].to_numpy(), documents, order, context.window)
        if context.position:
            frame[POSITION] = relative_position(documents, order)
    for col in context.metadata_columns:
        frame[col] = df[canonical_name(cfg.data, col)].to_numpy()
    return frame


def neighbours(texts: np.ndarray, documents: np.ndarray, order: np.ndarray, window: int
               ) -> tuple[list[str], list[str]]:
    """For each text, the ``window`` texts before and after it in its document, each side joined by spaces."""
    sorted_rows = np.lexsort((order, documents))
    doc_sorted = documents[sorted_rows]
    starts = np.r_[0, np.flatnonzero(doc_sorted[1:] != doc_sorted[:-1]) + 1]
    ends = np.r_[starts[1:], len(sorted_rows)]
    before, after = [""] * len(texts), [""] * len(texts)
    for start, end in zip(starts, ends):
        doc = [str(texts[r]) for r in sorted_rows[start:end]]
        for k, row in enumerate(sorted_rows[start:end]):
            before[row] = " ".join(doc[max(0, k - window):k])
            after[row] = " ".join(doc[k + 1:k + 1 + window])
    return before, after


def relative_position(documents: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``(order - first) / (last - first)`` within each document, in [0, 1] (0 for a one-text document)."""
    frame = pd.DataFrame({"d": documents, "o": order})
    first = frame.groupby("d")["o"].transform("min").to_numpy()
    span = frame.groupby("d")["o"].transform("max").to_numpy() - first
    return np.divide(order - first, span, out=np.zeros(len(order)), where=span > 0)


def take(inputs: pd.Series | pd.DataFrame, rows: np.ndarray) -> Any:
    """The inputs of ``rows`` (a boolean mask or positions) in the form a model's ``fit``/``predict_proba``
    takes: a list of texts, or a DataFrame of texts with their context (index 0..k-1)."""
    rows = np.asarray(rows)
    picked = inputs[rows] if rows.dtype == bool else inputs.iloc[rows]
    if isinstance(inputs, pd.DataFrame):
        return picked.reset_index(drop=True)
    return picked.tolist()


def whole_documents(chunks: Iterable[pd.DataFrame], column: str, *, source: str) -> Iterator[pd.DataFrame]:
    """Re-cut a stream of table chunks so that every piece holds whole documents (for :func:`model_inputs`).

    The rows of a document must be next to each other in the input (in any order among themselves): the
    last document of a chunk is held back and joined to the next chunk, so memory holds one chunk plus one
    document. Rows keep the input's order. Pieces may be empty where a chunk holds a single unfinished
    document.

    Raises
    ------
    DataError
        A document's rows are interrupted by another document's (naming the document and the rows).
    """
    finished: set[str] = set()
    held, first_row = None, 1
    for chunk in chunks:
        frame = chunk if held is None else pd.concat([held, chunk])
        frame = frame.reset_index(drop=True)
        docs = frame[column].map(lambda v: "" if pd.isna(v) else category(v)).to_numpy() if len(frame) \
            else np.array([], dtype=object)
        runs = np.r_[0, np.flatnonzero(docs[1:] != docs[:-1]) + 1] if len(docs) else np.array([], dtype=int)
        _check_contiguous(docs, runs, finished, first_row, column=column, source=source)
        last = runs[-1] if len(runs) else 0
        finished.update(docs[runs[:-1]].tolist())
        done, held = frame.iloc[:last], frame.iloc[last:]
        first_row += len(done)
        yield done
    if held is not None and len(held):
        yield held.reset_index(drop=True)


def _check_contiguous(docs: np.ndarray, runs: np.ndarray, finished: set[str], first_row: int, *, column: str,
                      source: str) -> None:
    seen: dict[str, int] = {}
    for start in runs:
        doc = docs[start]
        if doc and (doc in finished or doc in seen):  # (an empty document cell is reported by its own check)
            rows = first_row + np.flatnonzero(docs == doc)
            raise DataError(f"{source}: the rows of document {doc!r} (column {column!r}) are not together: it "
                            f"comes back at rows {format_rows(rows)} after other documents' rows. Prediction with "
                            "[context] reads the input document by document; sort it by that column first.")
        seen[doc] = start
