"""The corrections ledger: an append-only CSV of reviewed codes, applied on top of the original data.

Each ledger row says: for text ``id`` and ``label`` the code ``old_value`` was reviewed by ``reviewer``
at ``timestamp`` and is now ``new_value`` (equal to ``old_value`` for a "keep" decision), with a note and
the run whose review queue it came from. ``label`` names a 0/1 label (values ``0``/``1``) or a categorical
variable of ``class_columns`` (values are its classes, as text). The original data file and a run's
``data.parquet`` are never modified: a run trained with ``--corrections`` stores the entries it applied in
``corrections_applied.parquet`` and applies them when it reads its data (:func:`training_table`).

The ledger belongs to the data layer, not to :mod:`lexcoder.audit`, because it decides what a run trains
on: the pipeline and the report read it from here, and the audit records reviewed decisions in it.

A reviewed queue (:func:`review_entries`) decides a 0/1 label's row with ``decision`` = ``keep`` or
``flip``, and a categorical variable's row with ``keep`` or ``change``: ``change`` sets the class written
in ``new_value``, or the model's ``suggested_value`` when ``new_value`` is empty; a class written in
``new_value`` with an empty ``decision`` is a ``change`` too.
"""
from __future__ import annotations

import csv
import logging
import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from .data import id_to_str, normalize_classes
from .errors import DataError, format_rows
from .io import file_sha256
from .rundir import RunDir
from .safety import neutralise_formulas, unquote_cell

log = logging.getLogger(__name__)

LEDGER_COLUMNS = ["id", "label", "old_value", "new_value", "reviewer", "timestamp", "note", "source_run"]
DECISIONS = {"keep": 0, "flip": 1}  # a 0/1 label's decisions: how much to add (mod 2) to the code
CLASS_DECISIONS = ("keep", "change")  # a categorical variable's decisions
TEXT_COLUMNS = ["id", "label", "reviewer", "timestamp", "note", "source_run"]
VALUE_COLUMNS = ["old_value", "new_value"]


def read_ledger(path: str | Path, class_columns: Sequence[str] = ()) -> pd.DataFrame:
    """The ledger at ``path`` (an empty one if the file does not exist yet), values checked.

    Parameters
    ----------
    path : the ledger CSV
    class_columns : the run's categorical variables: their entries hold class values (any non-empty
        text); every other entry must hold 0 or 1

    Returns
    -------
    DataFrame with :data:`LEDGER_COLUMNS`. ``old_value``/``new_value`` are ints when every entry is a 0/1
    label's, and text (``"0"``/``"1"`` for the labels) when some entry is a categorical variable's.
    """
    path = Path(path)
    if not path.is_file():
        return pd.DataFrame({c: pd.Series(dtype=object) for c in LEDGER_COLUMNS})
    ledger = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in LEDGER_COLUMNS if c not in ledger.columns]
    if missing:
        raise DataError(f"{path}: not a lexcoder corrections ledger (columns {missing} missing). Ledgers "
                        "are written by `lexcoder corrections apply`; do not edit them by hand.")
    for col in [*TEXT_COLUMNS, *VALUE_COLUMNS]:  # undo the export's formula guard (see append_ledger)
        ledger[col] = ledger[col].map(unquote_cell)
    is_class = ledger["label"].isin(list(class_columns)).to_numpy()
    for col in VALUE_COLUMNS:
        bad = ~is_class & ~ledger[col].isin(["0", "1"]).to_numpy()
        if bad.any():
            hint = "" if class_columns else " (a categorical variable's entries are read with its run's class_columns)"
            names = sorted(set(ledger.loc[bad, "label"]))[:5]
            raise DataError(f"{path}: column '{col}' must be 0 or 1 for a 0/1 label; ledger rows "
                            f"{format_rows(np.flatnonzero(bad) + 2)} (label(s) {names}) hold something else{hint}.")
        empty = is_class & ledger[col].str.strip().eq("").to_numpy()
        if empty.any():
            raise DataError(f"{path}: column '{col}' is empty in ledger rows {format_rows(np.flatnonzero(empty) + 2)}; "
                            "an entry of a categorical variable holds one of its classes.")
        if not is_class.any():
            ledger[col] = ledger[col].astype(int)
    return ledger[LEDGER_COLUMNS]


