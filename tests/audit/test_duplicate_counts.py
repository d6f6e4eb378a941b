"""One count of conflicting duplicates everywhere: manifest, audit summary, CLI table, report.

Real data with conflicts: the Indian Supreme Court rhetorical roles, whose SOURCE/README documents
"24 conflicting duplicate texts (115 rows)". The 7 mutually exclusive roles become 7 0/1 labels, so a
group of identical texts conflicts exactly when its rows carry different roles, and the three units that
used to be mixed up differ: 24 groups, 115 rows, and more (group, label) pairs than groups.
"""
from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from typer.testing import CliRunner

from lexcoder import config_from_dict, run_pipeline
from lexcoder.cli import app

INDIAN_SC = "indian_sc_rhetorical_roles/texts.csv.gz"
DOCUMENTED_GROUPS, DOCUMENTED_ROWS = 24, 115  # /work/shared/data/README.md


@pytest.fixture(scope="module")
def audited(tmp_path_factory, shared_data):
    """A TF-IDF run on every repeated sentence plus 6 whole judgments, audited through the CLI."""
    root = tmp_path_factory.mktemp("dup_counts")
    raw = pd.read_csv(shared_data(INDIAN_SC))
    labels = {role: re.sub(r"\W+", "_", role.lower()) for role in sorted(raw["label"].unique())}
    for role, column in labels.items():
        raw[column] = (raw["label"] == role).astype(int)
    repeated = raw["text"].str.split().str.join(" ").duplicated(keep=False)  # every copy of every repeat
    small = raw["group"].value_counts().sort_values().index[:6]
    raw[repeated | raw["group"].isin(small)][["id", "text", *labels.values()]].to_csv(root / "roles.csv",
                                                                                    index=False)
    cfg = config_from_dict({"data": {"path": str(root / "roles.csv"), "text_column": "text", "id_column": "id",
                                     "label_columns": list(labels.values())}})
    run_pipeline(cfg, root / "run")
    result = CliRunner().invoke(app, ["audit", str(root / "run"), "--folds", "2"], terminal_width=250)
    assert result.exit_code == 0, result.output
    return root / "run", result.output


def test_manifest_audit_and_report_agree_on_conflicting_groups(audited):
    run, cli_output = audited
    manifest = json.loads((run / "manifest.json").read_text())["data"]
    summary = json.loads((run / "audit_summary.json").read_text())
    assert manifest["conflicting_duplicate_groups"] == summary["conflicting_duplicate_groups"] == DOCUMENTED_GROUPS
    assert summary["conflicting_duplicate_rows"] == manifest.get("conflicting_duplicate_rows",
                                                                 DOCUMENTED_ROWS) == DOCUMENTED_ROWS
    assert f"{DOCUMENTED_GROUPS} ({DOCUMENTED_ROWS} rows)" in " ".join(cli_output.split())  # rich wraps lines
    md = (run / "report.md").read_text(encoding="utf-8")
    assert f"- conflicting duplicate groups: {DOCUMENTED_GROUPS}\n" in md
    assert f"{DOCUMENTED_GROUPS} conflicting duplicate groups ({DOCUMENTED_ROWS} rows)" in md
    assert f"over all labels: {DOCUMENTED_GROUPS} ({DOCUMENTED_ROWS} rows)" in md
    html = " ".join((run / "report.html").read_text(encoding="utf-8").split())
    assert f"<th>conflicting duplicate groups</th><td>{DOCUMENTED_GROUPS}</td>" in html
    assert f"{DOCUMENTED_GROUPS} conflicting duplicate groups ({DOCUMENTED_ROWS} rows)" in html
    assert f"over all labels: {DOCUMENTED_GROUPS} groups, {DOCUMENTED_ROWS} rows" in html


def test_per_label_counts_match_the_conflict_file_and_the_queue(audited):
    run, _ = audited
    summary = json.loads((run / "audit_summary.json").read_text())
    pairs = pd.read_parquet(run / "duplicate_conflicts.parquet")  # one row per (group, label)
    queue = pd.read_parquet(run / "label_issues.parquet")
    from_conflict = queue[queue["reason"].str.contains("conflicting duplicate")]
    assert len(pairs) > summary["conflicting_duplicate_groups"]  # some groups disagree on several labels
    for lab, m in summary["labels"].items():
        assert m["conflicting_duplicate_groups"] == int((pairs["label"] == lab).sum())
        assert m["conflicting_duplicate_rows"] == int((from_conflict["label"] == lab).sum())
    audit_table = (run / "report.md").read_text(encoding="utf-8").split("## Audit summary")[1]
    for lab, m in summary["labels"].items():  # the report's audit table: label, positives, in queue, groups
        row = next(line for line in audit_table.splitlines() if line.startswith(f"| {lab} |"))
        assert row.split(" | ")[3] == str(m["conflicting_duplicate_groups"])
