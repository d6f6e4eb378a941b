"""The review queue: sorted, conflicting duplicates surface, views by label and top."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from lexcoder.audit import QUEUE_COLUMNS, select


def test_queue_is_sorted_and_ready_for_review(small_run):
    run_dir, _, audit = small_run
    q = audit.queue
    assert list(q.columns) == QUEUE_COLUMNS
    assert q["rank"].tolist() == list(range(1, len(q) + 1))
    assert q["score"].is_monotonic_increasing
    assert (q["decision"] == "").all() and (q["note"] == "").all()
    flagged = q[~q["reason"].str.startswith("conflicting")]
    coded0 = flagged[flagged["human_value"] == 0]
    assert coded0["reason"].str.contains("model confident positive").all()
    assert (coded0["model_probability"] > 0.5).mean() > 0.9
    on_disk = pd.read_csv(run_dir / "label_issues.csv", dtype={"id": str}, keep_default_na=False)
    assert list(on_disk.columns) == QUEUE_COLUMNS  # the Excel BOM does not leak into the header
    assert len(pd.read_parquet(run_dir / "label_issues.parquet")) == len(q)


def test_conflicting_duplicates_surface(small_run):
    _, _, audit = small_run
    dup = audit.queue[audit.queue["reason"].str.contains("conflicting duplicate")]
    assert {"twin_a", "twin_b"} <= set(dup["id"])
    assert set(dup["label"]) == {"limitation_of_liability"}
    assert dup["reason"].str.contains("coded 1 in 1 and 0 in 1 copies").all()
    # each twin's original copy (same text, other code) is in the queue too
    assert len(dup) == 4
    counts = audit.summary["labels"]["limitation_of_liability"]
    assert counts["conflicting_duplicate_groups"] == 2 and counts["conflicting_duplicate_rows"] == 4


def test_views_by_label_and_top(small_run):
    _, _, audit = small_run
    view = select(audit.queue, label="unilateral_change", top=5)
    assert len(view) == 5 and (view["label"] == "unilateral_change").all()
    assert view["rank"].is_monotonic_increasing


def test_summary_on_disk(small_run):
    run_dir, _, audit = small_run
    summary = json.loads((run_dir / "audit_summary.json").read_text())
    assert summary["settings"]["folds"] == 4 and summary["settings"]["kind"] == "tfidf"
    for lab, m in summary["labels"].items():
        assert m["in_queue"] == int((audit.queue["label"] == lab).sum())
        assert 0 <= m["estimated_noise_rate"] < 0.2
    before = summary["out_of_fold"]["before"]["labels"]
    assert all(np.isfinite(before[lab]["average_precision"]) for lab in summary["labels"])