def append_ledger(entries: pd.DataFrame, path: str | Path) -> Path:
    """Append ``entries`` (``LEDGER_COLUMNS``) to the ledger CSV; existing rows are never rewritten.

    The new rows are written in one go under an exclusive lock on the ledger (two reviewers applying at
    once wait for each other) and flushed to disk; if the write fails (disk full) the ledger is cut back
    to its previous end, so it never holds half a row. Text cells a spreadsheet would run as formulas
    (ids, notes, class values) get a leading ``'`` (:func:`lexcoder.safety.neutralise_formulas`), which
    :func:`read_ledger` removes.
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
        rows = neutralise_formulas(entries[LEDGER_COLUMNS].astype(str), [*TEXT_COLUMNS, *VALUE_COLUMNS])
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
                 class_columns: Sequence[str] = (), source: str = "the ledger") -> pd.DataFrame:
    """Codes after the ledger: entries are replayed in order on top of ``df``'s (original) codes.

    Parameters
    ----------
    df : the canonical table (original codes)
    ledger : :func:`read_ledger` output
    label_columns, class_columns : the 0/1 labels and categorical variables entries may name; a
        variable's new value must be one of its classes in ``df``

    Raises
    ------
    DataError
        For an unknown id, label or class, or an entry whose ``old_value`` does not match the value at that
        point (the data changed, or the ledger belongs to another data set); the message names the row.
    """
    out = df.copy()
    position = pd.Series(np.arange(len(df)), index=df["id"].astype(str))
    classes = {v: sorted(df[v].dropna().astype(str).unique()) for v in class_columns}
    for i, entry in enumerate(ledger.itertuples(index=False)):
        where = f"{source}, row {i + 2}"
        row = _locate(position, label_columns, entry.id, entry.label, where, class_columns)
        column = out.columns.get_loc(entry.label)
        if entry.label in classes:
            out.iloc[row, column] = _class_step(str(out.iat[row, column]), entry, classes[entry.label], where)
            continue
        current = int(out[entry.label].iat[row])
        if current != int(entry.old_value):
            raise DataError(f"{where}: id {entry.id!r}, label {entry.label!r} has old_value "
                            f"{entry.old_value} but the label is {current} at that point. The data or an "
                            "earlier correction changed it; use a ledger made for this data.")
        out.iloc[row, column] = int(entry.new_value)
    return out


def _class_step(current: str, entry, classes: list[str], where: str) -> str:
    """A categorical variable's value after one ledger entry (checked against the value before it)."""
    if current != str(entry.old_value):
        raise DataError(f"{where}: id {entry.id!r}, variable {entry.label!r} has old_value {entry.old_value!r} "
                        f"but the variable is {current!r} at that point. The data or an earlier correction "
                        "changed it; use a ledger made for this data.")
    if str(entry.new_value) not in classes:
        raise DataError(f"{where}: id {entry.id!r}, variable {entry.label!r} has new_value {entry.new_value!r}, "
                        f"which is not one of its classes {classes}. Correct the entry to one of these.")
    return str(entry.new_value)


def _locate(position: pd.Series, label_columns: Sequence[str], id_, label: str, where: str,
            class_columns: Sequence[str] = ()) -> int:
    if label not in label_columns and label not in class_columns:
        what = "labels" if not class_columns else "labels or categorical variables"
        raise DataError(f"{where}: label {label!r} is not one of the run's {what} "
                        f"{[*label_columns, *class_columns]}.")
    key = id_to_str(id_)  # ids typed as numbers by Excel come back as 123.0
    if key not in position.index:
        raise DataError(f"{where}: id {id_!r} is not in the data. Check that the file belongs to this run.")
    return int(position[key])


