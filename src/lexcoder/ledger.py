"""The corrections ledger: an append-only CSV of reviewed codes, applied on top of the original data.

Each ledger row says: for text ``id`` and ``label`` the code ``old_value`` was reviewed by ``reviewer``
at ``timestamp`` and is now ``new_value`` (equal to ``old_value`` for a "keep" decision), with a note and
the run whose review queue it came from. The original data file and a run's ``data.parquet`` are never
modified: a run trained with ``--corrections`` stores the entries it applied in
``corrections_applied.parquet`` and applies them when it reads its data (:func:`training_table`).

The ledger belongs to the data layer, not to :mod:`lexcoder.audit`, because it decides what a run trains
on: the pipeline and the report read it from here, and the audit records reviewed decisions in it.
"""
from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from .data import id_to_str
from .errors import DataError, format_rows
from .io import file_sha256
from .rundir import RunDir
from .safety import neutralise_formulas, unquote_cell

log = logging.getLogger(__name__)

LEDGER_COLUMNS = ["id", "label", "old_value", "new_value", "reviewer", "timestamp", "note", "source_run"]
DECISIONS = {"keep": 0, "flip": 1}
TEXT_COLUMNS = ["id", "label", "reviewer", "timestamp", "note", "source_run"]


def read_ledger(path: str | Path) -> pd.DataFrame:
    """The ledger at ``path`` (an empty one if the file does not exist yet), values checked."""
    path = Path(path)
    if not path.is_file():
        return pd.DataFrame({c: pd.Series(dtype=object) for c in LEDGER_COLUMNS})
    ledger = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in LEDGER_COLUMNS if c not in ledger.columns]
    if missing:
        raise DataError(f"{path}: not a lexcoder corrections ledger (columns {missing} missing). Ledgers "
                        "are written by `lexcoder corrections apply`; do not edit them by hand.")
    for col in ("old_value", "new_value"):
        bad = ~ledger[col].isin(["0", "1"])
        if bad.any():
            raise DataError(f"{path}: column '{col}' must be 0 or 1; ledger rows "
                            f"{format_rows(np.flatnonzero(bad) + 2)} hold something else.")
        ledger[col] = ledger[col].astype(int)
    for col in TEXT_COLUMNS:  # undo the export's formula guard (see append_ledger)
        ledger[col] = ledger[col].map(unquote_cell)
    return ledger[LEDGER_COLUMNS]


