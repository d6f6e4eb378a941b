"""report.html / report.md of a real run (ToS slice with a simulated second coder); CLI; headless Chromium."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lexcoder.cli import app
from lexcoder.config import config_from_dict
from lexcoder.pipeline import run_pipeline

LABELS = ["limitation_of_liability", "unilateral_termination", "unilateral_change", "arbitration"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tos_docs):
    """A finished run on 20 Terms of Service; a second coder re-coded half the rows (3% of codes flipped)."""
    tmp = tmp_path_factory.mktemp("report")
    docs = sorted(tos_docs["doc_id"].unique())[:20]
    df = tos_docs[tos_docs["doc_id"].isin(docs)].reset_index(drop=True)
    rng = np.random.default_rng(0)
    for lab in LABELS:
        second = np.where(rng.uniform(size=len(df)) < 0.03, 1 - df[lab], df[lab]).astype(float)
        second[rng.uniform(size=len(df)) < 0.5] = np.nan  # not re-coded
        df[f"{lab}_coder2"] = second
    df.to_csv(tmp / "tos.csv", index=False)
    cfg = config_from_dict({
        "data": {"path": str(tmp / "tos.csv"), "id_column": "id", "label_columns": LABELS,
                 "group_column": "doc_id", "second_coder_suffix": "_coder2"},
        "split": {"n_clusters": 10, "duplicates": "keep_groups"}, "model": {"params": {"ngram_max": 1}},
        "evaluate": {"bootstrap": 200}})
    run_pipeline(cfg, tmp / "run")
    return tmp / "run"


def test_metrics_carry_the_design_keys(run_dir):
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["bootstrap"]["unit"] == "group" and m["bootstrap"]["resamples"] == 200
    low, high = m["macro"]["f1_ci"]
    assert low <= m["macro"]["f1"] <= high
    for lab in LABELS:
        fig = m["labels"][lab]
        for key in ("f1_ci", "precision_ci", "recall_ci", "cohen_kappa_ci"):
            assert fig[key][0] <= fig[key.removesuffix("_ci")] <= fig[key][1]
        assert -1 <= fig["krippendorff_alpha"] <= 1 and -1 <= fig["gwet_ac1"] <= 1
        assert 0 <= fig["ece"] <= 1 and fig["reliability"]
        hh = fig["second_coder"]["human_vs_human"]
        assert hh["n"] == fig["second_coder"]["model_vs_human"]["n"] > 0
        assert 0.9 < hh["percent_agreement"] < 1  # the simulated coder flips 3% of codes
    assert "second_coder" in m["val"]["labels"][LABELS[0]]


def test_report_is_self_contained_and_shows_every_label(run_dir):
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)  # nothing fetched from the web
    assert "<script" not in html and "<link" not in html
    images = re.findall(r'<img[^>]*src="([^"]+)"', html)
    assert len(images) == len(LABELS) + 1 and all(s.startswith("data:image/png;base64,") for s in images)
    for lab in LABELS:
        assert f'id="label-{lab}"' in html
    assert "human vs. human" in html and "Likely coding errors" not in html  # no audit yet
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["stages"]["report"]["done"]


def test_markdown_report_has_the_tables(run_dir):
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    m = json.loads((run_dir / "metrics.json").read_text())
    for lab in LABELS:
        row = next(line for line in md.splitlines() if line.startswith(f"| {lab} | {m['labels'][lab]['support']} |"))
        lo, hi = m["labels"][lab]["f1_ci"]
        assert f"{m['labels'][lab]['f1']:.3f} [{lo:.3f}, {hi:.3f}]" in row
    assert "| macro |" in md and "AC1 (h-h)" in md


def test_cli_rebuilds_report_with_audit_issues(run_dir):
    data = pd.read_parquet(run_dir / "data.parquet")
    issues = pd.DataFrame({"rank": [1, 2], "id": data["id"][:2], "text": data["text"][:2],
                           "label": LABELS[:2], "human_value": [1, 0], "model_probability": [0.02, 0.97],
                           "score": [0.98, 0.97], "reason": ["model disagrees", "<b>not html</b>"]})
    issues.to_csv(run_dir / "label_issues.csv", index=False)
    try:
        result = CliRunner().invoke(app, ["report", str(run_dir), "--top-issues", "1"])
        assert result.exit_code == 0, result.output
        assert "report.html" in result.output
        html = (run_dir / "report.html").read_text(encoding="utf-8")
        assert "Likely coding errors (top 1 of 2)" in html and "model disagrees" in html
        assert "<b>not html</b>" not in html  # user text is escaped
    finally:
        (run_dir / "label_issues.csv").unlink()


def test_cli_report_on_a_folder_that_is_no_run(tmp_path):
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert "not a lexcoder run directory" in " ".join(result.output.split())  # rich wraps lines


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    from matplotlib.image import imread
    shot = tmp_path / "report.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1300,3000",
                    f"--screenshot={shot}", (run_dir / "report.html").as_uri()],
                   check=True, capture_output=True, timeout=120)
    pixels = imread(shot)
    assert pixels.shape[:2] == (3000, 1300)
    assert pixels[..., :3].std() > 0.05  # not a blank page
    shutil.copy(shot, run_dir.parent / "report_screenshot.png")  # for a look by hand