def review_entries(reviewed: pd.DataFrame, current: pd.DataFrame, ledger: pd.DataFrame,
                   label_columns: Sequence[str], *, reviewer: str, source_run: str,
                   classes: Mapping[str, Sequence[str]] | None = None,
                   source: str = "the review file") -> pd.DataFrame:
    """New ledger entries for the decided rows of a reviewed queue (already recorded ones are skipped).

    Parameters
    ----------
    reviewed : the queue with ``id``, ``label``, ``human_value``, ``decision``, ``note`` (and, for
        categorical variables, ``new_value`` and ``suggested_value``; see the module docstring)
    current : the codes the ledger entries apply to (original data + ``ledger`` so far)
    ledger : the existing ledger (to make re-applying the same review a no-op)
    classes : ``{variable: its classes}`` for the run's categorical variables (none: 0/1 labels only)

    Raises
    ------
    DataError
        Naming the review file's row: a missing column, an unknown id or label, a decision other than
        keep/flip (0/1 labels) or keep/change (variables), a new class that is not one of the variable's
        classes, a repeated (id, label), or a ``human_value`` that no longer matches the current code.
    """
    classes = {v: [str(c) for c in cs] for v, cs in (classes or {}).items()}
    decided = _decided_rows(reviewed, source, variables=bool(classes))
    position = pd.Series(np.arange(len(current)), index=current["id"].astype(str))
    latest = {(str(r.id), r.label): (str(r.old_value), str(r.new_value)) for r in ledger.itertuples()}
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    entries = []
    for line, rec in decided.iterrows():
        where = f"{source}, row {line}"
        row = _locate(position, label_columns, rec["id"], rec["label"], where, list(classes))
        if rec["label"] in classes:
            old, new = _class_decision(rec, classes[rec["label"]], where)
            now_value = str(current[rec["label"]].iat[row])
        else:
            old, new = _label_decision(rec, where)
            now_value = int(current[rec["label"]].iat[row])
        if latest.get((id_to_str(rec["id"]), rec["label"])) == (str(old), str(new)):
            continue  # this decision is already in the ledger: re-applying is a no-op
        if now_value != old:
            raise DataError(f"{where}: id {rec['id']!r}, label {rec['label']!r} shows human_value {old} but "
                            f"the current code is {now_value} (changed by an earlier correction?). Review "
                            "a fresh queue from `lexcoder audit` of a run that uses the current ledger.")
        entries.append({"id": id_to_str(rec["id"]), "label": rec["label"], "old_value": old, "new_value": new,
                        "reviewer": reviewer, "timestamp": now, "note": rec["note"], "source_run": source_run})
    return pd.DataFrame(entries, columns=LEDGER_COLUMNS)


def _decided_rows(reviewed: pd.DataFrame, source: str, *, variables: bool = False) -> pd.DataFrame:
    """Rows with a decision, indexed by their 1-based line in the file (header = line 1).

    With ``variables``, ``change`` is a decision too, and a row with a ``new_value`` but no decision is a
    ``change``.
    """
    missing = [c for c in ("id", "label", "human_value", "decision") if c not in reviewed.columns]
    if missing:
        raise DataError(f"{source}: column(s) {missing} missing. Review the label_issues.csv written by "
                        "`lexcoder audit` and keep its columns.")
    rev = reviewed.copy()
    rev.index = np.arange(2, len(rev) + 2)
    rev["decision"] = rev["decision"].astype("string").fillna("").str.strip().str.lower().astype(object)
    rev["note"] = rev["note"].fillna("").astype(str) if "note" in rev else ""
    allowed = ["", *DECISIONS, *(CLASS_DECISIONS if variables else ())]
    bad = ~rev["decision"].isin(allowed)
    if bad.any():
        what = "keep, flip or empty" if not variables else \
            "keep or flip (0/1 labels), keep or change (categorical variables), or empty"
        raise DataError(f"{source}: column 'decision' must be {what}; rows "
                        f"{format_rows(rev.index[bad])} hold {sorted(set(rev.loc[bad, 'decision']))[:5]}.")
    if variables and "new_value" in rev:
        written = rev["new_value"].map(lambda v: not _is_blank(v)).astype(bool)
        rev.loc[written & rev["decision"].eq(""), "decision"] = "change"
    rev = rev[rev["decision"] != ""]
    dup = rev.duplicated(["id", "label"], keep=False)
    if dup.any():
        raise DataError(f"{source}: rows {format_rows(rev.index[dup])} decide the same id and label twice. "
                        "Keep one decision per (id, label).")
    return rev


def _label_decision(rec: pd.Series, where: str) -> tuple[int, int]:
    """(old, new) code of a decided 0/1 label row."""
    if rec["decision"] not in DECISIONS or not _is_blank(rec.get("new_value")):
        raise DataError(f"{where}: {rec['label']!r} is a 0/1 label: write keep or flip in 'decision' and leave "
                        "'new_value' empty (it is for categorical variables).")
    old = _binary(rec["human_value"], where)
    return old, (old + DECISIONS[rec["decision"]]) % 2


