"""Every model family is a scikit-learn estimator over texts: clone, get/set_params, cross_val_predict,
binary targets for TunedThresholdClassifierCV and cleanlab's CleanLearning, settings checked in fit."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.metrics import average_precision_score
from sklearn.model_selection import GroupKFold, cross_val_predict

from lexcoder.errors import ConfigError, InvalidSettingError, LexcoderError
from lexcoder.models import build_model
from lexcoder.models.base import META_FILE, TextClassifier
from lexcoder.models.encoder import EncoderClassifier
from lexcoder.models.llm import LLMClassifier
from lexcoder.models.tfidf import TfidfClassifier

LABELS = ["limitation_of_liability", "unilateral_termination", "arbitration"]
TINY = {"max_length": 32, "stride": 8, "batch_size": 8, "eval_batch_size": 32, "max_steps": 2,
        "warmup_ratio": 0.0, "num_threads": 1, "seed": 0}


@pytest.fixture(scope="module")
def corpus(tos_full):
    """Short ToS sentences from 30 documents: all those with one of LABELS and three times as many without."""
    short = tos_full[tos_full["text"].str.len() < 250]
    short = short[short["doc_id"].isin(sorted(short["doc_id"].unique())[:30])]
    has = short[LABELS].sum(axis=1) > 0
    df = short[has].sample(min(int(has.sum()), 60), random_state=0)
    neg = short[~has].sample(3 * len(df), random_state=0)
    return pd.concat([df, neg]).sample(frac=1, random_state=1).reset_index(drop=True)


def _families(tiny_bert, tiny_llama):
    return {"tfidf": TfidfClassifier(C=3.0),
            "encoder": EncoderClassifier(name=tiny_bert, **TINY),
            "llm": LLMClassifier(name=tiny_llama, lora_r=4, **TINY)}


@pytest.mark.parametrize("kind", ["tfidf", "encoder", "llm"])
def test_clone_and_cross_val_predict_work_on_every_family(kind, corpus, tiny_bert, tiny_llama):
    model = _families(tiny_bert, tiny_llama)[kind]
    copy = clone(model)
    assert type(copy) is type(model) and copy.get_params() == model.get_params()
    assert copy.set_params(seed=7) is copy and copy.seed == 7 and model.seed != 7  # a copy, not a view
    texts, Y = corpus["text"].tolist(), corpus[LABELS].to_numpy()
    P = cross_val_predict(model, texts, Y, cv=GroupKFold(n_splits=3), groups=corpus["doc_id"],
                          method="predict_proba")
    assert P.shape == Y.shape and np.isfinite(P).all() and ((P >= 0) & (P <= 1)).all()
    assert not hasattr(model, "label_names_")  # cross_val_predict fitted clones, never the model given
    if kind == "tfidf":  # real words: out-of-fold probabilities rank the codes well above chance
        for j in range(len(LABELS)):
            assert average_precision_score(Y[:, j], P[:, j]) > 2 * Y[:, j].mean()


def test_a_fitted_clone_is_unfitted_and_params_round_trip(corpus):
    fitted = TfidfClassifier(ngram_max=1, C="auto").fit(corpus["text"], corpus[LABELS].to_numpy(),
                                                        label_names=LABELS)
    assert fitted.label_names_ == LABELS and list(fitted.classes_) == [0, 1, 2]
    fresh = clone(fitted)
    assert not hasattr(fresh, "label_names_") and fresh.get_params() == fitted.get_params()
    with pytest.raises(LexcoderError, match="not fitted"):
        fresh.predict_proba(["a text"])
    assert TfidfClassifier(**fitted.get_params()).get_params() == fitted.get_params()
    assert "ngram_max=1" in repr(fitted) and "C='auto'" in repr(fitted)  # repr shows what differs from defaults


def test_binary_target_gives_two_columns_and_keeps_its_classes(corpus, tmp_path):
    texts = corpus["text"].tolist()
    y = np.where(corpus[LABELS[0]] == 1, "unfair", "fair")
    model = TfidfClassifier().fit(texts, y)
    P = model.predict_proba(texts)
    assert P.shape == (len(texts), 2) and np.allclose(P.sum(axis=1), 1)
    assert list(model.classes_) == ["fair", "unfair"]
    assert set(model.predict(texts)) <= {"fair", "unfair"}
    assert (model.predict(texts) == np.where(P[:, 1] >= 0.5, "unfair", "fair")).all()
    model.save(tmp_path / "m")
    again = TextClassifier.load(tmp_path / "m")
    assert list(again.classes_) == ["fair", "unfair"]
    np.testing.assert_array_equal(again.predict_proba(texts), P)
    with pytest.raises(LexcoderError, match="exactly two classes"):
        TfidfClassifier().fit(texts, np.arange(len(texts)) % 3)


def test_tuned_threshold_classifier_cv_tunes_a_lexcoder_model(corpus):
    from sklearn.model_selection import TunedThresholdClassifierCV
    texts, y = corpus["text"].tolist(), corpus[LABELS[0]].to_numpy()
    tuned = TunedThresholdClassifierCV(TfidfClassifier(), scoring="f1", cv=3, random_state=0).fit(texts, y)
    assert 0 < tuned.best_threshold_ < 1 and tuned.best_score_ > y.mean()
    assert set(tuned.predict(texts)) <= {0, 1}


def test_cleanlab_clean_learning_finds_flipped_codes(corpus):
    """Codes flipped on purpose are flagged far more often than the codes left alone."""
    CleanLearning = pytest.importorskip("cleanlab.classification").CleanLearning
    texts = np.asarray(corpus["text"].tolist(), dtype=object)  # CleanLearning indexes X with lists
    y = corpus[LABELS[0]].to_numpy().copy()
    flipped = np.random.default_rng(0).choice(np.flatnonzero(y == 1), size=max(3, int(y.sum()) // 4),
                                              replace=False)
    y[flipped] = 0
    issues = CleanLearning(TfidfClassifier(), cv_n_folds=3, seed=0, verbose=False).fit(texts, y) \
        .get_label_issues()["is_label_issue"].to_numpy()
    others = np.setdiff1d(np.arange(len(y)), flipped)
    assert issues[flipped].mean() > 3 * max(issues[others].mean(), 0.01)


def test_settings_are_stored_as_given_and_checked_in_fit(corpus):
    texts, Y = corpus["text"].tolist(), corpus[LABELS].to_numpy()
    model = TfidfClassifier(ngram_max=0, C="10")  # scikit-learn's contract: the constructor only stores
    assert model.ngram_max == 0 and model.C == "10"
    with pytest.raises(InvalidSettingError) as err:
        model.fit(texts, Y)
    assert "ngram_max = 0: expected an integer >= 1" in str(err.value)
    assert "C = '10': expected a number > 0 or \"auto\"" in str(err.value)
    assert "[model.params]" not in str(err.value)  # the library speaks of settings, not config sections
    with pytest.raises(InvalidSettingError, match=r"stride = 40: the overlap of windows must be at most half"):
        EncoderClassifier(max_length=64, stride=40).fit(texts, Y)
    with pytest.raises(InvalidSettingError, match="merge = true does not work with load_in_4bit"):
        LLMClassifier(load_in_4bit=True, merge=True).fit(texts, Y)


def test_config_settings_get_config_wording_and_conflicts(tiny_bert):
    with pytest.raises(ConfigError) as err:
        build_model("encoder", tiny_bert, {"max_lenght": 64, "pooling": "median"})
    text = str(err.value)
    assert "max_lenght = 64: unknown key (did you mean 'max_length'?)" in text
    assert "pooling = 'median': expected \"max\" or \"mean\"" in text
    assert "Valid [model.params] keys" in text
    with pytest.raises(ConfigError, match=r"stride = 40: the overlap of windows must be at most half of "
                                          r"max_length \(64\)"):
        build_model("encoder", tiny_bert, {"max_length": 64, "stride": 40})
    with pytest.raises(ConfigError, match=r"max_tokens_per_batch = 32 is smaller than one window"):
        build_model("encoder", tiny_bert, {"max_length": 64, "max_tokens_per_batch": 32})


def test_a_model_saved_with_a_setting_this_version_lacks_still_loads(corpus, tmp_path, caplog):
    TfidfClassifier().fit(corpus["text"], corpus[LABELS].to_numpy(), label_names=LABELS).save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / META_FILE).read_text())
    meta["params"]["retired_setting"] = 1
    (tmp_path / "m" / META_FILE).write_text(json.dumps(meta))
    with caplog.at_level("WARNING"):
        model = TextClassifier.load(tmp_path / "m")
    assert "retired_setting" in caplog.text and model.get_params() == TfidfClassifier().get_params()
    assert model.predict_proba(corpus["text"][:3]).shape == (3, len(LABELS))
