"""The whole pipeline on real legal data (a document-level ToS subset), through the Python API and the CLI."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lexcoder import load_config, predict_file, run_pipeline
from lexcoder.cli import app
from lexcoder.errors import DataError
from lexcoder.rundir import RunDirError

runner = CliRunner()


@pytest.fixture(scope="module")
def run(tmp_path_factory, tos_docs, tos_labels, make_config):
    tmp = tmp_path_factory.mktemp("pipe")
    tos_docs.to_csv(tmp / "tos.csv", index=False)
    cfg = load_config(make_config(tmp, tmp / "tos.csv", tos_labels, group_column="doc_id"))
    return run_pipeline(cfg, tmp / "run"), tmp


def test_run_directory_artifacts(run, tos_docs):
    result, _ = run
    root = result.run.root
    for name in ("config.toml", "manifest.json", "data.parquet", "splits.parquet", "metrics.json",
                 "predictions.parquet", "models/tfidf/thresholds.json", "duplicate_conflicts.parquet"):
        assert (root / name).is_file(), name
    manifest = json.loads((root / "manifest.json").read_text())
    assert len(manifest["data"]["sha256"]) == 64 and manifest["data"]["rows_kept"] == len(tos_docs)
    assert manifest["seeds"]["split"] == 42 and "scikit-learn" in manifest["versions"]
    assert set(manifest["stages"]) >= {"load", "split", "train"}
    assert not list(root.glob("**/.*.tmp"))


def test_quality_clearly_above_trivial(run, tos_labels):
    result, _ = run
    m = result.metrics
    assert m["split"] == "test"
    # trivial classifier: code every text positive (the best constant rule for F1)
    prev = np.array([m["labels"][lab]["support"] / m["n"] for lab in tos_labels])
    trivial = float(np.mean(2 * prev / (1 + prev)))
    assert m["macro"]["f1"] > 0.4 and m["macro"]["f1"] > 5 * trivial
    for lab in tos_labels:
        block = m["labels"][lab]
        assert block["tp"] + block["fn"] == block["support"]
        assert 0 < block["threshold"] < 1
    assert m["val"]["split"] == "val"


def test_thresholds_come_from_validation_not_test(run, tos_labels):
    """Re-deriving the F1-optimal thresholds on the val rows reproduces the stored ones."""
    from lexcoder.thresholds import f1_optimal_threshold
    result, _ = run
    root = result.run.root
    data, preds = pd.read_parquet(root / "data.parquet"), pd.read_parquet(root / "predictions.parquet")
    stored = json.loads((root / "models/tfidf/thresholds.json").read_text())["thresholds"]
    val = (preds["split"] == "val").to_numpy()
    for lab in tos_labels:
        assert stored[lab] == pytest.approx(f1_optimal_threshold(data.loc[val, lab], preds.loc[val, f"{lab}_prob"]))


def test_predict_reproduces_evaluation_probabilities(run, tos_docs, tos_labels, tmp_path):
    result, tmp = run
    preds = pd.read_parquet(result.run.root / "predictions.parquet")
    for ext in ("csv", "parquet"):
        out = tmp_path / f"coded.{ext}"
        predict_file(result.run.root, tmp / "tos.csv", out, chunksize=997)  # several chunks
        coded = pd.read_csv(out) if ext == "csv" else pd.read_parquet(out)
        assert len(coded) == len(tos_docs) and list(coded["id"]) == list(tos_docs["id"])
        assert "doc_id" in coded.columns  # input columns kept
        merged = preds.merge(coded.assign(id=coded["id"].astype(str)), on="id", suffixes=("", "_new"))
        test = merged[merged["split"] == "test"]
        for lab in tos_labels:
            np.testing.assert_array_equal(test[f"{lab}_prob"], test[f"{lab}_prob_new"])
            np.testing.assert_array_equal(test[f"{lab}_pred"], test[f"{lab}_pred_new"])


def test_predict_error_leaves_no_output(run, tmp_path):
    result, _ = run
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"id": [1, 2], "body": ["a", "b"]}).to_csv(bad, index=False)
    with pytest.raises(DataError, match="no column 'text'"):
        predict_file(result.run.root, bad, tmp_path / "out.csv")
    assert list(tmp_path.iterdir()) == [bad]  # neither the output nor a temp file


def test_resume_skips_finished_stages(run):
    result, _ = run
    cfg = result.run.load_config()
    before = (result.run.root / "metrics.json").stat().st_mtime_ns
    run_pipeline(cfg, result.run.root, resume=True)
    assert (result.run.root / "metrics.json").stat().st_mtime_ns == before
    with pytest.raises(RunDirError, match="already holds a lexcoder run"):
        run_pipeline(cfg, result.run.root)


@pytest.mark.slow  # several seconds on 2 cores: CI runs it (make test); the quick suite (-m 'not slow') does not
def test_kfold_mode_gives_out_of_fold_metrics(tmp_path, tos_docs, tos_labels, make_config):
    tos_docs.to_csv(tmp_path / "tos.csv", index=False)
    cfg = load_config(make_config(tmp_path, tmp_path / "tos.csv", tos_labels, group_column="doc_id"),
                      ["split.method=column", "split.column=fold"])
    result = run_pipeline(cfg, tmp_path / "cv")
    assert result.metrics["split"] == "cv" and result.metrics["n_folds"] == 5
    assert result.metrics["n"] == len(tos_docs)  # every row scored once, out of fold
    assert result.metrics["macro"]["f1"] > 0.4


@pytest.mark.slow  # several seconds on 2 cores: CI runs it (make test); the quick suite (-m 'not slow') does not
def test_cli_demo_like_run_and_bad_input(tmp_path, tos_docs, tos_labels, make_config):
    tos_docs.head(4000).to_csv(tmp_path / "tos.csv", index=False)
    cfg = make_config(tmp_path, tmp_path / "tos.csv", tos_labels[:4], group_column="doc_id")
    res = runner.invoke(app, ["run", str(cfg), "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert "limitation_of_liability" in res.output and "macro" in res.output
    res = runner.invoke(app, ["predict", str(tmp_path / "r"), str(tmp_path / "tos.csv"), "--out",
                              str(tmp_path / "coded.xlsx")])
    assert res.exit_code == 0, res.output
    assert len(pd.read_excel(tmp_path / "coded.xlsx")) == 4000
    # bad input: a label column that does not exist -> exit 2, clear message, no traceback, no run dir files
    bad = make_config(tmp_path, tmp_path / "tos.csv", ["arbitraton"])
    res = runner.invoke(app, ["run", str(bad), "--out", str(tmp_path / "bad")])
    assert res.exit_code == 2
    assert "did you mean 'arbitration'" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "bad" / "data.parquet").exists()


def test_cli_init_writes_a_valid_config(tmp_path):
    """The file `init` writes loads as a run config once data.path names a real table, and every key it
    sets shows the default (as its header promises)."""
    from lexcoder.config import Config, DataConfig, load_config
    from lexcoder.demo import demo_data_path
    res = runner.invoke(app, ["init", str(tmp_path / "my.toml")])
    assert res.exit_code == 0, res.output
    cfg = load_config(tmp_path / "my.toml", [f"data.path={demo_data_path()}"])
    assert cfg.data.path == str(demo_data_path()) and cfg.data.label_columns
    defaults = Config(data=DataConfig(path=cfg.data.path, label_columns=cfg.data.label_columns))
    assert cfg.model_dump() == defaults.model_dump()
    res = runner.invoke(app, ["init", str(tmp_path / "my.toml")])
    assert res.exit_code == 2 and "--force" in res.output


@pytest.mark.slow  # several seconds on 2 cores: CI runs it (make test); the quick suite (-m 'not slow') does not
def test_cli_demo_runs_the_whole_pipeline(tmp_path, tos_full, tos_labels):
    """`lexcoder demo` itself: the bundled data, split by document, a model clearly better than chance."""
    out = tmp_path / "demo"
    res = runner.invoke(app, ["demo", "--out", str(out), "--set", "evaluate.bootstrap=0",
                              "--set", "report.enabled=false"])
    assert res.exit_code == 0, res.output
    for name in ("config.toml", "manifest.json", "data.parquet", "splits.parquet", "metrics.json",
                 "predictions.parquet", "models/tfidf/thresholds.json"):
        assert (out / name).is_file(), name
    assert not (out / "report.html").exists()  # report.enabled=false was applied
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "finished"
    facts, splits = manifest["split"], pd.read_parquet(out / "splits.parquet")
    data = pd.read_parquet(out / "data.parquet")  # splits.parquet has one row per data row, in its order
    assert facts["rows"] == len(tos_full) == len(data) == len(splits)
    assert facts["groups"] == tos_full["doc_id"].nunique()
    assert facts["rows_per_split"] == splits["split"].value_counts().to_dict()
    assert facts["straddling_groups"] == 0  # the demo keeps each Terms of Service whole
    assert splits.assign(doc=data["group"].to_numpy()).groupby("doc")["split"].nunique().max() == 1
    assert facts["largest_unit_rows"] == tos_full["doc_id"].value_counts().max()
    for part, share in {"train": 0.6, "val": 0.2, "test": 0.2}.items():
        assert abs(facts["rows_per_split"][part] - share * len(tos_full)) < facts["largest_unit_rows"]
    # trivial classifier on the same test rows: code every text positive (the best constant rule for F1)
    test = (splits["split"] == "test").to_numpy()
    prev = data.loc[test, tos_labels].to_numpy().mean(axis=0)
    trivial = float(np.mean(2 * prev / (1 + prev)))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["n"] == test.sum()
    assert metrics["macro"]["f1"] > 0.4 and metrics["macro"]["f1"] > 5 * trivial
