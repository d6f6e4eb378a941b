"""TF-IDF + logistic regression, one class-balanced binary model per label (the fast CPU default).

Saved as JSON (vocabulary, settings) plus ``.npy`` arrays (idf, coefficients): no pickle, and a reload
reproduces the probabilities bit for bit because prediction always runs from those arrays.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field
from scipy.special import expit
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score

from ..errors import DataError
from .base import TextClassifier, check_training_data

_C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0)


class TfidfClassifier(TextClassifier):
    """Word (and optionally character) n-gram TF-IDF features + logistic regression per label.

    Parameters
    ----------
    ngram_max : largest word n-gram (default 2: unigrams and bigrams)
    min_df : ignore terms in fewer documents than this
    char_ngrams : add character 2–5-grams (within word boundaries); helps with typos and morphology
    C : inverse regularisation strength, or ``"auto"`` to pick it per label from a small grid by
        average precision on the validation texts (falls back to 10 without validation data)
    class_weight : ``"balanced"`` reweights the rare class (labels are 1–50 % positive)
    max_features : cap on the vocabulary size (None = no cap)
    """

    kind = "tfidf"

    # the annotations are the parameter constraints (checked by lexcoder.models.params before any data is read)
    def __init__(self, *, ngram_max: Annotated[int, Field(ge=1)] = 2, min_df: Annotated[int, Field(ge=1)] = 2,
                 char_ngrams: bool = False, C: Annotated[float, Field(gt=0)] | Literal["auto"] = 10.0,
                 class_weight: Literal["balanced"] | None = "balanced",
                 max_features: Annotated[int, Field(ge=1)] | None = None,
                 seed: Annotated[int, Field(ge=0, lt=2**32)] = 0) -> None:
        super().__init__(ngram_max=ngram_max, min_df=min_df, char_ngrams=char_ngrams, C=C,
                         class_weight=class_weight, max_features=max_features, seed=seed)

    # -- features -------------------------------------------------------------------------------
    def _vectorizers(self) -> list[TfidfVectorizer]:
        p = self.params
        vecs = [TfidfVectorizer(ngram_range=(1, p["ngram_max"]), min_df=p["min_df"], sublinear_tf=True,
                                max_features=p["max_features"], dtype=np.float64)]
        if p["char_ngrams"]:
            vecs.append(TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=p["min_df"],
                                        sublinear_tf=True, max_features=p["max_features"], dtype=np.float64))
        return vecs

    def _fit_vectorizers(self, texts: list[str]) -> sp.csr_matrix:
        """Learn the vocabularies; texts without (enough shared) words get a clear error, not sklearn's."""
        self.vectorizers_ = self._vectorizers()
        try:
            return sp.hstack([v.fit_transform(texts) for v in self.vectorizers_], format="csr")
        except ValueError as err:
            if "vocabulary" not in str(err) and "no terms remain" not in str(err) and "max_df" not in str(err):
                raise
        examples = list(dict.fromkeys(texts))[:5]
        min_df = self.params["min_df"]
        raise DataError(
            f"The {len(texts)} training texts give TF-IDF no words to learn from: a word is a run of two or "
            f"more letters or digits, and it must occur in at least min_df = {min_df} text(s). The first "
            f"texts are {examples}. Check that text_column names the column with the texts"
            + (", or lower min_df in [model.params]." if min_df > 1 else ".")) from None

    def _features(self, texts: Sequence[str]) -> sp.csr_matrix:
        return sp.hstack([v.transform(texts) for v in self.vectorizers_], format="csr")

    # -- interface ------------------------------------------------------------------------------
    def fit(self, texts, Y, val_texts=None, val_Y=None, *, label_names=None) -> "TfidfClassifier":
        texts, Y = check_training_data(texts, Y)
        X = self._fit_vectorizers(texts)
        Xv = self._features([str(t) for t in val_texts]) if val_texts is not None else None
        coefs, intercepts, self.C_ = [], [], []
        for j in range(Y.shape[1]):
            clf = self._fit_label(X, Y[:, j], Xv, None if val_Y is None else np.asarray(val_Y)[:, j])
            coefs.append(clf.coef_.ravel())
            intercepts.append(float(clf.intercept_[0]))
            self.C_.append(float(clf.C))
        self.coef_ = np.vstack(coefs)
        self.intercept_ = np.asarray(intercepts)
        self.label_names_ = list(label_names) if label_names is not None else [str(j) for j in range(Y.shape[1])]
        return self

    def _fit_label(self, X, y, Xv, yv) -> LogisticRegression:
        grid = _C_GRID if self.params["C"] == "auto" else (float(self.params["C"]),)
        if len(grid) > 1 and (Xv is None or yv is None or yv.min() == yv.max()):
            grid = (10.0,)
        best, best_score = None, -np.inf
        for C in grid:
            clf = LogisticRegression(C=C, class_weight=self.params["class_weight"], solver="liblinear",
                                     max_iter=1000, random_state=self.params["seed"]).fit(X, y)
            score = average_precision_score(yv, clf.decision_function(Xv)) if len(grid) > 1 else 0.0
            if score > best_score:
                best, best_score = clf, score
        return best

    def predict_proba(self, texts) -> np.ndarray:
        self._check_fitted()
        X = self._features([str(t) for t in texts])
        return expit(np.asarray(X @ self.coef_.T) + self.intercept_)

    # -- persistence ------------------------------------------------------------------------------
    def _save(self, directory: Path) -> None:
        for i, vec in enumerate(self.vectorizers_):
            terms = sorted(vec.vocabulary_, key=vec.vocabulary_.get)
            (directory / f"vocabulary_{i}.json").write_text(json.dumps(terms, ensure_ascii=False), encoding="utf-8")
            np.save(directory / f"idf_{i}.npy", vec.idf_, allow_pickle=False)
        np.save(directory / "coef.npy", self.coef_, allow_pickle=False)
        np.save(directory / "intercept.npy", self.intercept_, allow_pickle=False)
        (directory / "tfidf_state.json").write_text(json.dumps({"C_": self.C_}), encoding="utf-8")

    @classmethod
    def _load(cls, directory: Path, meta: dict[str, Any]) -> "TfidfClassifier":
        model = cls(**meta["params"])
        model.vectorizers_ = model._vectorizers()
        for i, vec in enumerate(model.vectorizers_):
            terms = json.loads((directory / f"vocabulary_{i}.json").read_text(encoding="utf-8"))
            vec.vocabulary = {t: k for k, t in enumerate(terms)}
            vec._validate_vocabulary()
            vec.idf_ = np.load(directory / f"idf_{i}.npy", allow_pickle=False)
        model.coef_ = np.load(directory / "coef.npy", allow_pickle=False)
        model.intercept_ = np.load(directory / "intercept.npy", allow_pickle=False)
        model.C_ = json.loads((directory / "tfidf_state.json").read_text(encoding="utf-8"))["C_"]
        return model
