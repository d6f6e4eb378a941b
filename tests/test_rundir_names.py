"""The run folder's names live in one place (:class:`lexcoder.rundir.RunDir`), issue 11 point 4.

- every file a TF-IDF run, an audit, a recorded review, a run on the corrections and their comparison
  write into a run folder is one of RunDir's names, and lexcoder counts it as its own (``OWNED_PATTERNS``);
- no module outside the ``rundir`` package spells one of those names as a path (prose in messages and docstrings
  may name them: they are for people).
"""
from __future__ import annotations

import ast
import fnmatch
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import lexcoder
from lexcoder.cli import app
from lexcoder.rundir import (ARTIFACT_NAMES, LABEL_VIEW, LOCK_FILE, OWNED_PATTERNS, THRESHOLDS_FILE, RunDir)

runner = CliRunner()
LABELS = ["limitation_of_liability", "unilateral_termination"]
PACKAGE_DIR = Path(lexcoder.__file__).parent
# the run folder's format: runs written by earlier versions are read by these names (DESIGN.md, README)
FORMAT = {"config.toml", "manifest.json", "data.parquet", "duplicate_conflicts.parquet", "splits.parquet",
          "models", "checkpoints", "metrics.json", "predictions.parquet", "label_issues.csv",
          "label_issues.parquet", "audit_summary.json", "audit_oof.parquet", "audit_oof.json",
          "corrections_applied.parquet", "corrections_report.json", "corrections_report.md", "report.html",
          "report.md", "batches.parquet", "coded_batches.parquet", "review.sqlite"}
# written by `lexcoder next` / `lexcoder add` (tests/active), not by the workflow below
ACTIVE_LEARNING = {"batches.parquet", "coded_batches.parquet"}
# written by `lexcoder review` (tests/review), not by the workflow below
REVIEW_DESK = {"review.sqlite"}


def test_the_run_folder_format_is_unchanged():
    assert set(ARTIFACT_NAMES) == FORMAT, "renaming a run artifact makes older runs unreadable"
    assert len(ARTIFACT_NAMES) == len(FORMAT)  # no name given twice
    owned = lambda name: any(fnmatch.fnmatch(name, pat) for pat in OWNED_PATTERNS)  # noqa: E731
    assert all(owned(name) for name in FORMAT) and owned(LOCK_FILE)
    assert owned(RunDir(Path("r")).label_issues_for("a/b: c").name)
    assert owned("review.sqlite-wal") and owned("review.sqlite-shm")  # SQLite's companions of the review store
    assert not owned("notes.txt") and not owned("audit_notes.json") and not owned("my_data.csv")


# ----------------------------------------------------------------------------------------------------------
# what a whole workflow writes
# ----------------------------------------------------------------------------------------------------------

def _ok(args: list[str]):
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res


@pytest.fixture(scope="module")
def workflow(tos_full, tmp_path_factory):
    """A run, two audits (all labels; one label), a recorded review, the run on the corrections and the
    comparison, all through the CLI. Returns (the two run folders, the folder holding them)."""
    import tomli_w
    root = tmp_path_factory.mktemp("names")
    sizes = tos_full["doc_id"].value_counts()
    docs = sorted(sizes.index[sizes <= 400])[:8]
    tos_full[tos_full["doc_id"].isin(docs)][["id", "doc_id", "text", *LABELS]].to_csv(root / "data.csv", index=False)
    (root / "config.toml").write_text(tomli_w.dumps({
        "data": {"path": str(root / "data.csv"), "id_column": "id", "label_columns": LABELS,
                 "group_column": "doc_id"},
        "split": {"duplicates": "keep_groups"}, "evaluate": {"bootstrap": 0}}), encoding="utf-8")
    before, after = root / "before", root / "after"
    # the report is written (and rebuilt by `corrections report`) in the second run only: it is slow
    _ok(["run", root / "config.toml", "--out", before, "--set", "report.enabled=false"])
    _ok(["audit", before, "--folds", "2"])
    _ok(["audit", before, "--folds", "2", "--label", LABELS[1], "--top", "5"])
    queue = pd.read_csv(RunDir(before).label_issues, encoding="utf-8-sig").head(3)
    queue.assign(decision="flip").to_csv(root / "reviewed.csv", index=False)  # the user's files: outside
    _ok(["corrections", "apply", before, root / "reviewed.csv", "--reviewer", "T", "--ledger",
         root / "ledger.csv"])
    _ok(["run", root / "config.toml", "--out", after, "--corrections", root / "ledger.csv"])
    res = _ok(["corrections", "report", before, after, "--bootstrap", "20"])
    assert f"{RunDir(after).corrections_report_md.name}[/]" not in res.output  # the markup is closed
    assert "".join(str(RunDir(after).corrections_report_md).split()) in "".join(res.output.split())
    return (RunDir(before), RunDir(after)), root


