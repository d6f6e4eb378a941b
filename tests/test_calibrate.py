"""Post-hoc calibration (Platt, isotonic) fitted on validation, saved as JSON, applied by predict."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lexcoder.calibrate import CALIBRATION_FILE, Calibrator, calibrate_on_validation
from lexcoder.config import config_from_dict
from lexcoder.models import build_model
from lexcoder.pipeline import run_pipeline
from lexcoder.predict import predict_file
from lexcoder.stats import expected_calibration_error

FAST_TFIDF = {"ngram_max": 1, "C": 1.0}


@pytest.fixture(scope="module")
def tos_probs(tos_full, tos_labels):
    """Raw TF-IDF probabilities on validation and test documents of the real ToS data."""
    docs = sorted(tos_full["doc_id"].unique())
    part = {name: tos_full[tos_full["doc_id"].isin(d)] for name, d in
            (("train", docs[:25]), ("val", docs[25:38]), ("test", docs[38:]))}
    model = build_model("tfidf", None, FAST_TFIDF).fit(part["train"]["text"].tolist(),
                                                       part["train"][tos_labels].to_numpy(), label_names=tos_labels)
    return {name: (df[tos_labels].to_numpy(), model.predict_proba(df["text"].tolist()))
            for name, df in part.items() if name != "train"}


def _mean_ece(Y, P):
    return np.mean([expected_calibration_error(Y[:, j], P[:, j]) for j in range(Y.shape[1])])


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibration_reduces_ece_on_real_validation_and_test(tos_probs, method):
    (Yv, Pv), (Yt, Pt) = tos_probs["val"], tos_probs["test"]
    cal = Calibrator(method).fit(Yv, Pv)
    assert _mean_ece(Yv, cal.transform(Pv)) < 0.6 * _mean_ece(Yv, Pv)
    assert _mean_ece(Yt, cal.transform(Pt)) < _mean_ece(Yt, Pt)  # documents never seen by the calibrator


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibration_is_monotone_and_round_trips_through_json(tos_probs, method, tmp_path):
    Yv, Pv = tos_probs["val"]
    cal = Calibrator(method).fit(Yv, Pv)
    grid = np.tile(np.linspace(0, 1, 201)[:, None], (1, Pv.shape[1]))
    out = cal.transform(grid)
    assert out.shape == grid.shape and np.all((out >= 0) & (out <= 1))
    assert np.all(np.diff(out, axis=0) >= -1e-12)  # ranking of texts is kept
    path = cal.save(tmp_path / CALIBRATION_FILE)
    json.loads(path.read_text())  # plain JSON, no pickle
    np.testing.assert_allclose(Calibrator.load(path).transform(Pv), cal.transform(Pv))


def test_label_with_one_class_in_validation_is_left_uncalibrated(tos_probs):
    Yv, Pv = tos_probs["val"]
    Y = Yv.copy()
    Y[:, 0] = 0
    cal = Calibrator("platt").fit(Y, Pv)
    np.testing.assert_allclose(cal.transform(Pv)[:, 0], Pv[:, 0])


def test_none_returns_model_and_probabilities_unchanged(tos_probs):
    Yv, Pv = tos_probs["val"]
    model = object()
    assert calibrate_on_validation(model, Yv, Pv, method="none") == (model, Pv)


def test_pipeline_tunes_thresholds_on_calibrated_validation_and_predict_applies_it(tmp_path, tos_docs,
                                                                                    tos_labels):
    data = tmp_path / "tos.csv"
    docs = sorted(tos_docs["doc_id"].unique())[:20]
    tos_docs[tos_docs["doc_id"].isin(docs)].to_csv(data, index=False)
    labels = tos_labels[:4]
    cfg = config_from_dict({
        "data": {"path": str(data), "id_column": "id", "label_columns": labels, "group_column": "doc_id"},
        "split": {"n_clusters": 10, "duplicates": "keep_groups"}, "model": {"params": {"ngram_max": 1}}, "evaluate": {"bootstrap": 50},
        "calibration": {"method": "isotonic"}, "report": {"enabled": False}})
    run = run_pipeline(cfg, tmp_path / "run").run
    model_dir = run.model_dir("tfidf")
    assert json.loads((model_dir / CALIBRATION_FILE).read_text())["method"] == "isotonic"
    preds = pd.read_parquet(run.predictions)
    thresholds = json.loads((model_dir / "thresholds.json").read_text())["thresholds"]
    for lab in labels:  # an isotonic map has few values: the tuned threshold must be one of them
        val_probs = preds.loc[preds["split"] == "val", f"{lab}_prob"].to_numpy()
        assert np.isclose(val_probs, thresholds[lab]).any()
    test = pd.read_parquet(run.data).merge(preds[preds["split"] == "test"][["id"]], on="id")
    test[["id", "text"]].to_csv(tmp_path / "new.csv", index=False)
    coded = pd.read_csv(predict_file(run.root, tmp_path / "new.csv", tmp_path / "coded.csv"), dtype={"id": str})
    expected = preds.set_index("id").loc[coded["id"]]
    for lab in labels:
        np.testing.assert_allclose(coded[f"{lab}_prob"], expected[f"{lab}_prob"], atol=1e-9)
        np.testing.assert_array_equal(coded[f"{lab}_pred"], expected[f"{lab}_pred"])
