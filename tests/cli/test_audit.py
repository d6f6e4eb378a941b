"""CLI round trip: run → audit → review → corrections apply → run --corrections."""
from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest
import tomli_w
from typer.testing import CliRunner

from lexcoder.cli import app

LABELS = ["limitation_of_liability", "unilateral_termination", "unilateral_change"]


@pytest.fixture(scope="module")
def workspace(tos_full, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_audit")
    sizes = tos_full["doc_id"].value_counts()
    docs = sorted(sizes.index[(sizes >= 150) & (sizes <= 350)])[:8]  # none larger than the test split
    tos_full[tos_full["doc_id"].isin(docs)][["id", "doc_id", "text", *LABELS]].to_csv(root / "tos.csv", index=False)
    (root / "my.toml").write_text(tomli_w.dumps({"data": {
        "path": "tos.csv", "text_column": "text", "id_column": "id", "label_columns": LABELS,
        "group_column": "doc_id"}, "split": {"duplicates": "keep_groups"}}), encoding="utf-8")
    return root


def _ok(result):
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.slow  # several seconds on 2 cores: CI runs it (make test); the quick suite (-m 'not slow') does not
def test_audit_review_apply_and_retrain(workspace, monkeypatch):
    monkeypatch.chdir(workspace)
    runner = CliRunner()
    data_hash = hashlib.sha256((workspace / "tos.csv").read_bytes()).hexdigest()
    _ok(runner.invoke(app, ["run", "my.toml", "--out", "runs/exp1"]))
    out = _ok(runner.invoke(app, ["audit", "runs/exp1", "--folds", "3", "--top", "10"]))
    assert "Most likely coding errors" in out and "label_issues.csv" in out
    queue = pd.read_csv("runs/exp1/label_issues.csv", dtype=str, keep_default_na=False)
    assert len(queue) == 10 and queue["rank"].tolist() == [str(i) for i in range(1, 11)]
    html = (workspace / "runs/exp1/report.html").read_text(encoding="utf-8")
    assert "Likely coding errors" in html and queue["id"].iloc[0] in html  # report refreshed by the audit

    out = _ok(runner.invoke(app, ["audit", "runs/exp1", "--folds", "3", "--label", LABELS[1], "--top", "3"]))
    one = pd.read_csv(f"runs/exp1/label_issues_{LABELS[1]}.csv", dtype=str, keep_default_na=False)
    assert len(one) <= 3 and set(one["label"]) <= {LABELS[1]}

    queue.loc[[0, 1], "decision"] = "flip"
    queue.loc[2, "decision"] = "keep"
    queue.to_csv("reviewed.csv", index=False)
    out = _ok(runner.invoke(app, ["corrections", "apply", "runs/exp1", "reviewed.csv", "--reviewer", "A. Coder"]))
    assert "3 new entries (2 flipped, 1 kept)" in out
    out = _ok(runner.invoke(app, ["corrections", "apply", "runs/exp1", "reviewed.csv", "--reviewer", "A. Coder"]))
    assert "0 new entries" in out and "3 already recorded" in out

    _ok(runner.invoke(app, ["run", "my.toml", "--out", "runs/exp2", "--corrections", "corrections.csv"]))
    manifest = json.loads((workspace / "runs/exp2/manifest.json").read_text())
    assert manifest["corrections"]["entries"] == 3
    assert sum(manifest["corrections"]["labels_changed"].values()) == 2
    original = pd.read_parquet("runs/exp2/data.parquet").set_index("id")
    first = queue.iloc[0]
    assert int(original.loc[first["id"], first["label"]]) == int(first["human_value"])  # originals kept
    assert hashlib.sha256((workspace / "tos.csv").read_bytes()).hexdigest() == data_hash

    out = _ok(runner.invoke(app, ["corrections", "report", "runs/exp1", "runs/exp2", "--bootstrap", "200"]))
    assert "2 code(s) changed by the review" in out
    assert "against the original codes" in out and "against the corrected codes" in out and "macro" in out
    assert (workspace / "runs/exp2/corrections_report.md").is_file()

    # auditing the corrected run shows the corrected codes as the human values
    _ok(runner.invoke(app, ["audit", "runs/exp2", "--folds", "3"]))
    from lexcoder.audit import training_table
    audited = training_table("runs/exp2", pd.read_parquet("runs/exp2/data.parquet"), LABELS).set_index("id")
    assert int(audited.loc[first["id"], first["label"]]) == 1 - int(first["human_value"])
    full = pd.read_parquet("runs/exp2/label_issues.parquet")
    flagged = full[(full["id"] == first["id"]) & (full["label"] == first["label"])]
    assert (flagged["human_value"].astype(int) == 1 - int(first["human_value"])).all()


def test_errors_are_short_messages(workspace, monkeypatch):
    monkeypatch.chdir(workspace)
    runner = CliRunner()
    res = runner.invoke(app, ["audit", str(workspace), "--folds", "3"])
    assert res.exit_code == 2 and "not a lexcoder run directory" in res.output
    (workspace / "broken.csv").write_text("id,label,old_value,new_value\n", encoding="utf-8")
    res = runner.invoke(app, ["run", "my.toml", "--out", "runs/bad", "--corrections", "broken.csv"])
    assert res.exit_code == 2 and "not a lexcoder corrections ledger" in res.output


@pytest.mark.slow
def test_the_audit_section_of_the_config_sets_what_flags_do_not(workspace, monkeypatch):
    """[audit] folds / method / order / quota / isolate_test drive `lexcoder audit RUN`; a flag overrides."""
    monkeypatch.chdir(workspace)
    raw = {"data": {"path": "tos.csv", "text_column": "text", "id_column": "id", "label_columns": LABELS,
                    "group_column": "doc_id"}, "split": {"duplicates": "keep_groups"},
           "audit": {"folds": 3, "method": "loss", "order": "score", "quota": 4, "isolate_test": False}}
    (workspace / "audit.toml").write_text(tomli_w.dumps(raw), encoding="utf-8")
    runner = CliRunner()
    _ok(runner.invoke(app, ["run", "audit.toml", "--out", "runs/configured"]))
    _ok(runner.invoke(app, ["audit", "runs/configured"]))
    summary = json.loads((workspace / "runs/configured/audit_summary.json").read_text(encoding="utf-8"))
    settings = summary["settings"]
    assert (settings["folds"], settings["method"], settings["order"], settings["quota"]) == (3, "loss", "score", 4)
    assert settings["test_rows_held_out"] == 0  # isolate_test = false
    queue = pd.read_parquet("runs/configured/label_issues.parquet")
    flagged = queue[queue["group"].astype(str) == ""]
    assert len(flagged) and flagged["label"].value_counts().max() <= 4
    assert flagged["score"].is_monotonic_increasing  # "score": all labels in one order (least likely code first)
    _ok(runner.invoke(app, ["audit", "runs/configured", "--folds", "4", "--order", "interleave", "--isolate-test"]))
    settings = json.loads((workspace / "runs/configured/audit_summary.json").read_text(encoding="utf-8"))["settings"]
    assert (settings["folds"], settings["method"], settings["order"]) == (4, "loss", "interleave")
    assert settings["test_rows_held_out"] > 0


def test_audit_help_names_the_config_section():
    """Rich reads "[audit]" as markup unless escaped: the help must still say where the defaults come from."""
    res = CliRunner().invoke(app, ["audit", "--help"], terminal_width=200)
    out = " ".join(res.output.split())
    assert res.exit_code == 0 and "from the run's [audit] config section" in out and "[audit] folds" in out
