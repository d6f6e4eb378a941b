"""`lexcoder run` with 0/1 labels and a categorical variable on a fine-tuned family: one network with a
sigmoid per label and a softmax head for the variable (``per_variable = false``, the default), saved once
with the labels' thresholds and calibration and the variable's decision rule, read back by ``predict`` in one
forward pass per chunk; ``per_variable = true`` keeps one network per output.

Data: ECHR paragraphs (real, Apache-2.0): two argument types as 0/1 labels, and who argues (``speaker``:
no_one / applicant / court / state) as the categorical variable, the authors' judgment-level split.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tomli_w
from typer.testing import CliRunner

from lexcoder.cli import app
from lexcoder.models.shared import SharedOutputs
from lexcoder.rundir import RunDir

pytestmark = pytest.mark.slow
LABELS = ["subsumption", "precedent_ecthr"]
SPEAKERS = {"agent_applicant": "applicant", "agent_court": "court", "agent_state": "state"}
ENCODER = {"max_length": 48, "batch_size": 16, "eval_batch_size": 64, "epochs": 2, "lr": 1e-3, "head_lr": 3e-3,
           "patience": 0, "num_threads": 1, "seed": 5}
runner = CliRunner()


@pytest.fixture(scope="module")
def echr(shared_data, tmp_path_factory):
    """~300 short ECHR paragraphs with one speaker at most: 180 train, 60 val, 60 test (authors' split)."""
    df = pd.read_csv(shared_data("echr_arguments/paragraphs.csv.gz"))
    agents = df[list(SPEAKERS)]
    df = df[(agents.sum(axis=1) <= 1) & (df["text"].str.len() < 250)].copy()
    df["speaker"] = np.select([df[c] == 1 for c in SPEAKERS], list(SPEAKERS.values()), default="no_one")
    shuffled = df.sample(frac=1.0, random_state=1)
    parts = [shuffled[shuffled["split"] == s].groupby("speaker").head(n) for s, n in
             (("train", 45), ("val", 15), ("test", 15))]
    table = pd.concat(parts)[["id", "text", "split", *LABELS, "speaker"]]
    folder = tmp_path_factory.mktemp("shared_run")
    table.to_csv(folder / "data.csv", index=False)
    return folder, table


def _config(folder, tiny_bert, *, per_variable: bool, calibration: str = "platt", split: dict | None = None):
    raw = {"data": {"path": str(folder / "data.csv"), "id_column": "id", "label_columns": LABELS,
                    "class_columns": ["speaker"]},
           "split": split or {"method": "column", "column": "split"},
           "model": {"kind": "encoder", "name": tiny_bert, "params": {**ENCODER, "per_variable": per_variable}},
           "calibration": {"method": calibration}, "evaluate": {"bootstrap": 0}, "report": {"enabled": False}}
    path = folder / f"shared-{per_variable}-{calibration}-{bool(split)}.toml"
    path.write_text(tomli_w.dumps(raw), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def shared_run(echr, tiny_bert, tmp_path_factory):
    folder, _ = echr
    out = tmp_path_factory.mktemp("runs") / "shared"
    res = runner.invoke(app, ["run", str(_config(folder, tiny_bert, per_variable=False)), "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def test_one_network_is_saved_with_the_thresholds_calibration_and_rule(shared_run):
    models = sorted(p.name for p in (shared_run / "models").iterdir())
    assert models == ["encoder"]  # no models/encoder-class-speaker
    saved = shared_run / "models" / "encoder"
    meta = json.loads((saved / "lexcoder_model.json").read_text())
    assert meta["target_type"] == "multiclass-multioutput"
    assert [o["name"] for o in meta["outputs"]] == [*LABELS, "speaker"]
    assert {"thresholds.json", "labels_calibration.json", "decision_speaker.json"} <= {p.name for p in saved.iterdir()}
    metrics = json.loads((shared_run / "metrics.json").read_text())
    assert set(metrics["labels"]) == set(LABELS) and set(metrics["variables"]) == {"speaker"}
    assert metrics["variables"]["speaker"]["n"] == 60


def test_predict_codes_like_the_run_in_one_forward_pass_per_chunk(shared_run, echr, tmp_path, monkeypatch):
    from lexcoder.models.transformer import TransformerClassifier
    _, table = echr
    test = table[table["split"] == "test"].drop(columns=[*LABELS, "speaker"])
    test.to_csv(tmp_path / "new.csv", index=False)
    calls = []
    real = TransformerClassifier._predict_proba
    monkeypatch.setattr(TransformerClassifier, "_predict_proba",
                        lambda self, texts: calls.append(len(texts)) or real(self, texts))
    res = runner.invoke(app, ["predict", str(shared_run), str(tmp_path / "new.csv"), "--out",
                              str(tmp_path / "coded.parquet")])
    assert res.exit_code == 0, res.output
    assert calls == [len(test)]  # labels and speaker from the same pass
    coded = pd.read_parquet(tmp_path / "coded.parquet").set_index("id")
    preds = pd.read_parquet(shared_run / "predictions.parquet").set_index("id").loc[coded.index]
    prob_columns = [f"{lab}_prob" for lab in LABELS] + [c for c in preds if c.startswith("speaker_prob_")]
    assert len(prob_columns) == 2 + 4
    np.testing.assert_allclose(coded[prob_columns].to_numpy(), preds[prob_columns].to_numpy(), atol=1e-5)
    for column in [f"{lab}_pred" for lab in LABELS] + ["speaker_pred"]:
        assert (coded[column] == preds[column]).mean() >= 0.98, column  # ties at a threshold may flip


def test_the_labels_view_is_calibrated_and_the_variable_view_tempered(shared_run, echr):
    run = RunDir(shared_run)
    model, thresholds, variables = run.load_models()
    assert isinstance(model.model.shared, SharedOutputs) and set(variables) == {"speaker"}
    _, table = echr
    texts = table[table["split"] == "test"]["text"].tolist()
    raw_labels, raw_vars = model.model.shared.probabilities(texts)
    calibrated = model.predict_proba(texts)
    assert calibrated.shape == (len(texts), 2) and not np.allclose(calibrated, raw_labels)
    np.testing.assert_allclose(calibrated, model.calibrator.transform(raw_labels))
    speaker = variables["speaker"]
    np.testing.assert_allclose(speaker.predict_proba(texts), speaker.decision.transform(raw_vars["speaker"]))
    assert list(speaker.classes_) == ["applicant", "court", "no_one", "state"]
    assert thresholds.shape == (2,)


def test_per_variable_keeps_one_network_per_output(echr, tiny_bert, tmp_path):
    folder, _ = echr
    out = tmp_path / "separate"
    res = runner.invoke(app, ["run", str(_config(folder, tiny_bert, per_variable=True, calibration="none")),
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (out / "models").iterdir()) == ["encoder", "encoder-class-speaker"]
    model, _, variables = RunDir(out).load_models()
    assert not hasattr(model, "shared") and list(variables["speaker"].classes_) == ["applicant", "court", "no_one",
                                                                                      "state"]


def test_k_fold_shared_run_writes_out_of_fold_codes_and_the_deployed_model(echr, tiny_bert, tmp_path):
    folder, table = echr
    out = tmp_path / "cv"
    cfg = _config(folder, tiny_bert, per_variable=False, calibration="none",
                  split={"method": "kfold", "n_folds": 3, "seed": 0})
    res = runner.invoke(app, ["run", str(cfg), "--out", str(out)])
    assert res.exit_code == 0, res.output
    preds = pd.read_parquet(out / "predictions.parquet")
    assert len(preds) == len(table) and preds[[f"{lab}_prob" for lab in LABELS]].notna().all().all()
    assert preds["speaker_pred"].isin(["applicant", "court", "no_one", "state"]).all()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "cv" and len(metrics["variables"]["speaker"]["temperature_folds"]) == 3
    assert sorted(p.name for p in (out / "models").iterdir()) == ["encoder"]


def test_tfidf_fits_one_model_per_output(echr, tmp_path):
    folder, _ = echr
    raw = {"data": {"path": str(folder / "data.csv"), "id_column": "id", "label_columns": LABELS,
                    "class_columns": ["speaker"]},
           "split": {"method": "column", "column": "split"}, "model": {"kind": "tfidf"},
           "evaluate": {"bootstrap": 0}, "report": {"enabled": False}}
    (tmp_path / "tfidf.toml").write_text(tomli_w.dumps(raw), encoding="utf-8")
    res = runner.invoke(app, ["run", str(tmp_path / "tfidf.toml"), "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "run" / "models").iterdir()) == ["tfidf", "tfidf-class-speaker"]


def test_views_share_a_pass_only_over_the_same_texts(shared_run, echr, monkeypatch):
    from lexcoder.models.transformer import TransformerClassifier
    model, _, variables = RunDir(shared_run).load_models()
    _, table = echr
    texts = table["text"].tolist()
    calls = []
    real = TransformerClassifier._predict_proba
    monkeypatch.setattr(TransformerClassifier, "_predict_proba",
                        lambda self, t: calls.append(len(t)) or real(self, t))
    first = model.predict_proba(texts[:10])
    first[:] = -1.0  # the caller's copy: the cache keeps the model's answer
    again = model.predict_proba(list(texts[:10]))  # equal content, another list: no new pass
    speaker = variables["speaker"].predict_proba(texts[:10])
    other = variables["speaker"].predict_proba(texts[1:11])  # other content: a new pass
    assert calls == [10, 10] and (again >= 0).all()
    np.testing.assert_allclose(other[:9], speaker[1:], atol=1e-6)


def test_llm_shared_run_interrupted_and_resumed_matches_uninterrupted(echr, tiny_llama, tmp_path, monkeypatch):
    """A LoRA LLM learns labels and speaker in one network too, and its partition checkpoints resume it."""
    from lexcoder.models.transformer import TransformerClassifier
    folder, _ = echr
    raw = {"data": {"path": str(folder / "data.csv"), "id_column": "id", "label_columns": LABELS,
                    "class_columns": ["speaker"]},
           "split": {"method": "column", "column": "split"},
           "model": {"kind": "llm", "name": tiny_llama,
                     "params": {"max_length": 48, "stride": 16, "batch_size": 16, "epochs": 1, "lr": 1e-3,
                                "lora_r": 4, "checkpoint_steps": 4, "patience": 100, "num_threads": 1, "seed": 7}},
           "evaluate": {"bootstrap": 0}, "report": {"enabled": False}}
    (tmp_path / "llm.toml").write_text(tomli_w.dumps(raw), encoding="utf-8")
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert runner.invoke(app, ["run", str(tmp_path / "llm.toml"), "--out", str(full)]).exit_code == 0
    assert sorted(p.name for p in (full / "models").iterdir()) == ["llm"]

    def interrupt(self, step):
        if step == 6:
            raise KeyboardInterrupt
    monkeypatch.setattr(TransformerClassifier, "_after_step", interrupt)
    assert runner.invoke(app, ["run", str(tmp_path / "llm.toml"), "--out", str(cut)]).exit_code == 130
    steps = []
    monkeypatch.setattr(TransformerClassifier, "_after_step", lambda self, step: steps.append(step))
    res = runner.invoke(app, ["run", str(tmp_path / "llm.toml"), "--out", str(cut), "--resume"])
    assert res.exit_code == 0, res.output
    assert steps[0] == 5  # resumed after the step-4 checkpoint, not from the start
    a, b = (pd.read_parquet(d / "predictions.parquet") for d in (full, cut))
    probs = [c for c in a.columns if "_prob" in c]
    assert any(c.startswith("speaker_prob_") for c in probs)
    np.testing.assert_array_equal(a[probs].to_numpy(), b[probs].to_numpy())