def _class_decision(rec: pd.Series, classes: list[str], where: str) -> tuple[str, str]:
    """(old, new) class of a decided categorical variable row (see the module docstring)."""
    variable, decision = rec["label"], rec["decision"]
    if decision not in CLASS_DECISIONS:
        raise DataError(f"{where}: {variable!r} is a categorical variable: write keep or change in 'decision' "
                        "(change: the class in 'new_value', or empty for the suggested class).")
    old = _class_text(rec["human_value"], where, "human_value")
    if old is None:
        raise DataError(f"{where}: human_value is empty; keep the given class as `lexcoder audit` wrote it.")
    written = _class_text(rec.get("new_value"), where, "new_value")
    if decision == "keep":
        if written is not None and written != old:
            raise DataError(f"{where}: decision keep but new_value {written!r}: write change to set the new "
                            f"class, or empty new_value to keep {old!r}.")
        return old, old
    new = written if written is not None else _class_text(rec.get("suggested_value"), where, "suggested_value")
    if new is None:
        raise DataError(f"{where}: decision change but no class in 'new_value'. Write one of {classes}.")
    if new not in classes:
        raise DataError(f"{where}: {new!r} is not a class of {variable!r}. Write one of {classes} in "
                        "'new_value' (or keep the given class with decision keep).")
    return old, new


def _is_blank(value) -> bool:
    return value is None or (not isinstance(value, str) and pd.isna(value)) or str(value).strip() == ""


def _class_text(value, where: str, column: str) -> str | None:
    """A class cell as the data layer writes classes (``1.0`` read from Excel is class ``1``); None if empty."""
    if _is_blank(value):
        return None
    try:
        text = normalize_classes(pd.Series([value], dtype=object), column=column, source=where).iloc[0]
    except DataError:
        raise DataError(f"{where}: {column} holds {value!r}, which is not a class; write the class as text.") from None
    return None if pd.isna(text) else str(text)


def _binary(value, where: str) -> int:
    text = str(value).strip()
    if text in ("0", "1", "0.0", "1.0"):
        return int(float(text))
    raise DataError(f"{where}: human_value must be 0 or 1, found {value!r}.")


def check_corrections(df: pd.DataFrame, ledger_path: str | Path, label_columns: Sequence[str],
                      class_columns: Sequence[str] = ()) -> tuple[pd.DataFrame, dict]:
    """Read a ledger and check that it applies to a new run's data; nothing is written.

    Parameters
    ----------
    df : the run's validated table (original codes)
    ledger_path : the corrections ledger
    label_columns, class_columns : the run's 0/1 labels and categorical variables

    Returns
    -------
    the ledger, and the manifest block: ledger path and sha256, entries, and codes changed per label
    (``labels_changed``) and, with ``class_columns``, per variable (``variables_changed``)

    Raises
    ------
    DataError
        For a missing ledger, or an entry that does not apply to ``df`` (unknown id, label or class,
        old value that does not match; the message names the row).
    """
    ledger_path = Path(ledger_path)
    if not ledger_path.is_file():
        raise DataError(f"{ledger_path}: corrections ledger not found. Create it with "
                        "`lexcoder corrections apply RUN_DIR reviewed.csv --reviewer NAME`.")
    ledger = read_ledger(ledger_path, class_columns)
    corrected = apply_ledger(df, ledger, label_columns, class_columns=class_columns, source=str(ledger_path))
    changed = {lab: int((corrected[lab] != df[lab]).sum()) for lab in label_columns}
    block = {"ledger": str(ledger_path.resolve()), "sha256": file_sha256(ledger_path),
             "entries": len(ledger), "labels_changed": changed, "applied_file": RunDir.corrections_applied.name}
    if class_columns:
        block["variables_changed"] = {v: int((corrected[v].astype(str) != df[v].astype(str)).sum())
                                      for v in class_columns}
    return ledger, block


def training_table(run_root: str | Path, df: pd.DataFrame, label_columns: Sequence[str],
                   class_columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The run's data with the codes used for training: ``df`` (``data.parquet``) plus its corrections.

    ``data.parquet`` keeps the original human codes; without ``corrections_applied.parquet`` in the run
    directory ``df`` is returned unchanged. ``class_columns``: the run's categorical variables (default:
    those of the run's ``config.toml``).
    """
    run = RunDir(Path(run_root))
    applied = run.corrections_applied
    if not applied.is_file():
        return df
    if class_columns is None:
        class_columns = run.load_config().data.class_columns if run.config.is_file() else []
    return apply_ledger(df, pd.read_parquet(applied), label_columns, class_columns=class_columns,
                        source=str(applied))
