"""Load and validate a human-coded table into lexcoder's canonical form.

The canonical table has columns ``id`` (str), ``text`` (str), optional ``group`` (str), one int8 0/1
column per label, and ``source_row`` (1-based data row in the input file, for error messages and audits).
Other columns are carried along; those ``[context]`` reads are checked (:mod:`lexcoder.context`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .config import ContextConfig, DataConfig
from .context import RESERVED, check_context_columns  # RESERVED: the canonical table's own column names
from .errors import DataError, did_you_mean, format_rows
from .io import excel_sheet_columns, read_table, table_format

log = logging.getLogger(__name__)

TRUE_VALUES = {"1", "1.0", "true", "t", "yes", "y"}
FALSE_VALUES = {"0", "0.0", "false", "f", "no", "n"}
# how R, Stata and spreadsheets write a missing value into a text file: an empty label cell, like ""
MISSING_VALUES = {"", "na", "n/a", "nan", "null", "none", "."}


class MissingColumnsError(DataError):
    """Columns named in ``[data]`` are not in the table (``columns``: the missing names)."""

    def __init__(self, message: str, columns: list[str]) -> None:
        super().__init__(message)
        self.columns = columns


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

    keys = values.map(to_key).astype(object)
    out = pd.Series(pd.NA, index=values.index, dtype="Int8")
    out[keys.isin(TRUE_VALUES).to_numpy()] = 1
    out[keys.isin(FALSE_VALUES).to_numpy()] = 0
    bad = (keys.notna() & ~keys.isin(MISSING_VALUES) & out.isna()).to_numpy()
    if bad.any():
        rows = np.flatnonzero(bad) + 1
        examples = sorted({str(v) for v in values[bad].head(5)})
        raise DataError(
            f"{source}: column '{column}' must hold 0/1 (or true/false, yes/no) but rows "
            f"{format_rows(rows)} hold {examples}. Recode those cells to 0 or 1.")
    return out


def normalize_classes(values: pd.Series, *, column: str, source: str) -> pd.Series:
    """A categorical column as strings (numbers written as ``1``, not ``1.0``; spaces stripped), NA where
    empty. Values that are not text or numbers (e.g. a date) are an error naming the rows."""
    def to_class(v):
        if _is_missing(v):
            return None
        if isinstance(v, (bool, np.bool_)):
            return str(bool(v)).lower()
        if isinstance(v, (int, np.integer)) or (isinstance(v, (float, np.floating)) and float(v).is_integer()):
            return str(int(v))
        if isinstance(v, (str, float, np.floating)):
            text = str(v).strip()
            return text if text.lower() not in MISSING_VALUES else None
        return ...

    classes = values.map(to_class).astype(object)
    bad = classes.map(lambda c: c is ...).to_numpy(dtype=bool)
    if bad.any():
        raise DataError(f"{source}: column '{column}' (class_columns) must hold text or numbers, but rows "
                        f"{format_rows(np.flatnonzero(bad) + 1)} hold {sorted({type(v).__name__ for v in values[bad]})}"
                        " values. Write the classes as text.")
    return classes.astype("string")


def _check_classes(values: pd.Series, *, column: str, source: str) -> None:
    """A categorical variable needs at least two classes among the rows kept."""
    classes = values.dropna().unique()
    if len(classes) < 2:
        raise DataError(f"{source}: column '{column}' (class_columns) holds {len(classes)} distinct value(s) "
                        f"({sorted(map(str, classes))}); a categorical variable needs at least two classes. "
                        "Check that class_columns names the right column.")


def load_dataset(cfg: DataConfig, *, context: ContextConfig | None = None) -> tuple[pd.DataFrame, LoadReport]:
    """Read ``cfg.path`` and return the validated canonical table and a report.

    ``context``: the run's ``[context]``, whose document, order and metadata columns are checked too.

    Raises
    ------
    DataError
        For a missing/unreadable file, missing columns, invalid or missing labels, duplicate ids,
        or empty texts (unless the matching ``drop_*`` option is set). Messages name file, rows, column.
    """
    raw = read_table(cfg.path, sheet=cfg.sheet)
    try:
        return validate_table(raw, cfg, source=str(cfg.path), context=context)
    except MissingColumnsError as err:
        if table_format(cfg.path) != "xlsx":
            raise
        raise MissingColumnsError(f"{err}\n{_sheet_advice(cfg, err.columns)}", err.columns) from None


def validate_table(raw: pd.DataFrame, cfg: DataConfig, *, source: str = "input",
                   context: ContextConfig | None = None) -> tuple[pd.DataFrame, LoadReport]:
    """Validate an in-memory table (the Python API's entry point; :func:`load_dataset` reads a file)."""
    report = LoadReport(rows_read=len(raw))
    _check_not_empty(raw, cfg, source)
    _check_columns(raw, cfg, source)
    raw = raw.reset_index(drop=True)
    # document, order (as numbers) and metadata columns of [context], under their names in the table
    context_values = {} if context is None else check_context_columns(raw, cfg, context, source=source)
    df = pd.DataFrame({"source_row": np.arange(1, len(raw) + 1)})
    df["id"] = _ids(raw, cfg, source, report)
    df["text"] = raw[cfg.text_column].map(lambda v: "" if _is_missing(v) else str(v))
    if cfg.group_column:
        df["group"] = raw[cfg.group_column].map(lambda v: "" if _is_missing(v) else str(v))
    for col in _all_label_columns(cfg, raw):
        df[col] = normalize_labels(raw[col], column=col, source=source)
    for col in cfg.class_columns:
        df[col] = normalize_classes(raw[col], column=col, source=source)
    for col in raw.columns:  # carry other columns along (e.g. court, year) for later analyses
        if col not in df.columns and col not in {cfg.text_column, cfg.id_column, cfg.group_column} \
                and col not in RESERVED:
            df[col] = raw[col]
    for col, values in context_values.items():
        if col != "group":  # (the group column is already there, as text)
            df[col] = values.to_numpy()

    df = _handle_missing_labels(df, cfg, source, report)
    df = _handle_empty_texts(df, cfg, source, report)
    for col in cfg.label_columns:
        df[col] = df[col].astype("int8")
    for col in cfg.class_columns:
        _check_classes(df[col], column=col, source=source)
    report.rows_kept = len(df)
    if not len(df):
        raise DataError(f"{source}: no rows left after validation ({'; '.join(report.notes)}). Fill in the "
                        "missing labels and texts, or check that text_column and label_columns name the right "
                        "columns.")
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


def _check_not_empty(raw: pd.DataFrame, cfg: DataConfig, source: str) -> None:
    also = " and sheet" if cfg.sheet is not None else ""
    if len(raw.columns) and not len(raw):
        raise DataError(f"{source}: the table has column names ({_listed(raw.columns)}) but no data rows. "
                        f"Add the coded texts below the header, or check data.path{also}.")
    if not len(raw.columns):
        raise MissingColumnsError(f"{source}: the table is empty (no columns, no rows). Check data.path{also}.",
                                  [col for _, col in _roles(cfg)])


def _listed(columns, limit: int = 30) -> str:
    names = [str(c) for c in columns]
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _check_columns(raw: pd.DataFrame, cfg: DataConfig, source: str) -> None:
    wanted = _roles(cfg)
    missing = [(key, col) for key, col in wanted if col not in raw.columns]
    if missing:
        lines = [f"  - {key} = {col!r}{did_you_mean(col, raw.columns)}" for key, col in missing]
        unnamed = sum(str(c).startswith("Unnamed: ") for c in raw.columns)
        hint = (" Most columns have no name: the column names must be in the first row (delete any title "
                "rows above them)." if unnamed > len(raw.columns) / 2 else "")
        raise MissingColumnsError(
            f"{source}: column(s) not found:\n" + "\n".join(lines) + "\nThe file has columns: "
            f"{_listed(raw.columns)}.{hint} Fix the names in the [data] section of your config.",
            [col for _, col in missing])
    clash = sorted(set(cfg.coded_columns) & RESERVED)
    if clash:
        kind = "label" if set(clash) <= set(cfg.label_columns) else "coded"
        raise DataError(f"{source}: {kind} column(s) {clash} use a name lexcoder reserves "
                        f"({sorted(RESERVED)}). Rename them in the file.")
    _check_one_role_each(wanted, source)


def _roles(cfg: DataConfig) -> list[tuple[str, str]]:
    """(config key, column) for every column the config names."""
    named = [("text_column", cfg.text_column), ("id_column", cfg.id_column), ("group_column", cfg.group_column)]
    return [(k, c) for k, c in named if c] + [("label_columns", c) for c in cfg.label_columns] + \
        [("class_columns", c) for c in cfg.class_columns]


def _check_one_role_each(wanted: list[tuple[str, str]], source: str) -> None:
    roles: dict[str, list[str]] = {}
    for key, col in wanted:
        roles.setdefault(col, []).append(key)
    for col, keys in roles.items():
        if len(keys) > 1 and set(keys) != {"id_column", "group_column"}:  # one row per group: harmless
            raise DataError(f"{source}: column {col!r} is named both as {' and as '.join(keys)} in [data]; a "
                            "column can play one part only. Fix the [data] section of your config.")


def _sheet_advice(cfg: DataConfig, missing: list[str]) -> str:
    """Which sheet of the workbook holds the missing columns, or the list of its sheets."""
    sheets = excel_sheet_columns(cfg.path)
    read = list(sheets)[cfg.sheet or 0] if not isinstance(cfg.sheet, str) else cfg.sheet
    holding = [name for name, cols in sheets.items() if name != read and set(missing) <= set(cols)]
    if holding:
        return (f"These columns are on the sheet {holding[0]!r}, but lexcoder read the sheet {read!r}: set "
                f'sheet = "{holding[0]}" in [data].')
    listed = ", ".join(f"{name!r} ({len(cols)} columns)" for name, cols in sheets.items())
    return (f"lexcoder read the sheet {read!r}; the workbook's sheets are: {listed}. If the table is on "
            'another sheet, set sheet = "<name>" in [data].')


def _ids(raw: pd.DataFrame, cfg: DataConfig, source: str, report: LoadReport) -> pd.Series:
    if not cfg.id_column:
        report.generated_ids = True
        return pd.Series([f"row_{i}" for i in range(1, len(raw) + 1)])
    ids = raw[cfg.id_column]
    missing = ids.map(_is_missing).astype(bool) | ids.astype(str).str.strip().eq("").astype(bool)
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
    missing = df[cfg.coded_columns].isna()
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
    fill, what = ("its class", "class") if col in cfg.class_columns else ("0 or 1", "label")
    # a class written as a missing-value mark ("none", "NA") reads as missing: say so, or the user is puzzled
    marks = (f" (or holds a missing-value mark: {', '.join(sorted(repr(m) for m in MISSING_VALUES if m))}; a "
             "class written so must be renamed, e.g. 'none' -> 'no_one')") if col in cfg.class_columns else ""
    raise DataError(f"{source}: {total} row(s) have a missing {what}; column '{col}' is empty in rows "
                    f"{format_rows(rows)}{marks}. Fill in {fill}, or set drop_missing_labels = true in [data] "
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
