"""Load and validate a human-coded table into lexcoder's canonical form.

The canonical table has columns ``id`` (str), ``text`` (str), optional ``group`` (str), one int8 0/1
column per label, and ``source_row`` (1-based data row in the input file, for error messages and audits).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .config import DataConfig
from .errors import DataError, format_rows
from .io import read_table

log = logging.getLogger(__name__)

TRUE_VALUES = {"1", "1.0", "true", "t", "yes", "y"}
FALSE_VALUES = {"0", "0.0", "false", "f", "no", "n"}
RESERVED = {"id", "text", "group", "source_row", "dup_group"}


@dataclass
class LoadReport:
    """What loading did to the table (reported to the user and stored in the manifest)."""

    rows_read: int = 0
    rows_kept: int = 0
    dropped_missing_labels: int = 0
    dropped_empty_texts: int = 0
    generated_ids: bool = False
    notes: list[str] = field(default_factory=list)


def normalize_labels(values: pd.Series, *, column: str, source: str) -> pd.Series:
    """Map 0/1, true/false, yes/no (any case) to a nullable Int8 series; anything else is an error."""
    def to_key(v):
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            return None
        if isinstance(v, (bool, np.bool_)):
            return "1" if v else "0"
        return str(v).strip().lower()

    keys = values.map(to_key)
    out = pd.Series(pd.NA, index=values.index, dtype="Int8")
    out[keys.isin(TRUE_VALUES)] = 1
    out[keys.isin(FALSE_VALUES)] = 0
    bad = keys.notna() & keys.ne("") & out.isna()
    if bad.any():
        rows = np.flatnonzero(bad.to_numpy()) + 1
        examples = sorted({str(v) for v in values[bad].head(5)})
        raise DataError(
            f"{source}: column '{column}' must hold 0/1 (or true/false, yes/no) but rows "
            f"{format_rows(rows)} hold {examples}. Recode those cells to 0 or 1.")
    return out


def load_dataset(cfg: DataConfig) -> tuple[pd.DataFrame, LoadReport]:
    """Read ``cfg.path`` and return the validated canonical table and a report.

    Raises
    ------
    DataError
        For a missing/unreadable file, missing columns, invalid or missing labels, duplicate ids,
        or empty texts (unless the matching ``drop_*`` option is set). Messages name file, rows, column.
    """
    raw = read_table(cfg.path, sheet=cfg.sheet)
    return validate_table(raw, cfg, source=str(cfg.path))


def validate_table(raw: pd.DataFrame, cfg: DataConfig, *, source: str = "input"
                   ) -> tuple[pd.DataFrame, LoadReport]:
    """Validate an in-memory table (the Python API's entry point; :func:`load_dataset` reads a file)."""
    report = LoadReport(rows_read=len(raw))
    _check_columns(raw, cfg, source)
    raw = raw.reset_index(drop=True)
    df = pd.DataFrame({"source_row": np.arange(1, len(raw) + 1)})
    df["id"] = _ids(raw, cfg, source, report)
    df["text"] = raw[cfg.text_column].map(lambda v: "" if _is_missing(v) else str(v))
    if cfg.group_column:
        df["group"] = raw[cfg.group_column].map(lambda v: "" if _is_missing(v) else str(v))
    for col in _all_label_columns(cfg, raw):
        df[col] = normalize_labels(raw[col], column=col, source=source)
    for col in raw.columns:  # carry other columns along (e.g. court, year) for later analyses
        if col not in df.columns and col not in {cfg.text_column, cfg.id_column, cfg.group_column} \
                and col not in RESERVED:
            df[col] = raw[col]

    df = _handle_missing_labels(df, cfg, source, report)
    df = _handle_empty_texts(df, cfg, source, report)
    for col in cfg.label_columns:
        df[col] = df[col].astype("int8")
    report.rows_kept = len(df)
    if not len(df):
        raise DataError(f"{source}: no rows left after validation.")
    return df.reset_index(drop=True), report


def second_coder_columns(cfg: DataConfig, columns) -> dict[str, str]:
    """Map label -> second coder's column, for labels whose ``<label><suffix>`` column exists."""
    if not cfg.second_coder_suffix:
        return {}
    return {lab: lab + cfg.second_coder_suffix for lab in cfg.label_columns
            if lab + cfg.second_coder_suffix in columns}


def _all_label_columns(cfg: DataConfig, raw: pd.DataFrame) -> list[str]:
    return list(cfg.label_columns) + list(second_coder_columns(cfg, raw.columns).values())


def id_to_str(value) -> str:
    """Canonical text form of an id: ``123``, ``123.0`` (Excel's numbers) and ``" 123"`` all give ``"123"``."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value).strip()


def _is_missing(v) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v))


def _check_columns(raw: pd.DataFrame, cfg: DataConfig, source: str) -> None:
    wanted = [("text_column", cfg.text_column), ("id_column", cfg.id_column),
              ("group_column", cfg.group_column)] + [("label_columns", c) for c in cfg.label_columns]
    missing = [(key, col) for key, col in wanted if col and col not in raw.columns]
    if missing:
        have = ", ".join(map(str, raw.columns[:30]))
        lines = [f"  - {key} = {col!r}{_did_you_mean(col, raw.columns)}" for key, col in missing]
        raise DataError(f"{source}: column(s) not found:\n" + "\n".join(lines)
                        + f"\nThe file has columns: {have}. Fix the names in the [data] section of your config.")
    clash = sorted(set(cfg.label_columns) & RESERVED)
    if clash:
        raise DataError(f"{source}: label column(s) {clash} use a name lexcoder reserves "
                        f"({sorted(RESERVED)}). Rename them in the file.")


def _did_you_mean(name: str, columns) -> str:
    import difflib
    close = difflib.get_close_matches(str(name), [str(c) for c in columns], n=1, cutoff=0.6)
    if not close:
        close = [str(c) for c in columns if str(c).lower() == str(name).lower()]
    return f" (did you mean {close[0]!r}?)" if close else ""


def _ids(raw: pd.DataFrame, cfg: DataConfig, source: str, report: LoadReport) -> pd.Series:
    if not cfg.id_column:
        report.generated_ids = True
        return pd.Series([f"row_{i}" for i in range(1, len(raw) + 1)])
    ids = raw[cfg.id_column]
    missing = ids.map(_is_missing) | ids.astype(str).str.strip().eq("")
    if missing.any():
        raise DataError(f"{source}: column '{cfg.id_column}' (id_column) is empty in rows "
                        f"{format_rows(np.flatnonzero(missing.to_numpy()) + 1)}. Every row needs an id; "
                        "fill them in, or remove id_column from the config to number rows automatically.")
    ids = ids.map(id_to_str)
    dup = ids.duplicated(keep=False)
    if dup.any():
        first = ids[dup].iloc[0]
        rows = np.flatnonzero((ids == first).to_numpy()) + 1
        raise DataError(f"{source}: column '{cfg.id_column}' (id_column) must be unique, but "
                        f"{ids[dup].nunique()} id(s) repeat, e.g. {first!r} in rows {format_rows(rows)}. "
                        "Make the ids unique or remove id_column to number rows automatically.")
    return ids.reset_index(drop=True)


def _handle_missing_labels(df: pd.DataFrame, cfg: DataConfig, source: str, report: LoadReport
                           ) -> pd.DataFrame:
    missing = df[cfg.label_columns].isna()
    if not missing.any().any():
        return df
    if cfg.drop_missing_labels:
        drop = missing.any(axis=1)
        report.dropped_missing_labels = int(drop.sum())
        report.notes.append(f"dropped {int(drop.sum())} row(s) with a missing label (drop_missing_labels)")
        return df[~drop]
    col = missing.any().idxmax()
    rows = df.loc[missing[col], "source_row"].tolist()
    total = int(missing.any(axis=1).sum())
    raise DataError(f"{source}: {total} row(s) have a missing label; column '{col}' is empty in rows "
                    f"{format_rows(rows)}. Fill in 0 or 1, or set drop_missing_labels = true in [data] "
                    "to leave those rows out.")


def _handle_empty_texts(df: pd.DataFrame, cfg: DataConfig, source: str, report: LoadReport
                        ) -> pd.DataFrame:
    empty = df["text"].str.strip().eq("")
    if not empty.any():
        return df
    if cfg.drop_empty_texts:
        report.dropped_empty_texts = int(empty.sum())
        report.notes.append(f"dropped {int(empty.sum())} row(s) with an empty text (drop_empty_texts)")
        return df[~empty]
    raise DataError(f"{source}: column '{cfg.text_column}' (text_column) is empty in rows "
                    f"{format_rows(df.loc[empty, 'source_row'])}. Fill in the texts, or set "
                    "drop_empty_texts = true in [data] to leave those rows out.")