def append_ledger(entries: pd.DataFrame, path: str | Path) -> Path:
    """Append ``entries`` (``LEDGER_COLUMNS``) to the ledger CSV; existing rows are never rewritten.

    The new rows are written in one go under an exclusive lock on the ledger (two reviewers applying at
    once wait for each other) and flushed to disk; if the write fails (disk full) the ledger is cut back
    to its previous end, so it never holds half a row. Text cells a spreadsheet would run as formulas get
    a leading ``'`` (:func:`lexcoder.safety.neutralise_formulas`), which :func:`read_ledger` removes.
    """
    import fcntl
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a+b")
    except OSError as err:
        raise DataError(f"Cannot write the ledger {path}: {err.strerror}. Choose a writable path for the ledger.") from None
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        end = fh.seek(0, os.SEEK_END)
        rows = neutralise_formulas(entries[LEDGER_COLUMNS].astype(str), TEXT_COLUMNS)
        text = rows.to_csv(index=False, header=end == 0, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        try:
            fh.write(text.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        except OSError as err:
            fh.truncate(end)
            raise DataError(f"Cannot write the ledger {path}: {err.strerror}. It is unchanged; free space "
                            "and apply the review again.") from None
    return path


def apply_ledger(df: pd.DataFrame, ledger: pd.DataFrame, label_columns: Sequence[str], *,
                 source: str = "the ledger") -> pd.DataFrame:
    """Labels after the ledger: entries are replayed in order on top of ``df``'s (original) labels.

    Raises
    ------
    DataError
        For an unknown id or label, or an entry whose ``old_value`` does not match the value at that
        point (the data changed, or the ledger belongs to another data set); the message names the row.
    """
    out = df.copy()
    position = pd.Series(np.arange(len(df)), index=df["id"].astype(str))
    for i, entry in enumerate(ledger.itertuples(index=False)):
        row = _locate(position, label_columns, entry.id, entry.label, f"{source}, row {i + 2}")
        current = int(out[entry.label].iat[row])
        if current != int(entry.old_value):
            raise DataError(f"{source}, row {i + 2}: id {entry.id!r}, label {entry.label!r} has old_value "
                            f"{entry.old_value} but the label is {current} at that point. The data or an "
                            "earlier correction changed it; use a ledger made for this data.")
        out.iloc[row, out.columns.get_loc(entry.label)] = int(entry.new_value)
    return out


def _locate(position: pd.Series, label_columns: Sequence[str], id_, label: str, where: str) -> int:
    if label not in label_columns:
        raise DataError(f"{where}: label {label!r} is not one of the run's labels {list(label_columns)}.")
    key = id_to_str(id_)  # ids typed as numbers by Excel come back as 123.0
    if key not in position.index:
        raise DataError(f"{where}: id {id_!r} is not in the data. Check that the file belongs to this run.")
    return int(position[key])


def review_entries(reviewed: pd.DataFrame, current: pd.DataFrame, ledger: pd.DataFrame,
                   label_columns: Sequence[str], *, reviewer: str, source_run: str,
                   source: str = "the review file") -> pd.DataFrame:
    """New ledger entries for the decided rows of a reviewed queue (already recorded ones are skipped).

    Parameters
    ----------
    reviewed : the queue with ``id``, ``label``, ``human_value``, ``decision`` (keep/flip/empty), ``note``
    current : the labels the ledger entries apply to (original data + ``ledger`` so far)
    ledger : the existing ledger (to make re-applying the same review a no-op)

    Raises
    ------
    DataError
        Naming the review file's row: a missing column, an unknown id or label, a decision other than
        keep/flip, a repeated (id, label), or a ``human_value`` that no longer matches the current code.
    """
    decided = _decided_rows(reviewed, source)
    position = pd.Series(np.arange(len(current)), index=current["id"].astype(str))
    latest = {(str(r.id), r.label): (int(r.old_value), int(r.new_value)) for r in ledger.itertuples()}
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    entries = []
    for line, rec in decided.iterrows():
        where = f"{source}, row {line}"
        row = _locate(position, label_columns, rec["id"], rec["label"], where)
        old = _binary(rec["human_value"], where)
        new = old if rec["decision"] == "keep" else 1 - old
        if latest.get((id_to_str(rec["id"]), rec["label"])) == (old, new):
            continue  # this decision is already in the ledger: re-applying is a no-op
        now_value = int(current[rec["label"]].iat[row])
        if now_value != old:
            raise DataError(f"{where}: id {rec['id']!r}, label {rec['label']!r} shows human_value {old} but "
                            f"the current code is {now_value} (changed by an earlier correction?). Review "
                            "a fresh queue from `lexcoder audit` of a run that uses the current ledger.")
        entries.append({"id": id_to_str(rec["id"]), "label": rec["label"], "old_value": old, "new_value": new,
                        "reviewer": reviewer, "timestamp": now, "note": rec["note"], "source_run": source_run})
    return pd.DataFrame(entries, columns=LEDGER_COLUMNS)


def _decided_rows(reviewed: pd.DataFrame, source: str) -> pd.DataFrame:
    """Rows with a decision, indexed by their 1-based line in the file (header = line 1)."""
    missing = [c for c in ("id", "label", "human_value", "decision") if c not in reviewed.columns]
    if missing:
        raise DataError(f"{source}: column(s) {missing} missing. Review the label_issues.csv written by "
                        "`lexcoder audit` and keep its columns.")
    rev = reviewed.copy()
    rev.index = np.arange(2, len(rev) + 2)
    rev["decision"] = rev["decision"].fillna("").astype(str).str.strip().str.lower()
    rev["note"] = rev["note"].fillna("").astype(str) if "note" in rev else ""
    bad = ~rev["decision"].isin(["", *DECISIONS])
    if bad.any():
        raise DataError(f"{source}: column 'decision' must be keep, flip or empty; rows "
                        f"{format_rows(rev.index[bad])} hold {sorted(set(rev.loc[bad, 'decision']))[:5]}.")
    rev = rev[rev["decision"] != ""]
    dup = rev.duplicated(["id", "label"], keep=False)
    if dup.any():
        raise DataError(f"{source}: rows {format_rows(rev.index[dup])} decide the same id and label twice. "
                        "Keep one decision per (id, label).")
    return rev


def _binary(value, where: str) -> int:
    text = str(value).strip()
    if text in ("0", "1", "0.0", "1.0"):
        return int(float(text))
    raise DataError(f"{where}: human_value must be 0 or 1, found {value!r}.")


def check_corrections(df: pd.DataFrame, ledger_path: str | Path, label_columns: Sequence[str]
                      ) -> tuple[pd.DataFrame, dict]:
    """Read a ledger and check that it applies to a new run's data; nothing is written.

    Returns
    -------
    the ledger, and the manifest block: ledger path and sha256, entries, and codes changed per label

    Raises
    ------
    DataError
        For a missing ledger, or an entry that does not apply to ``df`` (the message names the row).
    """
    ledger_path = Path(ledger_path)
    if not ledger_path.is_file():
        raise DataError(f"{ledger_path}: corrections ledger not found. Create it with "
                        "`lexcoder corrections apply RUN_DIR reviewed.csv --reviewer NAME`.")
    ledger = read_ledger(ledger_path)
    corrected = apply_ledger(df, ledger, label_columns, source=str(ledger_path))
    changed = {lab: int((corrected[lab] != df[lab]).sum()) for lab in label_columns}
    return ledger, {"ledger": str(ledger_path.resolve()), "sha256": file_sha256(ledger_path),
                    "entries": len(ledger), "labels_changed": changed, "applied_file": RunDir.corrections_applied.name}


def training_table(run_root: str | Path, df: pd.DataFrame, label_columns: Sequence[str]) -> pd.DataFrame:
    """The run's data with the labels used for training: ``df`` (``data.parquet``) plus its corrections.

    ``data.parquet`` keeps the original human codes; without ``corrections_applied.parquet`` in the run
    directory ``df`` is returned unchanged.
    """
    applied = RunDir(Path(run_root)).corrections_applied
    if not applied.is_file():
        return df
    return apply_ledger(df, pd.read_parquet(applied), label_columns, source=str(applied))
