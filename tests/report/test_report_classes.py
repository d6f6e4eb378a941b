"""The report of a run with a categorical variable: heat map, reliability diagram, per-class precision–recall
panels and the line on temperature and class bias (real data: Indian Supreme Court rhetorical roles)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pandas as pd
import pytest

from lexcoder.config import config_from_dict
from lexcoder.pipeline import run_pipeline


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, shared_data):
    """A finished run (temperature and class bias, report written) on the 12 shortest judgments."""
    tmp = tmp_path_factory.mktemp("report_classes")
    df = pd.read_csv(shared_data("indian_sc_rhetorical_roles/texts.csv.gz"))
    df = df[df["group"].isin(df["group"].value_counts().sort_values().index[:12])]
    df.rename(columns={"label": "role"}).to_csv(tmp / "roles.csv", index=False)
    cfg = config_from_dict({
        "data": {"path": str(tmp / "roles.csv"), "id_column": "id", "group_column": "group",
                 "class_columns": ["role"]},
        "split": {"n_clusters": 6, "duplicates": "keep_groups"}, "thresholds": {"class_bias": "macro_f1"},
        "evaluate": {"bootstrap": 0}, "model": {"params": {"ngram_max": 1}}})
    run_pipeline(cfg, tmp / "run")
    return tmp / "run"


@pytest.mark.slow  # a whole run with its report: several seconds on 2 cores
def test_report_shows_the_class_curves_and_the_decision_rule(run_dir):
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    role = json.loads((run_dir / "metrics.json").read_text())["variables"]["role"]
    images = re.findall(r'<img alt="([^"]+)" src="(data:image/png;base64,[^"]+)"', html)
    alts = [alt for alt, _ in images]
    assert len(images) == 3 and len({uri for _, uri in images}) == 3  # heat map, reliability, PR panels
    assert any(a.startswith("Reliability diagram for role") for a in alts)
    assert any(a.startswith("Precision–recall curve of each class of role") for a in alts)
    line = f"T = {role['temperature']:.2f}" if role["temperature"] != 1.0 else "no better temperature than 1"
    assert line in html and line in md
    assert ("per-class bias" in html) == (role["class_bias"] is not None)
    assert "in-sample for this rule" in html
    before = role["before_temperature"]["ece"]
    assert f"ECE {role['ece']:.3f} ({before:.3f} before temperature scaling)" in md


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_class_figures_render_in_headless_chromium(run_dir, tmp_path):
    from matplotlib.image import imread
    shot = tmp_path / "report.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1300,2400",
                    f"--screenshot={shot}", (run_dir / "report.html").as_uri()],
                   check=True, capture_output=True, timeout=120)
    pixels = imread(shot)
    assert pixels.shape[:2] == (2400, 1300) and pixels[..., :3].std() > 0.05  # not a blank page
    shutil.copy(shot, run_dir.parent / "report_classes_screenshot.png")  # for a look by hand
