"""The Ray Data engine (issue 15): on a local Ray (2 CPUs) its output equals the single-process output row for
row; without Ray installed it says how to install it."""
from __future__ import annotations

import importlib.util
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from lexcoder import predict_file
from lexcoder.cli import app

runner = CliRunner()
LABELS = ["limitation_of_liability", "unilateral_termination", "unilateral_change"]
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="Ray is not installed (pip install 'lexcoder[ray]')")


def said(res) -> str:
    return " ".join(res.output.split())


@pytest.fixture(scope="module")
def corpus(tos_full, tmp_path_factory, corpus_run):
    """Twelve whole Terms of Service as CSV and Parquet, and a TF-IDF run trained on them."""
    return corpus_run(tos_full, tmp_path_factory.mktemp("ray"), 12, LABELS, group_column="doc_id")


@needs_ray
@pytest.mark.parametrize("name", ["data.parquet", "data.csv"])
def test_ray_output_equals_single_process_output(corpus, local_ray, tmp_path, name, same_rows_by_id):
    single = pd.read_parquet(predict_file(corpus / "run", corpus / name, tmp_path / "single.parquet"))
    out = tmp_path / "coded"
    # 2 actors of half a CPU each leave a CPU for Ray's read and write tasks on this 2-CPU Ray
    res = runner.invoke(app, ["predict", str(corpus / "run"), str(corpus / name), "--out", str(out), "--engine", "ray",
                              "--workers", "2", "--cpus-per-worker", "0.5", "--chunksize", "800"])
    assert res.exit_code == 0, res.output
    files = sorted(out.glob("*.parquet"))
    assert len(files) >= 2  # the corpus was coded in several batches, not as one block
    same_rows_by_id(pd.read_parquet(out), single)


@needs_ray
def test_ray_refuses_a_non_empty_out_folder(corpus, tmp_path):
    out = tmp_path / "coded"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    res = runner.invoke(app, ["predict", str(corpus / "run"), str(corpus / "data.csv"), "--out", str(out), "--engine",
                              "ray"])
    assert res.exit_code == 2 and "is not empty" in said(res) and (out / "notes.txt").read_text() == "mine"


def test_ray_not_installed_says_how_to_install(corpus, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    res = runner.invoke(app, ["predict", str(corpus / "run"), str(corpus / "data.csv"), "--out", str(tmp_path / "c"),
                              "--engine", "ray"])
    assert res.exit_code == 2 and "pip install 'lexcoder[ray]'" in said(res) and "Traceback" not in said(res)
    assert not (tmp_path / "c").exists()


@needs_ray
def test_ray_refuses_workers_that_would_hold_every_cpu(corpus, local_ray, tmp_path):
    """2 actors of 1 CPU on a 2-CPU Ray would leave no CPU to read the input: Ray would wait forever."""
    res = runner.invoke(app, ["predict", str(corpus / "run"), str(corpus / "data.csv"), "--out", str(tmp_path / "c"),
                              "--engine", "ray", "--workers", "2"])
    assert res.exit_code == 2 and "would reserve 2 of the Ray cluster's 2 CPUs" in said(res)
    assert not (tmp_path / "c").exists()
