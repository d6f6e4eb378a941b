"""The review queue: certain problems first and grouped, labels interleaved, views by label and top."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lexcoder.audit import QUEUE_COLUMNS, audit_run, select
from lexcoder.cli import app


def _flagged_part(q: pd.DataFrame) -> pd.DataFrame:
    return q[q["group"] == ""]


def test_queue_is_ranked_and_ready_for_review(small_run):
    run_dir, _, audit = small_run
    q = audit.queue
    assert list(q.columns) == QUEUE_COLUMNS
    assert q["rank"].tolist() == list(range(1, len(q) + 1))
    assert (q["decision"] == "").all() and (q["note"] == "").all()
    in_group = (q["group"] != "").to_numpy()
    assert in_group.any() and not in_group[in_group.argmin():].any()  # the groups form the head of the queue
    for _, part in _flagged_part(q).groupby("label"):  # within a label: most suspect first
        assert part["score"].is_monotonic_increasing
    flagged = _flagged_part(q)
    coded0 = flagged[flagged["human_value"] == 0]
    assert coded0["reason"].str.contains("model confident positive").all()
    assert (coded0["model_probability"] > 0.5).mean() > 0.9
    on_disk = pd.read_csv(run_dir / "label_issues.csv", dtype={"id": str}, keep_default_na=False)
    assert list(on_disk.columns) == QUEUE_COLUMNS  # the Excel BOM does not leak into the header
    assert len(pd.read_parquet(run_dir / "label_issues.parquet")) == len(q)


def test_conflicting_duplicates_open_the_queue_grouped(small_run):
    _, _, audit = small_run
    q = audit.queue
    head = q[q["group"] != ""]
    assert {"twin_a", "twin_b"} <= set(head["id"]) and set(head["label"]) == {"limitation_of_liability"}
    assert head["rank"].tolist() == [1, 2, 3, 4]
    for _, copies in head.groupby("group"):
        assert len(copies) == 2 and np.ptp(copies["rank"]) == 1  # both copies on consecutive ranks
        assert sorted(copies["human_value"]) == [0, 1]
        assert copies["reason"].str.contains(r"conflicting duplicate \(identical text coded 1 in 1, 0 in 1 copies\)").all()
        for row in copies.itertuples():  # every copy with its code, side by side
            assert f"{row.human_value}: {row.id}" in row.copies
    counts = audit.summary["labels"]["limitation_of_liability"]
    assert counts["conflicting_duplicate_groups"] == 2 and counts["conflicting_duplicate_rows"] == 4


def test_interleaved_queue_gives_labels_their_share_of_expected_errors(small_run):
    """``order="interleave"`` (the default): any top N of the flagged part holds each label in proportion
    to its expected wrong codes (while it has flags left)."""
    run_dir, _, _ = small_run
    audit = audit_run(run_dir, n_folds=4, order="interleave")  # out-of-fold probabilities are cached
    flagged = _flagged_part(audit.queue)
    expected = audit.summary["expected_wrong_codes"]
    assert set(expected) == set(audit.summary["labels"]) and all(e > 0 for e in expected.values())
    available = flagged["label"].value_counts()
    total = sum(expected.values())
    for n in (5, 10, 20):
        top = flagged.head(n)["label"].value_counts()
        for lab, e in expected.items():
            if available.get(lab, 0) >= n * e / total + 1:  # a label with few flags cannot fill its share
                assert abs(top.get(lab, 0) - n * e / total) <= 1.5, (n, lab, top.to_dict(), expected)
    assert set(flagged["id"] + flagged["label"]) == set(_flagged_part(small_run[2].queue).pipe(
        lambda q: q["id"] + q["label"]))  # the same rows, in another order
    audit_run(run_dir, n_folds=4)  # leave the default queue for the other tests


def test_previous_ranking_quota_and_methods_stay_available(small_run):
    run_dir, _, audit = small_run
    assert audit.summary["settings"]["method"] == "calibrated" and audit.summary["settings"]["order"] == "interleave"
    before = audit_run(run_dir, n_folds=4, method="loss", order="score")  # the ranking before calibration
    assert _flagged_part(before.queue)["score"].is_monotonic_increasing
    assert set(before.queue["id"]) == set(audit.queue["id"])
    capped = audit_run(run_dir, n_folds=4, quota=3)
    per_label = _flagged_part(capped.queue)["label"].value_counts()
    assert per_label.max() == 3 and len(per_label) == 4
    assert (capped.queue["group"] != "").sum() == 4  # conflicting duplicates are never capped
    one = audit_run(run_dir, n_folds=4, quota={"unilateral_change": 0})
    assert "unilateral_change" not in set(_flagged_part(one.queue)["label"])
    assert _flagged_part(one.queue)["label"].value_counts().to_dict() == \
        _flagged_part(audit.queue).query("label != 'unilateral_change'")["label"].value_counts().to_dict()
    for method in ("cleanlab", "posterior"):
        assert audit_run(run_dir, n_folds=4, method=method).summary["settings"]["method"] == method
    audit_run(run_dir, n_folds=4)  # leave the default queue for the other tests


def test_cli_order_quota_and_bad_values(small_run):
    run_dir, _, _ = small_run
    runner = CliRunner()
    res = runner.invoke(app, ["audit", str(run_dir), "--folds", "4", "--quota", "2", "--order", "interleave",
                              "--method", "loss"], terminal_width=200)
    assert res.exit_code == 0, res.output
    summary = json.loads((run_dir / "audit_summary.json").read_text())
    assert summary["settings"]["quota"] == 2 and summary["settings"]["order"] == "interleave"
    assert summary["settings"]["method"] == "loss"
    for args, needle in ((["--order", "random"], "interleave"), (["--quota", "-1"], "quota"),
                         (["--block-columns", "coder"], "coder")):
        res = runner.invoke(app, ["audit", str(run_dir), "--folds", "4", *args], terminal_width=200)
        assert res.exit_code == 2 and needle in res.output and "Traceback" not in res.output, res.output
    assert runner.invoke(app, ["audit", str(run_dir), "--folds", "4"]).exit_code == 0


def test_views_by_label_and_top(small_run):
    _, _, audit = small_run
    view = select(audit.queue, label="unilateral_change", top=5)
    assert len(view) == 5 and (view["label"] == "unilateral_change").all()
    assert view["rank"].is_monotonic_increasing


def test_summary_on_disk(small_run):
    run_dir, _, audit = small_run
    summary = json.loads((run_dir / "audit_summary.json").read_text())
    assert summary["settings"]["folds"] == 4 and summary["settings"]["kind"] == "tfidf"
    assert summary["settings"]["order"] == "interleave" and summary["settings"]["block_columns"] == ["doc_id"]
    for lab, m in summary["labels"].items():
        assert m["in_queue"] == int((audit.queue["label"] == lab).sum())
        assert 0 <= m["estimated_noise_rate"] < 0.2
    before = summary["out_of_fold"]["before"]["labels"]
    assert all(np.isfinite(before[lab]["average_precision"]) for lab in summary["labels"])


@pytest.mark.parametrize("bad", [{"nope": 3}, -2])
def test_bad_quota_is_a_clear_error(small_run, bad):
    from lexcoder.errors import ConfigError
    with pytest.raises(ConfigError, match="quota"):
        audit_run(small_run[0], n_folds=4, quota=bad)
