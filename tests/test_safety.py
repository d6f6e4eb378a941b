"""Hostile label names and cells: nothing is written outside the run folder, no cell becomes a formula.

The rules are tested directly (with Hypothesis) and on a real audited run of ToS sentences whose label
names are path tricks and a formula payload, and whose crafted ids and texts start with = + - @.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from lexcoder import config_from_dict, run_pipeline
from lexcoder.audit import apply_ledger, read_ledger
from lexcoder.audit.queue import write_queue
from lexcoder.cli import app
from lexcoder.errors import LexcoderError
from lexcoder.safety import (FORMULA_TRIGGERS, check_inside, neutralise_cell, neutralise_formulas,
                             restore_quoted, safe_filename)

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
TOS_LABELS = {"limitation_of_liability": "x/../../../ESCAPED", "unilateral_termination": "..\\..\\evil:*?",
              "unilateral_change": "=cmd|' /C calc'!A0", "content_removal": "CON"}
CRAFTED = {"=1+2": "=HYPERLINK(\"http://example.org\", \"click\")", "+31 20 555": "+31 20 555 0000",
           "-A7": "-2+3 and the rest of the clause", "@SUM(A1)": "@SUM(A1:A9) is not a clause"}


# --- the rules -------------------------------------------------------------------------------------------

@given(st.text(max_size=300))
def test_safe_filename_is_a_plain_name_in_its_folder(name):
    safe = safe_filename(name, max_length=60)
    assert SAFE_NAME.fullmatch(safe) and len(safe) <= 60 and ".." not in safe
    assert safe == safe_filename(name, max_length=60)  # deterministic
    check_inside("runs/exp1", Path("runs/exp1") / f"label_issues_{safe}.csv")


@given(st.text(max_size=40), st.text(max_size=40))
def test_different_names_give_different_file_names(a, b):
    if a != b:
        assert safe_filename(a) != safe_filename(b)


def test_safe_filename_keeps_ordinary_names_and_marks_changed_ones(tos_labels):
    assert [safe_filename(lab) for lab in tos_labels] == tos_labels
    cousins = ["a/b", "a:b", "a\\b", "a b", "a\x00b", "a_b"]  # all read "a_b" once cleaned
    assert len({safe_filename(c) for c in cousins}) == len(cousins)
    assert safe_filename("a_b") == "a_b" and safe_filename("Kündigung").startswith("Kundigung-")
    for name in ("", ".", "..", "...", "CON", "nul.txt", "-rf", ".env", "中文"):
        safe = safe_filename(name)
        assert SAFE_NAME.fullmatch(safe) and safe.split(".")[0].upper() not in {"CON", "NUL"}


def test_check_inside_refuses_paths_that_leave_the_folder(tmp_path):
    run = tmp_path / "run"
    (run / "sub").mkdir(parents=True)
    assert check_inside(run, run / "sub" / ".." / "ok.csv") == run / "sub" / ".." / "ok.csv"
    with pytest.raises(LexcoderError, match="outside"):
        check_inside(run, run / "label_issues_x" / ".." / ".." / "ESCAPED.csv")
    (tmp_path / "elsewhere").mkdir()
    (run / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(LexcoderError, match="outside"):
        check_inside(run, run / "link" / "x.csv")


def test_neutralise_formulas_quotes_text_formulas_only():
    df = pd.DataFrame({"id": ["=1+2", "-1+2", "-3", "+1.5", "@x", "\tx", "\rx", "ok", "'=already", None],
                       "score": [-1.0, -2.5, 0, 1, 2, 3, 4, 5, 6, np.nan],
                       "count": np.arange(-5, 5)})
    out = neutralise_formulas(df)
    assert out["id"].tolist()[:9] == ["'=1+2", "'-1+2", "-3", "+1.5", "'@x", "'\tx", "'\rx", "ok", "'=already"]
    assert pd.isna(out["id"].iloc[9])
    pd.testing.assert_frame_equal(out[["score", "count"]], df[["score", "count"]])  # numbers untouched
    assert df["id"].iloc[0] == "=1+2"  # the input is not modified
    assert neutralise_formulas(pd.DataFrame({"=x": ["a"]})).columns.tolist() == ["'=x"]
    assert neutralise_formulas(df, columns=["score"])["id"].iloc[0] == "=1+2"


@given(st.text(min_size=1, max_size=30).map(lambda s: s if s[0] in FORMULA_TRIGGERS + ("'",) else "=" + s))
def test_restore_quoted_undoes_neutralise_exactly(value):
    written = neutralise_cell(value)
    assert not written.startswith(FORMULA_TRIGGERS) or re.fullmatch(r"[+-][\d.eE+-]+", written)
    assert restore_quoted(pd.Series([written]), known=[value]).iloc[0] == value


# --- a real audited run with hostile names ----------------------------------------------------------------

@pytest.fixture(scope="module")
def hostile_run(tos_full, tmp_path_factory):
    """6 Terms of Service with hostile label names, and 4 crafted rows coded against identical copies.

    The run lies 3 folders deep, so an escaping path would still land inside ``root``.
    Returns ``(root, run directory, hostile label names)``.
    """
    root = tmp_path_factory.mktemp("hostile")
    docs = sorted(tos_full["doc_id"].unique())[:6]
    part = tos_full[tos_full["doc_id"].isin(docs)][["id", "text", *TOS_LABELS]].reset_index(drop=True)
    part = part.rename(columns=TOS_LABELS)
    labels = list(TOS_LABELS.values())
    crafted = part.iloc[:len(CRAFTED)].copy()
    part.loc[crafted.index, "text"] = crafted["text"] = list(CRAFTED.values())
    crafted["id"] = list(CRAFTED)
    crafted[labels[2]] = 1 - crafted[labels[2]]  # identical texts, coded differently: they join the queue
    pd.concat([part, crafted], ignore_index=True).to_parquet(root / "tos.parquet")
    cfg = config_from_dict({"data": {"path": str(root / "tos.parquet"), "text_column": "text",
                                     "id_column": "id", "label_columns": labels},
                            "report": {"enabled": False}})  # the report has its own test (tests/report)
    run = root / "a" / "b" / "run"
    run_pipeline(cfg, run)
    return root, run, labels


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def test_label_names_never_leave_the_run_folder(hostile_run, monkeypatch):
    root, run, labels = hostile_run
    monkeypatch.chdir(root)
    before = _files(root)
    for label in labels:
        res = CliRunner().invoke(app, ["audit", str(run), "--folds", "2", "--label", label])
        assert res.exit_code == 0, res.output
    new = _files(root) - before
    assert new and all(p.parent == run for p in new)  # no folder created, nothing outside the run
    for label in labels:
        view = pd.read_csv(run / f"label_issues_{safe_filename(label)}.csv", dtype=str, keep_default_na=False)
        assert set(restore_quoted(view["label"], labels)) <= {label}


def test_review_file_round_trips_quoted_ids_and_labels(hostile_run, monkeypatch):
    root, run, labels = hostile_run
    monkeypatch.chdir(root)
    runner = CliRunner()
    res = runner.invoke(app, ["audit", str(run), "--folds", "2"])
    assert res.exit_code == 0, res.output
    queue = pd.read_csv(run / "label_issues.csv", dtype=str, keep_default_na=False)
    cells = queue.to_numpy().ravel()
    assert not [c for c in cells if c.startswith(FORMULA_TRIGGERS) and not re.fullmatch(r"[+-][\d.]+", c)]
    crafted = queue[queue["id"].isin([f"'{i}" for i in CRAFTED])]
    assert len(crafted) == len(CRAFTED) and set(crafted["label"]) == {f"'{labels[2]}"}
    queue.loc[crafted.index, "decision"] = "flip"
    queue.to_csv(root / "reviewed.csv", index=False)
    res = runner.invoke(app, ["corrections", "apply", str(run), "reviewed.csv", "--reviewer", "A. Coder"])
    assert res.exit_code == 0, res.output
    ledger = read_ledger(root / "corrections.csv")
    assert sorted(ledger["id"]) == sorted(CRAFTED) and set(ledger["label"]) == {labels[2]}
    original = pd.read_parquet(run / "data.parquet")
    corrected = apply_ledger(original, ledger, labels).set_index("id")
    for i in CRAFTED:
        assert corrected.loc[i, labels[2]] == 1 - original.set_index("id").loc[i, labels[2]]

    res = runner.invoke(app, ["audit", str(run), "--folds", "2", "--keep-formulas"])
    assert res.exit_code == 0, res.output
    raw = pd.read_csv(run / "label_issues.csv", dtype=str, keep_default_na=False)
    assert set(CRAFTED) <= set(raw["id"])  # the switch writes the cells as they are


def test_xlsx_queue_stores_would_be_formulas_as_text(hostile_run, tmp_path):
    _, run, _ = hostile_run
    queue = pd.read_parquet(run / "label_issues.parquet")
    crafted = queue[queue["id"].isin(list(CRAFTED))]
    cells = {}
    for neutralise in (True, False):
        path = write_queue(crafted, tmp_path / f"queue_{neutralise}.xlsx", neutralise_formulas=neutralise)
        rows = list(openpyxl.load_workbook(path).active.iter_rows())
        header = [c.value for c in rows[0]]
        cells[neutralise] = {c.value: c.data_type for row in rows[1:] for c in row
                             if header[c.column - 1] in ("id", "text")}
    # lexcoder never writes a live formula: without the guard the cell keeps its text, as text
    assert cells[False]["=1+2"] == "s" and set(cells[False].values()) == {"s"}
    assert set(cells[True]) == {f"'{v}" for v in [*CRAFTED, *CRAFTED.values()]}
    assert set(cells[True].values()) == {"s"}
