"""The command layer rebuilds the report; the audit functions never call the report stage (issue 11).

``lexcoder audit``, ``corrections apply`` and ``corrections report`` rebuild a run's report after their
library call. The library calls leave it alone. A report that cannot be rebuilt leaves the command's own
results in place, the report as it was, and a message that says both.
"""
from __future__ import annotations

import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from lexcoder import config_from_dict, run_pipeline
from lexcoder.audit import audit_run
from lexcoder.cli import app

LABELS = ["limitation_of_liability", "unilateral_termination", "unilateral_change"]


@pytest.fixture(scope="module")
def finished_run(tos_full, tmp_path_factory):
    """A TF-IDF run with a report on 8 whole Terms of Service (about 1.4k sentences), not audited yet."""
    root = tmp_path_factory.mktemp("report_refresh")
    sizes = tos_full["doc_id"].value_counts()
    docs = sorted(sizes.index[(sizes >= 120) & (sizes <= 220)])[:8]  # none larger than the test split
    tos_full[tos_full["doc_id"].isin(docs)][["id", "doc_id", "text", *LABELS]].to_csv(root / "tos.csv", index=False)
    cfg = config_from_dict({"data": {"path": str(root / "tos.csv"), "text_column": "text", "id_column": "id",
                                     "label_columns": LABELS, "group_column": "doc_id"},
                            "split": {"duplicates": "keep_groups"}, "evaluate": {"bootstrap": 0}})
    run_pipeline(cfg, root / "run")
    assert (root / "run" / "report.html").is_file()
    return root / "run"


@pytest.fixture
def run(finished_run, tmp_path):
    """A fresh copy of the finished run for one test."""
    return shutil.copytree(finished_run, tmp_path / "run")


def _reports(run) -> tuple[bytes, bytes]:
    return (run / "report.html").read_bytes(), (run / "report.md").read_bytes()


def test_library_audit_leaves_the_report_and_the_command_rebuilds_it(run):
    before = _reports(run)
    result = audit_run(run, n_folds=2)
    assert (run / "audit_summary.json").is_file() and _reports(run) == before  # stages don't call each other

    out = CliRunner().invoke(app, ["audit", str(run), "--folds", "2"], terminal_width=200)
    assert out.exit_code == 0, out.output
    assert "Report updated" in out.output
    md = (run / "report.md").read_text(encoding="utf-8")
    assert "## Audit summary" in md and str(result.queue["id"].iloc[0]) in md


@pytest.mark.slow  # several seconds on 2 cores: CI runs it (make test); the quick suite (-m 'not slow') does not
def test_corrections_commands_rebuild_the_report(run, tmp_path):
    runner = CliRunner()
    assert runner.invoke(app, ["audit", str(run), "--folds", "2"]).exit_code == 0
    queue = pd.read_csv(run / "label_issues.csv", dtype=str, keep_default_na=False)
    queue.loc[[0, 1], "decision"] = "flip"
    queue.to_csv(tmp_path / "reviewed.csv", index=False)
    out = runner.invoke(app, ["corrections", "apply", str(run), str(tmp_path / "reviewed.csv"), "--reviewer",
                              "A. Coder", "--ledger", str(tmp_path / "corrections.csv")], terminal_width=200)
    assert out.exit_code == 0, out.output
    audit_table = (run / "report.md").read_text(encoding="utf-8").split("## Audit summary")[1]
    reviewed = {lab: str(int((queue.loc[[0, 1], "label"] == lab).sum())) for lab in LABELS}
    for lab in LABELS:  # label | positives | in queue | groups | noise | reviewed | ...
        row = next(line for line in audit_table.splitlines() if line.startswith(f"| {lab} |"))
        assert row.split(" | ")[5] == reviewed[lab]

    assert "Effect of the corrections" not in (run / "report.md").read_text(encoding="utf-8")
    out = runner.invoke(app, ["corrections", "report", str(run), str(run), "--bootstrap", "0"], terminal_width=200)
    assert out.exit_code == 0, out.output
    assert "Effect of the corrections" in (run / "report.md").read_text(encoding="utf-8")


def test_a_report_that_cannot_be_rebuilt_keeps_the_audit_and_says_so(run):
    (run / "metrics.json").unlink()  # the report needs it, the audit does not
    before = _reports(run)
    out = CliRunner().invoke(app, ["audit", str(run), "--folds", "2"], terminal_width=400)
    assert out.exit_code == 2 and "Traceback" not in out.output
    message = " ".join(out.output.split())
    assert "Error: The audit finished and its results are kept (label_issues.csv" in message
    assert "metrics.json" in message and f"lexcoder report {run}" in message
    assert (run / "label_issues.csv").is_file() and (run / "audit_summary.json").is_file()
    assert _reports(run) == before  # both report files as they were
    assert not list(run.glob(".*.old")) and not list(run.glob("*.tmp"))