def test_every_file_written_into_a_run_folder_is_a_named_artifact(workflow):
    (before, after), root = workflow
    label_view = before.label_issues_for(LABELS[1]).name
    written = {e.name for run in (before, after) for e in run.root.iterdir()}
    assert written - {LOCK_FILE, label_view} == set(ARTIFACT_NAMES) - {"checkpoints"} - ACTIVE_LEARNING - REVIEW_DESK  # TF-IDF keeps none
    assert fnmatch.fnmatch(label_view, LABEL_VIEW.format("*"))
    assert before.foreign_entries() == [] and after.foreign_entries() == []
    for run in (before, after):  # inside the model folder: the thresholds RunDir reads
        assert (run.model_dir("tfidf") / THRESHOLDS_FILE).is_file()
    assert {p.name for p in root.iterdir()} == {"data.csv", "config.toml", "reviewed.csv", "ledger.csv",
                                                "before", "after"}


# ----------------------------------------------------------------------------------------------------------
# no module spells a run artifact's name
# ----------------------------------------------------------------------------------------------------------

NAMES = (*ARTIFACT_NAMES, THRESHOLDS_FILE, LOCK_FILE)


def _docstrings(tree: ast.AST) -> set[int]:
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {id(node.body[0].value) for node in ast.walk(tree) if isinstance(node, kinds) and node.body
            and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}


def _text(node: ast.AST) -> str | None:
    """A string literal's value; an f-string with ``{}`` for each placeholder (``label_issues_{}.csv``)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def spelled_names(source: str) -> list[tuple[int, str]]:
    """``(line, literal)`` for each string literal (docstrings aside) that is a run artifact's name, a path
    ending in one, or an f-string building the per-label queue's name."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    pattern = re.compile(r"(^|.*/)(" + "|".join(map(re.escape, (*NAMES, LABEL_VIEW))) + r")$")
    return [(node.lineno, text) for node in ast.walk(tree)
            if id(node) not in skip and (text := _text(node)) is not None and pattern.match(text)]


def test_the_scan_finds_names_spelled_as_paths_and_ignores_prose():
    source = '''"""Writes audit_summary.json."""
SUMMARY_FILE = "audit_summary.json"
def f(run, label):
    """Reads label_issues.parquet."""
    log.info("see %s", "duplicate_conflicts.parquet")
    a = run.root / f"label_issues_{safe(label)}.csv"
    b = root / "models/tfidf/thresholds.json"
    raise Error(f"{run.root}: no config.toml, rerun")  # prose for a person
    return "report.md.j2", " models", "corrections.csv"
'''
    assert [line for line, _ in spelled_names(source)] == [2, 5, 6, 7]


def test_no_module_outside_rundir_spells_a_run_artifact_name():
    found = [f"{path.relative_to(PACKAGE_DIR.parent)}:{line}: {text!r}"
             for path in sorted(PACKAGE_DIR.rglob("*.py")) if PACKAGE_DIR / "rundir" not in path.parents
             for line, text in spelled_names(path.read_text(encoding="utf-8"))]
    assert not found, "Use RunDir's names (lexcoder.rundir) instead of:\n" + "\n".join(found)
