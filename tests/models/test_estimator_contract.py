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
    with pytest.raises(LexcoderError, match="one class only"):
        TfidfClassifier().fit(texts, np.full(len(texts), "fair"))
    with pytest.raises(LexcoderError, match="1 missing value"):
        TfidfClassifier().fit(texts, np.r_[y[:-1], None])


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


@pytest.fixture(scope="module")
def roles(shared_data):
    """Sentences of Indian Supreme Court judgments with one rhetorical role each (7 classes), 2 of the
    authors' folds for training and one for testing, short sentences only (CPU-sized)."""
    df = pd.read_csv(shared_data("indian_sc_rhetorical_roles/texts.csv.gz"))
    df = df[df["text"].str.len() < 300]
    return df[df["fold"].isin([0, 1])].reset_index(drop=True), df[df["fold"] == 2].reset_index(drop=True)


@pytest.mark.parametrize("kind", ["tfidf", "encoder", "llm"])
def test_a_categorical_target_gets_a_softmax_over_its_classes(kind, roles, tiny_bert, tiny_llama, tmp_path):
    train, test = roles
    model = _families(tiny_bert, tiny_llama)[kind]
    if kind != "tfidf":  # tiny random networks: a few steps on a slice show the mechanics, not quality
        train, test = train.groupby("label").head(12), test.head(40)
    model.fit(train["text"], train["label"])
    classes = sorted(train["label"].unique())
    assert model.target_type_ == "multiclass" and list(model.classes_) == classes
    P = model.predict_proba(test["text"])
    assert P.shape == (len(test), len(classes)) and np.allclose(P.sum(axis=1), 1)
    assert (model.predict(test["text"]) == np.asarray(classes)[P.argmax(axis=1)]).all()
    model.save(tmp_path / "m")
    again = TextClassifier.load(tmp_path / "m")
    assert list(again.classes_) == classes and again.target_type_ == "multiclass"
    np.testing.assert_allclose(again.predict_proba(test["text"]), P, atol=1e-6)
    if kind == "tfidf":  # real words: far better than always answering the most frequent role
        from sklearn.metrics import f1_score
        majority = train["label"].value_counts().idxmax()
        pred = model.predict(test["text"])
        assert f1_score(test["label"], pred, average="macro") > \
            2 * f1_score(test["label"], np.full(len(test), majority), average="macro")


@pytest.mark.slow  # several seconds on 2 cores: CI runs it (make test); the quick suite (-m 'not slow') does not
def test_cleanlab_finds_swapped_roles_with_a_multiclass_model(roles):
    CleanLearning = pytest.importorskip("cleanlab.classification").CleanLearning
    train, _ = roles
    train = train.groupby("label").head(150).reset_index(drop=True)
    classes, y = np.unique(train["label"], return_inverse=True)  # cleanlab wants class indices 0..k-1
    rng = np.random.default_rng(0)
    swapped = rng.choice(len(y), size=40, replace=False)
    y[swapped] = [rng.choice(np.setdiff1d(np.arange(len(classes)), [v])) for v in y[swapped]]
    issues = CleanLearning(TfidfClassifier(), cv_n_folds=3, seed=0, verbose=False) \
        .fit(np.asarray(train["text"].tolist(), dtype=object), y).get_label_issues()["is_label_issue"].to_numpy()
    others = np.setdiff1d(np.arange(len(y)), swapped)
    assert issues[swapped].mean() > 2 * issues[others].mean()


def test_multiclass_refuses_settings_that_only_mean_something_for_labels(roles, tiny_bert):
    train, _ = roles
    train = train.groupby("label").head(5)
    with pytest.raises(LexcoderError, match="negative_ratio applies to 0/1 labels"):
        EncoderClassifier(name=tiny_bert, negative_ratio=2.0, **TINY).fit(train["text"], train["label"])
    with pytest.raises(LexcoderError, match="per_label = true trains one binary model per 0/1 label"):
        EncoderClassifier(name=tiny_bert, per_label=True, **TINY).fit(train["text"], train["label"])
