"""Cross-fitting with the TF-IDF + encoder blend (``kind = "blend"``): the mean of the two families'
out-of-fold probabilities, a time estimate before it starts, its own out-of-fold cache, encoder evidence.

A tiny random BERT (tests/models/conftest.py) stands in for MiniLM; still, every test fine-tunes several
networks (10-40 s on 2 busy cores), hence ``slow``."""
from __future__ import annotations

import importlib.util
import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from lexcoder import config_from_dict, run_pipeline  # noqa: E402
from lexcoder.audit import audit_folds, audit_run, out_of_fold_class_proba, out_of_fold_proba  # noqa: E402
from lexcoder.audit.crossfit import estimate_seconds  # noqa: E402


def _models_fixtures():
    """tests/models/conftest.py (test directories are not packages): its tiny random transformers."""
    path = Path(__file__).parents[1] / "models" / "conftest.py"
    spec = importlib.util.spec_from_file_location("_models_conftest", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tiny_bert = _models_fixtures().tiny_bert  # the fixture, used here as if defined in this module

pytestmark = pytest.mark.slow

FAST = {"max_steps": 2, "max_length": 32, "batch_size": 8}
LABELS = ["limitation_of_liability", "unilateral_termination"]


@pytest.fixture(scope="module")
def five_docs(tos_full):
    """Five short Terms of Service (about 560 sentences, both labels coded in each) and 3 folds."""
    docs = ["Mozilla", "Google", "Skyscanner", "Garmin", "Dropbox"]
    df = tos_full[tos_full["doc_id"].isin(docs)].reset_index(drop=True).rename(columns={"doc_id": "group"})
    return df, audit_folds(df, LABELS, n_folds=3, seed=0, n_clusters=6)


def test_blend_is_the_mean_of_the_two_families_on_the_same_folds(five_docs, tiny_bert):
    df, folds = five_docs
    Y = df[LABELS].to_numpy()
    blend = out_of_fold_proba(df["text"], Y, folds, kind="blend", name=tiny_bert, params=FAST)
    tfidf = out_of_fold_proba(df["text"], Y, folds, kind="tfidf")
    encoder = out_of_fold_proba(df["text"], Y, folds, kind="encoder", name=tiny_bert, params=FAST)
    np.testing.assert_allclose(blend, (tfidf + encoder) / 2, atol=1e-6)
    assert np.abs(blend - tfidf).max() > 0.01 and np.abs(blend - encoder).max() > 0.01


def test_blend_of_a_categorical_variable_is_the_mean_too(five_docs, tiny_bert):
    df, folds = five_docs
    y = np.select([df[LABELS[0]] == 1, df[LABELS[1]] == 1], LABELS, "other")
    args = (df["text"], y, folds)
    blend = out_of_fold_class_proba(*args, kind="blend", name=tiny_bert, params=FAST)
    mean = (out_of_fold_class_proba(*args) + out_of_fold_class_proba(*args, kind="encoder", name=tiny_bert,
                                                                     params=FAST)) / 2
    np.testing.assert_allclose(blend, mean, atol=1e-6)
    np.testing.assert_allclose(blend.sum(axis=1), 1.0)


def test_time_estimate_counts_every_folds_training_steps(five_docs, tiny_bert):
    df, folds = five_docs
    Y = df[LABELS].to_numpy()
    capped = estimate_seconds(df["text"], Y, folds, kind="blend", name=tiny_bert, params=FAST)
    assert capped["steps"] == 2 * 3 and capped["fits"] == 3 and capped["seconds"] > 0
    one = estimate_seconds(df["text"], Y, folds, kind="blend", name=tiny_bert, params={**FAST, "max_steps": None,
                                                                                       "epochs": 1})
    two = estimate_seconds(df["text"], Y, folds, kind="blend", name=tiny_bert, params={**FAST, "max_steps": None,
                                                                                       "epochs": 2})
    # one epoch: every training text once, in batches of 8, over the three folds' training parts
    assert one["steps"] >= 2 * len(df) // 8 and two["steps"] == 2 * one["steps"]
    holdout = folds == 0
    with_variable = estimate_seconds(df["text"], Y, np.where(holdout, -1, folds), kind="blend", name=tiny_bert,
                                     params=FAST, holdout=holdout, n_variables=1)
    assert with_variable["fits"] == 3 * 2  # two folds + the held-out rows' model, labels and the variable
    assert estimate_seconds(df["text"], Y, folds, kind="tfidf") is None  # seconds: nothing to estimate


@pytest.fixture
def small_tfidf_run(five_docs, tmp_path):
    df, _ = five_docs
    data = tmp_path / "three.csv"
    df[["id", "group", "text", *LABELS]].to_csv(data, index=False)
    cfg = config_from_dict({"data": {"path": str(data), "text_column": "text", "id_column": "id",
                                     "label_columns": LABELS}, "report": {"enabled": False}})
    run_pipeline(cfg, tmp_path / "run")
    return tmp_path / "run"


def test_blend_audit_logs_its_estimate_keeps_its_own_cache_and_shows_similar_texts(small_tfidf_run, tiny_bert,
                                                                                    caplog):
    run = small_tfidf_run
    key = run / "audit_oof.json"
    tfidf = audit_run(run, n_folds=3)
    assert json.loads(key.read_text())["kind"] == "tfidf"
    assert "Cross-fitting with" not in caplog.text  # TF-IDF: no estimate needed
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="lexcoder"):
        blend = audit_run(run, n_folds=3, kind="blend", name=tiny_bert, params=FAST)
    assert re.search(r"Cross-fitting with blend: about \d+ (s|min)", caplog.text)
    assert "Reusing" not in caplog.text  # another kind: computed again
    assert json.loads(key.read_text())["kind"] == "blend"
    assert blend.summary["settings"]["kind"] == "blend"
    oof_blend = pd.read_parquet(run / "audit_oof.parquet")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="lexcoder"):
        again = audit_run(run, n_folds=3, kind="blend", name=tiny_bert, params=FAST)
    assert "Reusing" in caplog.text and "Cross-fitting with" not in caplog.text
    pd.testing.assert_frame_equal(pd.read_parquet(run / "audit_oof.parquet"), oof_blend)
    audit_run(run, n_folds=3)  # back to TF-IDF: recomputed, the same probabilities as the first time
    assert json.loads(key.read_text())["kind"] == "tfidf"
    assert not np.allclose(oof_blend[[f"{lab}_prob" for lab in LABELS]],
                           pd.read_parquet(run / "audit_oof.parquet")[[f"{lab}_prob" for lab in LABELS]])
    _check_similar_texts(again.queue, run)
    assert len(tfidf.queue) and not tfidf.queue["evidence"].str.contains("similar texts").any()


def _check_similar_texts(queue: pd.DataFrame, run: Path) -> None:
    """Encoder evidence lists texts of other folds (never held-out ones), coded as the model predicts, confidently."""
    oof = pd.read_parquet(run / "audit_oof.parquet").set_index("id")
    data = pd.read_parquet(run / "data.parquet").set_index("id")
    with_similar = queue[queue["evidence"].str.contains("similar texts coded")]
    assert len(with_similar)
    assert with_similar["evidence"].str.contains("“[^”]+” [+-]").any()  # the TF-IDF half's n-grams as well
    for rec in with_similar.itertuples():
        predicted = int(rec.model_probability >= 0.5)
        assert f"similar texts coded {predicted}:" in rec.evidence
        for other in re.findall(r"id (\S+) \(", rec.evidence.split("similar texts coded")[1]):
            assert oof.loc[other, "fold"] not in (oof.loc[rec.id, "fold"], -1)
            assert data.loc[other, rec.label] == predicted
            confidence = oof[f"{rec.label}_prob"] if predicted else 1 - oof[f"{rec.label}_prob"]
            coded = data.loc[oof.index, rec.label].to_numpy() == predicted
            assert confidence[other] >= confidence[coded].mean()  # confident learning's threshold
