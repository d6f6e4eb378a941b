"""Corrections ledger: append-only, idempotent, mismatches rejected, original data untouched."""
from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from lexcoder.audit import LEDGER_COLUMNS, apply_review, read_ledger
from lexcoder.errors import DataError


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _reviewed(queue: pd.DataFrame, tmp_path, decisions: dict[int, str], name="reviewed.csv"):
    """The queue as a reviewer returns it: ``decisions`` maps queue positions to keep/flip."""
    rev = queue.copy()
    for pos, decision in decisions.items():
        rev.loc[pos, "decision"] = decision
        rev.loc[pos, "note"] = f"checked {pos}"
    path = tmp_path / name
    rev.to_csv(path, index=False, encoding="utf-8-sig")  # as Excel saves "CSV UTF-8"
    return path


def test_apply_appends_and_is_idempotent(small_run, tmp_path):
    run_dir, data, audit = small_run
    data_hash, parquet_hash = _sha(data), _sha(run_dir / "data.parquet")
    ledger = tmp_path / "corrections.csv"
    reviewed = _reviewed(audit.queue, tmp_path, {0: "flip", 1: "keep", 2: "FLIP "})
    first = apply_review(run_dir, reviewed, reviewer="A. Coder", ledger=ledger)
    assert len(first.added) == 3 and first.skipped == 0
    content = ledger.read_bytes()
    entries = read_ledger(ledger)
    assert list(entries.columns) == LEDGER_COLUMNS
    q = audit.queue.head(3)
    assert entries["id"].tolist() == q["id"].astype(str).tolist()
    assert entries["old_value"].tolist() == q["human_value"].tolist()
    assert entries["new_value"].tolist() == [1 - q["human_value"].iloc[0], q["human_value"].iloc[1],
                                             1 - q["human_value"].iloc[2]]
    assert set(entries["reviewer"]) == {"A. Coder"} and entries["note"].iloc[0] == "checked 0"

    again = apply_review(run_dir, reviewed, reviewer="A. Coder", ledger=ledger)  # same review twice
    assert len(again.added) == 0 and again.skipped == 3
    assert ledger.read_bytes() == content

    more = _reviewed(audit.queue, tmp_path, {0: "flip", 1: "keep", 2: "flip", 3: "keep"}, "more.csv")
    third = apply_review(run_dir, more, reviewer="B. Coder", ledger=ledger)
    assert len(third.added) == 1
    assert ledger.read_bytes().startswith(content)  # append-only: earlier entries byte for byte
    summary = third.summary
    assert sum(m["reviewed"] for m in summary["labels"].values()) == 4
    assert sum(m["flipped"] for m in summary["labels"].values()) == 2
    assert summary["out_of_fold"]["after"] is not None
    assert _sha(data) == data_hash and _sha(run_dir / "data.parquet") == parquet_hash


def test_stale_old_value_is_rejected(small_run, tmp_path):
    run_dir, _, audit = small_run
    ledger = tmp_path / "corrections.csv"
    apply_review(run_dir, _reviewed(audit.queue, tmp_path, {0: "flip"}), reviewer="A", ledger=ledger)
    # a second reviewer worked from the old queue and decides differently about the same code
    stale = _reviewed(audit.queue, tmp_path, {0: "keep"}, "stale.csv")
    with pytest.raises(DataError, match=r"row 2: id .* human_value .* current code"):
        apply_review(run_dir, stale, reviewer="B", ledger=ledger)


@pytest.mark.parametrize("column, value, message", [
    ("id", "no_such_id", r"row 2: id 'no_such_id' is not in the data"),
    ("label", "remorse", r"row 2: label 'remorse' is not one of the run's labels"),
    ("decision", "maybe", r"'decision' must be keep, flip or empty; rows 2 hold \['maybe'\]"),
    ("human_value", "7", r"row 2: human_value must be 0 or 1"),
])
def test_bad_review_rows_are_named(small_run, tmp_path, column, value, message):
    run_dir, _, audit = small_run
    rev = audit.queue.copy()
    rev.loc[0, "decision"] = "flip"
    rev[column] = rev[column].astype(object)
    rev.loc[0, column] = value
    path = tmp_path / "bad.csv"
    rev.to_csv(path, index=False)
    ledger = tmp_path / "corrections.csv"
    with pytest.raises(DataError, match=message):
        apply_review(run_dir, path, reviewer="A", ledger=ledger)
    assert not ledger.exists()  # nothing is written when the review has an error


def test_missing_decision_column_is_explained(small_run, tmp_path):
    run_dir, _, audit = small_run
    path = tmp_path / "bad.csv"
    audit.queue.drop(columns=["decision"]).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"\['decision'\] missing"):
        apply_review(run_dir, path, reviewer="A", ledger=tmp_path / "c.csv")
