"""Run integrity (README "Guarantees"): lexcoder writes only what it owns, atomically, one writer at a time,
and a run is a function of its inputs: a resume on changed inputs is refused, naming what changed."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import lexcoder
from lexcoder import load_config, predict_file, run_pipeline
from lexcoder.cli import app
from lexcoder.errors import DataError, LexcoderError
from lexcoder.rundir import RunDir, RunDirError

runner = CliRunner()
LABELS = ["limitation_of_liability", "unilateral_termination", "unilateral_change"]


def sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def said(res) -> str:
    """The CLI's output with rich's line wrapping undone."""
    return " ".join(res.output.split())


def tree(root) -> dict[str, str]:
    """Every file under ``root`` with its sha256 (to prove nothing was added, changed or removed)."""
    return {str(p.relative_to(root)): sha(p) for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small(tos_full, tmp_path_factory):
    """Twelve whole Terms of Service (~4k sentences) and a fast config (no bootstrap, no report)."""
    docs = sorted(tos_full["doc_id"].unique())[:12]
    folder = tmp_path_factory.mktemp("integrity")
    tos_full[tos_full["doc_id"].isin(docs)].to_csv(folder / "data.csv", index=False)
    config(folder)  # writes config.toml
    return folder


def config(folder, *overrides):
    import tomli_w
    raw = {"data": {"path": str(folder / "data.csv"), "id_column": "id", "label_columns": LABELS,
                    "group_column": "doc_id"},
           "split": {"duplicates": "keep_groups"},  # ToS documents share numbering lines ("1.", "2.")
           "evaluate": {"bootstrap": 0}, "report": {"enabled": False}}
    path = folder / "config.toml"
    if not path.exists():
        path.write_text(tomli_w.dumps(raw), encoding="utf-8")
    return load_config(path, list(overrides))


@pytest.fixture(scope="module")
def finished(small, tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    run_pipeline(config(small), out)
    return out


# -- A1: only what it owns ------------------------------------------------------------------------------
def test_out_holding_user_files_is_refused_and_untouched(small, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    for name in ("config.toml", "report.html", "metrics.json"):
        (out / name).write_text(f"the user's own {name}")
    before = tree(out)
    res = runner.invoke(app, ["run", str(small / "config.toml"), "--out", str(out), "--set", "evaluate.bootstrap=0"])
    assert res.exit_code == 2 and "did not create" in said(res) and "Traceback" not in said(res)
    assert tree(out) == before


def test_out_dot_next_to_the_data_never_replaces_it(small, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (work / "data.csv").write_bytes((small / "data.csv").read_bytes())
    cfg = config(small, f"data.path={work / 'data.csv'}")
    before = tree(work)
    monkeypatch.chdir(work)
    with pytest.raises(RunDirError, match="did not create"):
        run_pipeline(cfg, ".")
    assert tree(work) == before


def test_bad_input_writes_nothing(small, tmp_path):
    bad = tmp_path / "bad.csv"
    pd.read_csv(small / "data.csv").head(50).drop(columns=["arbitration"]).to_csv(bad, index=False)
    cfg = config(small, f"data.path={bad}", 'data.label_columns=["arbitration"]')
    with pytest.raises(DataError, match="arbitration"):
        run_pipeline(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_bad_input_found_only_by_training_leaves_nothing(small, tmp_path):
    """Texts that hold no word (single digits) pass validation; TF-IDF finds them empty: no folder is left."""
    table = pd.read_csv(small / "data.csv")
    table["text"] = [str(i % 10) for i in range(len(table))]
    table.to_csv(tmp_path / "digits.csv", index=False)
    res = runner.invoke(app, ["run", str(small / "config.toml"), "--out", str(tmp_path / "run"),
                              "--set", f"data.path={tmp_path / 'digits.csv'}"])
    assert res.exit_code == 2 and "no words" in said(res) and "Traceback" not in said(res), res.output
    assert not (tmp_path / "run").exists()


# -- A2: identity and resume ------------------------------------------------------------------------------
def test_resume_refuses_changed_data_config_ledger_version(small, finished, tmp_path, monkeypatch):
    import shutil
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    before = tree(run)
    changed = tmp_path / "data.csv"
    pd.read_csv(small / "data.csv").iloc[:-1].to_csv(changed, index=False)
    with pytest.raises(RunDirError, match="data file .* changed"):
        run_pipeline(config(small, f"data.path={changed}"), run, resume=True)
    with pytest.raises(RunDirError, match=r"configuration changed \(model.params.C: (unset|10.0) → 3(\.0)?\)"):
        run_pipeline(config(small, "model.params.C=3"), run, resume=True)
    ledger = tmp_path / "corrections.csv"
    first = pd.read_parquet(run / "data.parquet").iloc[0]
    pd.DataFrame([{"id": first["id"], "label": LABELS[0], "old_value": int(first[LABELS[0]]),
                   "new_value": 1 - int(first[LABELS[0]]), "reviewer": "r", "timestamp": "t", "note": "",
                   "source_run": ""}]).to_csv(ledger, index=False)
    with pytest.raises(RunDirError, match="a corrections ledger is given now"):
        run_pipeline(config(small), run, resume=True, corrections=ledger)
    monkeypatch.setattr("lexcoder.rundir.identity.package_versions", lambda: {"lexcoder": "9.9.9"})
    with pytest.raises(RunDirError, match=r"lexcoder was updated \(0.1.0 → 9.9.9\)"):
        run_pipeline(config(small), run, resume=True)
    assert tree(run) == before  # a refused resume changes nothing


def test_resume_with_the_same_inputs_keeps_the_results(small, finished, tmp_path):
    import shutil
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    before = tree(run)
    run_pipeline(config(small), run, resume=True)
    after = tree(run)
    for name in ("metrics.json", "predictions.parquet", "splits.parquet", "models/tfidf/coef.npy"):
        assert after[name] == before[name]


def test_corrections_are_recorded_and_change_training(small, finished, tmp_path):
    data = pd.read_parquet(finished / "data.parquet")
    splits = pd.read_parquet(finished / "splits.parquet")
    test_ids = set(splits.loc[splits["split"] == "test", "id"])
    rows = data[data["id"].isin(test_ids)].head(5)
    ledger = tmp_path / "corrections.csv"
    pd.DataFrame([{"id": r["id"], "label": LABELS[0], "old_value": int(r[LABELS[0]]),
                   "new_value": 1 - int(r[LABELS[0]]), "reviewer": "r", "timestamp": "t", "note": "",
                   "source_run": ""} for _, r in rows.iterrows()]).to_csv(ledger, index=False)
    result = run_pipeline(config(small), tmp_path / "corrected", corrections=ledger)
    manifest = json.loads((tmp_path / "corrected/manifest.json").read_text())
    assert manifest["inputs"]["corrections_sha256"] == sha(ledger)
    assert manifest["corrections"]["labels_changed"][LABELS[0]] == 5
    support = result.metrics["labels"][LABELS[0]]["support"]
    original = json.loads((finished / "metrics.json").read_text())["labels"][LABELS[0]]["support"]
    assert support == original + int((1 - 2 * rows[LABELS[0]]).sum())  # metrics use the corrected codes


# -- A3: a failed run does not block its rerun -----------------------------------------------------------------
def test_failed_run_is_marked_and_replaced_by_a_plain_rerun(small, tmp_path, monkeypatch):
    out = tmp_path / "run"

    def broken(*args, **kwargs):
        raise MemoryError("simulated: the model did not fit in memory")
    monkeypatch.setattr("lexcoder.pipeline.train_and_evaluate", broken)
    with pytest.raises(MemoryError):
        run_pipeline(config(small), out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "did not fit" in manifest["error"]
    monkeypatch.undo()
    result = run_pipeline(config(small), out)  # no --resume needed, nothing to delete by hand
    assert json.loads((out / "manifest.json").read_text())["status"] == "finished"
    assert result.metrics["macro"]["f1"] > 0.3


# -- A4: one writer per run folder ---------------------------------------------------------------------------------
@contextmanager
def lock_held_elsewhere(folder: Path) -> Iterator[None]:
    """Another process holds ``folder``'s write lock (``RunDir.lock``) for the block."""
    script = ("import sys, time; from lexcoder.rundir import RunDir\n"
              "with RunDir(sys.argv[1]).lock('run'):\n    print('locked', flush=True); time.sleep(30)")
    holder = subprocess.Popen([sys.executable, "-c", script, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.kill()
        holder.wait()


def test_a_run_being_created_is_busy_not_foreign(small, tmp_path):
    """While a first run is creating its folder (config written, manifest not yet), a second run on the same
    --out is told the folder is in use — not that it holds someone else's files."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.toml").write_text("[data]\n", encoding="utf-8")
    (out / ".manifest.json.x1y2.tmp").write_text("{", encoding="utf-8")  # the first run's atomic write in flight
    with lock_held_elsewhere(out):
        before = tree(out)
        res = runner.invoke(app, ["run", str(small / "config.toml"), "--out", str(out)])
        assert res.exit_code == 2 and "in use by another lexcoder command" in said(res)
        assert "did not create" not in said(res) and tree(out) == before
    res = runner.invoke(app, ["run", str(small / "config.toml"), "--out", str(out)])  # nobody holds it now
    assert res.exit_code == 2 and "did not create" in said(res)


def test_second_writer_is_refused_while_the_first_holds_the_folder(small, finished, tmp_path):
    with lock_held_elsewhere(finished):
        before = tree(finished)
        res = runner.invoke(app, ["run", str(small / "config.toml"), "--out", str(finished), "--resume"])
        assert res.exit_code == 2 and "in use by another lexcoder command" in said(res)
        res = runner.invoke(app, ["audit", str(finished), "--folds", "2"])
        assert res.exit_code == 2 and "in use" in said(res)
        assert tree(finished) == before


@pytest.mark.slow  # several seconds on 2 cores: CI runs it (make test); the quick suite (-m 'not slow') does not
def test_two_concurrent_runs_one_wins_one_is_refused(small, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "lexcoder", "run", str(small / "config.toml"), "--out", str(out)]
    env = {**os.environ, "LEXCODER_PROGRESS": "0"}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
             for _ in range(2)]
    results = [(p.wait(timeout=300), " ".join(p.stdout.read().split())) for p in procs]
    assert sorted(code for code, _ in results) == [0, 2], results
    refused = next(text for code, text in results if code == 2)
    assert "Traceback" not in refused and ("in use" in refused or "already holds" in refused)
    assert json.loads((out / "manifest.json").read_text())["status"] == "finished"


# -- A5 / A6: atomic writes, full disk, permissions -----------------------------------------------------------------
def test_disk_full_gives_a_clear_error_no_debris_and_resume_finishes_identically(small, finished, tmp_path,
                                                                                 monkeypatch):
    out = tmp_path / "run"
    real = pd.DataFrame.to_parquet

    def full_disk(self, path, *args, **kwargs):
        if "predictions" in str(path):
            real(self, path, *args, **kwargs)  # a partial file is written, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, path, *args, **kwargs)
    monkeypatch.setattr(pd.DataFrame, "to_parquet", full_disk)
    res = runner.invoke(app, ["run", str(small / "config.toml"), "--out", str(out)])
    assert res.exit_code == 2 and "No space left on device" in said(res) and "predictions.parquet" in said(res)
    assert "Traceback" not in said(res)
    assert not [p for p in out.rglob("*") if p.name.endswith((".tmp", ".old"))]
    assert not (out / "predictions.parquet").exists()
    monkeypatch.undo()
    res = runner.invoke(app, ["run", str(small / "config.toml"), "--out", str(out), "--resume"])
    assert res.exit_code == 0, res.output
    for name in ("metrics.json", "predictions.parquet", "models/tfidf/coef.npy", "splits.parquet"):
        assert sha(out / name) == sha(finished / name), name


@pytest.mark.parametrize("umask,file_mode,dir_mode", [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775)])
def test_outputs_follow_the_umask(small, tmp_path, umask, file_mode, dir_mode):
    old = os.umask(umask)
    try:
        run_pipeline(config(small), tmp_path / "run")
        predict_file(tmp_path / "run", small / "data.csv", tmp_path / "coded.csv")
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file() and p.name != ".lexcoder.lock"]
    assert files and {oct(p.stat().st_mode & 0o777) for p in files} == {oct(file_mode)}
    dirs = [p for p in (tmp_path / "run").rglob("*") if p.is_dir()]
    assert {oct(p.stat().st_mode & 0o777) for p in dirs} == {oct(dir_mode)}
    assert (tmp_path / "coded.csv").stat().st_mode & 0o777 == file_mode


# -- B: one model, one probability scale ----------------------------------------------------------------------------
@pytest.mark.parametrize("refit", [True, False])
def test_calibrated_model_is_the_same_everywhere(small, tmp_path, refit):
    cfg = config(small, "calibration.method=platt", f"model.refit_on_val={str(refit).lower()}")
    result = run_pipeline(cfg, tmp_path / "run")
    root = result.run.root
    assert (root / "models/tfidf/calibration.json").is_file()  # kept after the refit too
    preds = pd.read_parquet(root / "predictions.parquet")
    data = pd.read_parquet(root / "data.parquet")
    test = preds["split"].eq("test").to_numpy()
    texts = data.loc[test, "text"].tolist()
    P_api = lexcoder.load_model(root).predict_proba(texts)
    P_model_dir = lexcoder.load_model(root / "models/tfidf").predict_proba(texts)
    data.loc[test, ["id", "text"]].to_csv(tmp_path / "new.csv", index=False)
    coded = pd.read_csv(predict_file(root, tmp_path / "new.csv", tmp_path / "coded.csv"), dtype={"id": str})
    for j, lab in enumerate(LABELS):
        stored = preds.loc[test, f"{lab}_prob"].to_numpy()
        np.testing.assert_allclose(P_api[:, j], stored, rtol=0, atol=1e-12)
        np.testing.assert_allclose(P_model_dir[:, j], stored, rtol=0, atol=1e-12)
        np.testing.assert_allclose(coded[f"{lab}_prob"].to_numpy(), stored, rtol=0, atol=1e-12)
    # thresholds were tuned on calibrated validation probabilities: the stored ones are on that scale
    thresholds = json.loads((root / "models/tfidf/thresholds.json").read_text())["thresholds"]
    val = preds["split"].eq("val")
    for lab in LABELS:
        assert np.isclose(preds.loc[val, f"{lab}_prob"], thresholds[lab]).any()


# -- predict: never over an input, every suffix honoured, robust chunks -------------------------------------------------------
def test_predict_never_replaces_its_input_or_an_existing_file(finished, small, tmp_path):
    data = tmp_path / "in.csv"
    data.write_bytes((small / "data.csv").read_bytes())
    before = sha(data)
    res = runner.invoke(app, ["predict", str(finished), str(data), "--out", str(data)])
    assert res.exit_code == 2 and "is an input of this command" in said(res)
    res = runner.invoke(app, ["predict", str(finished), str(data), "--out", str(data), "--overwrite"])
    assert res.exit_code == 2
    assert sha(data) == before
    existing = tmp_path / "coded.csv"
    existing.write_text("keep me")
    res = runner.invoke(app, ["predict", str(finished), str(data), "--out", str(existing)])
    assert res.exit_code == 2 and "--overwrite" in said(res) and existing.read_text() == "keep me"
    res = runner.invoke(app, ["predict", str(finished), str(data), "--out", str(existing), "--overwrite"])
    assert res.exit_code == 0 and len(pd.read_csv(existing)) == len(pd.read_csv(data))
    res = runner.invoke(app, ["predict", str(finished), str(data), "--out", str(finished / "coded.csv")])
    assert res.exit_code == 2 and "inside the run folder" in said(res) and not (finished / "coded.csv").exists()


@pytest.mark.parametrize("name", ["coded.csv.gz", "coded.jsonl.gz", "coded.csv.bz2", "coded.tsv.xz", "coded.csv.zip"])
def test_predict_compressed_outputs_read_back(finished, small, tmp_path, name):
    out = predict_file(finished, small / "data.csv", tmp_path / name, chunksize=1500)
    back = lexcoder.io.read_table(out)
    assert len(back) == len(pd.read_csv(small / "data.csv"))
    assert {f"{lab}_prob" for lab in LABELS} <= set(back.columns)
    assert out.read_bytes()[:2] != b"id"  # really compressed, not plain text under a .gz name


def test_predict_parquet_column_empty_in_first_chunk_and_input_with_prob_columns(finished, small, tmp_path):
    data = pd.read_csv(small / "data.csv").head(900)
    data["court"] = [None] * 600 + ["BGH"] * 300  # empty in the first chunks, filled later
    data[f"{LABELS[0]}_prob"] = 0.123  # an already-coded file coded again
    data.to_csv(tmp_path / "in.csv", index=False)
    data.to_parquet(tmp_path / "in.parquet", index=False)
    for source in ("in.csv", "in.parquet"):
        for target in ("out.parquet", "out.csv"):
            out = predict_file(finished, tmp_path / source, tmp_path / f"{source}.{target}", chunksize=250,
                               overwrite=True)
            back = lexcoder.io.read_table(out)
            assert list(back.columns).count(f"{LABELS[0]}_prob") == 1
            assert back[f"{LABELS[0]}_prob"].astype(float).ne(0.123).all()
            assert back["court"].iloc[-1] == "BGH" and pd.isna(back["court"].iloc[0])


# -- C: a damaged run folder is named, not a traceback ---------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncate_coef", "delete_vocabulary", "threshold_missing_label",
                                    "corrupt_manifest", "delete_config"])
def test_damaged_run_folder_is_named(finished, small, tmp_path, damage):
    import shutil
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    model = run / "models/tfidf"
    if damage == "truncate_coef":
        (model / "coef.npy").write_bytes((model / "coef.npy").read_bytes()[:100])
    elif damage == "delete_vocabulary":
        (model / "vocabulary_0.json").unlink()
    elif damage == "threshold_missing_label":
        th = json.loads((model / "thresholds.json").read_text())
        del th["thresholds"][LABELS[1]]
        (model / "thresholds.json").write_text(json.dumps(th))
    elif damage == "corrupt_manifest":
        (run / "manifest.json").write_text("{not json")
    else:
        (run / "config.toml").unlink()
    if damage == "corrupt_manifest":  # predict does not read the manifest; resuming does
        res = runner.invoke(app, ["run", str(small / "config.toml"), "--out", str(run), "--resume"])
    else:
        res = runner.invoke(app, ["predict", str(run), str(small / "data.csv"), "--out", str(tmp_path / "c.csv")])
    assert res.exit_code == 2 and "Traceback" not in said(res), res.output
    expected = "not a lexcoder run directory" if damage == "delete_config" else "Run folder damaged"
    assert expected in said(res), res.output
    assert not (tmp_path / "c.csv").exists()


def test_resume_accepts_settings_that_do_not_change_results(small, finished, tmp_path):
    """Threads, the forward-pass cap, notifications and the audit's settings may change on --resume;
    anything else may not."""
    import shutil
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    run_pipeline(config(small, "notify.timeout=9", "audit.folds=7"), run, resume=True)
    assert "folds = 7" in (run / "config.toml").read_text(encoding="utf-8")  # what `lexcoder audit` reads
    with pytest.raises(RunDirError, match=r"configuration changed \(evaluate.bootstrap: 0 → 5\)"):
        run_pipeline(config(small, "evaluate.bootstrap=5", "notify.timeout=9"), run, resume=True)
