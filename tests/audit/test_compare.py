"""Corrections report: a run against the run retrained on corrected codes, on the same test rows."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lexcoder import config_from_dict, run_pipeline
from lexcoder.audit import apply_review, compare_runs
from lexcoder.errors import LexcoderError
from lexcoder.report import build_report
from lexcoder.stats import bootstrap_difference



@pytest.fixture(scope="module")
def retrained(small_run, audit_labels, tmp_path_factory):
    """The small audited run, a review flipping its 12 most likely errors, and the run retrained on them."""
    run_dir, data, audit = small_run
    root = tmp_path_factory.mktemp("compare")
    reviewed = audit.queue.head(12).copy()
    reviewed["decision"] = "flip"
    reviewed.to_csv(root / "reviewed.csv", index=False)
    apply_review(run_dir, root / "reviewed.csv", reviewer="A. Coder", ledger=root / "corrections.csv")
    cfg = config_from_dict({"data": {"path": str(data), "text_column": "text", "id_column": "id",
                                     "label_columns": audit_labels, "group_column": "doc_id"},
                           "split": {"duplicates": "keep_groups"}})
    run_pipeline(cfg, root / "exp2", corrections=root / "corrections.csv")
    return run_dir, root / "exp2", reviewed, cfg


@pytest.mark.slow  # several seconds on 2 cores: CI runs it (make test); the quick suite (-m 'not slow') does not
def test_scores_both_runs_against_both_answer_keys(retrained, audit_labels):
    before, after, reviewed, _ = retrained
    res = compare_runs(before, after, bootstrap=300)
    flips = reviewed.groupby("label").size()
    assert {lab: c["changed"] for lab, c in res["corrections"].items()} == {
        lab: int(flips.get(lab, 0)) for lab in audit_labels}
    test_ids = set(pd.read_parquet(after / "predictions.parquet").query("split == 'test'")["id"].astype(str))
    assert sum(c["changed_in_test"] for c in res["corrections"].values()) == reviewed["id"].astype(str).isin(
        test_ids).sum()
    # each run's own evaluation is one of the four cells: before vs original codes, after vs corrected codes
    m1 = json.loads((before / "metrics.json").read_text())["labels"]
    m2 = json.loads((after / "metrics.json").read_text())["labels"]
    for lab in audit_labels:
        assert res["original"]["labels"][lab]["before"]["f1"] == pytest.approx(m1[lab]["f1"])
        assert res["corrected"]["labels"][lab]["after"]["f1"] == pytest.approx(m2[lab]["f1"])
        for key in ("original", "corrected"):
            r = res[key]["labels"][lab]
            assert r["delta_f1"] == pytest.approx(r["after"]["f1"] - r["before"]["f1"])
            low, high = r["delta_f1_ci"]
            assert low <= r["delta_f1"] + 1e-12 and r["delta_f1"] - 1e-12 <= high
    # labels the review left alone in the test rows score the same "before" under both answer keys
    for lab, c in res["corrections"].items():
        if c["changed_in_test"] == 0:
            assert res["original"]["labels"][lab]["before"] == res["corrected"]["labels"][lab]["before"]
    md = (after / "corrections_report.md").read_text(encoding="utf-8")
    assert "against the corrected codes" in md and "| **macro** |" in md
    # rebuilt (the library functions leave that to the caller, as `lexcoder corrections ...` does), the
    # retrained run's report shows the comparison and the audited run's report its review counts
    build_report(before)
    build_report(after)
    html = (after / "report.html").read_text(encoding="utf-8")
    m = res["original"]["macro_f1"]
    assert "Effect of the corrections" in html and f"{m['before']:.3f}" in html and f"{m['delta']:+.3f}" in html
    assert "Effect of the corrections" in (after / "report.md").read_text(encoding="utf-8")
    audited = (before / "report.md").read_text(encoding="utf-8")
    row = next(line for line in audited.splitlines() if line.startswith(f"| {reviewed['label'].iloc[0]} |")
               and "Audit summary" not in line and line.count("|") == 10)
    assert row.split("|")[7].strip() == str(int((reviewed["label"] == reviewed["label"].iloc[0]).sum()))
    assert json.loads((after / "corrections_report.json").read_text())["test_rows"] == res["test_rows"]


def test_runs_on_different_test_rows_are_refused(retrained, tmp_path):
    before, _, _, cfg = retrained
    # another split of the same data (a larger test part): its test rows differ
    other = cfg.model_copy(update={"split": cfg.split.model_copy(update={"train": 0.5, "test": 0.3})})
    run_pipeline(other, tmp_path / "other")
    with pytest.raises(LexcoderError, match="tested on different rows"):
        compare_runs(before, tmp_path / "other", bootstrap=0)


def test_paired_bootstrap_of_identical_evaluations_is_zero_and_narrower():
    rng = np.random.default_rng(0)
    Y = (rng.random((400, 2)) < 0.3).astype(int)
    pred = np.where(rng.random((400, 2)) < 0.8, Y, 1 - Y)
    same = bootstrap_difference(Y, pred, Y, pred, n_boot=200, seed=1)
    assert same["labels"] == [[0.0, 0.0], [0.0, 0.0]] and same["macro"] == [0.0, 0.0]
    better = np.where(rng.random((400, 2)) < 0.5, Y, pred)  # fixes about half of the errors
    diff = bootstrap_difference(Y, pred, Y, better, n_boot=500, seed=1)
    for low, high in diff["labels"]:
        assert 0 < low < high  # a clear improvement is significant in a paired design
