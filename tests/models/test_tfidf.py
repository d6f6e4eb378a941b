"""The TF-IDF family honours the classifier contract, learns from real data and reloads exactly."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from lexcoder.errors import LexcoderError
from lexcoder.models import build_model, load_model


@pytest.fixture(scope="module")
def data(tos_full, tos_labels):
    train = tos_full[tos_full["fold"].isin([2, 3, 4])]
    test = tos_full[tos_full["fold"] == 0]
    return train["text"].tolist(), train[tos_labels].to_numpy(), test["text"].tolist(), test[tos_labels].to_numpy()


def test_fit_predict_save_load(tmp_path, data, tos_labels):
    Xtr, Ytr, Xte, Yte = data
    model = build_model("tfidf").fit(Xtr, Ytr, label_names=tos_labels)
    P = model.predict_proba(Xte)
    assert P.shape == (len(Xte), len(tos_labels)) and (P >= 0).all() and (P <= 1).all()
    # ranking quality on unseen documents far above the base rate for every label
    ap = [average_precision_score(Yte[:, j], P[:, j]) for j in range(len(tos_labels))]
    assert min(ap) > 5 * Yte.mean(axis=0).max()
    model.save(tmp_path / "m")
    assert all(f.suffix in {".json", ".npy"} for f in (tmp_path / "m").iterdir())  # no pickle
    again = load_model(tmp_path / "m")
    assert again.label_names_ == tos_labels
    np.testing.assert_array_equal(again.predict_proba(Xte), P)


@pytest.mark.slow  # several seconds on 2 cores: CI runs it (make test); the quick suite (-m 'not slow') does not
def test_auto_C_and_char_ngrams(data, tos_labels):
    Xtr, Ytr, Xte, Yte = data
    model = build_model("tfidf", params={"C": "auto", "char_ngrams": True}).fit(
        Xtr[:3000], Ytr[:3000], Xte, Yte, label_names=tos_labels)
    assert len(model.C_) == len(tos_labels) and set(model.C_) <= {0.3, 1.0, 3.0, 10.0, 30.0}
    assert model.predict_proba(Xte[:5]).shape == (5, len(tos_labels))


def test_contract_errors(data):
    Xtr, Ytr, *_ = data
    model = build_model("tfidf")
    with pytest.raises(LexcoderError, match="not fitted"):
        model.predict_proba(["x"])
    with pytest.raises(LexcoderError, match="only one class"):
        model.fit(Xtr[:50], np.zeros((50, 2), dtype=int))
    with pytest.raises(LexcoderError, match="shape"):
        model.fit(Xtr[:50], Ytr[:40])
