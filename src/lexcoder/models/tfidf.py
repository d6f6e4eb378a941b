"""TF-IDF + logistic regression, one class-balanced binary model per label (the fast CPU default).

Saved as JSON (vocabulary, settings) plus ``.npy`` arrays (idf, coefficients): no pickle, and a reload
reproduces the probabilities bit for bit because prediction always runs from those arrays.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field
from scipy.special import expit, softmax
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, log_loss

from ..errors import DataError
from .base import TextClassifier, model_family

_C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0)


@model_family
class TfidfClassifier(TextClassifier):
    """Word (and optionally character) n-gram TF-IDF features + logistic regression per label (0/1
    labels) or one multinomial logistic regression (a categorical variable's classes)."""

    kind: ClassVar[str] = "tfidf"

    ngram_max: Annotated[int, Field(ge=1, description="largest word n-gram (2: unigrams and bigrams)")] = 2
    min_df: Annotated[int, Field(ge=1, description="ignore terms that occur in fewer texts than this")] = 2
    char_ngrams: Annotated[bool, Field(description=(
        "add character 2-5-grams (within word boundaries); helps with typos and morphology"))] = False
    C: Annotated[float, Field(gt=0, description=(
        'inverse regularisation strength, or "auto": per label, the best of a small grid by average '
        "precision on the validation texts (10 without validation texts)"))] | Literal["auto"] = 10.0
    class_weight: Annotated[Literal["balanced"] | None, Field(description=(
        '"balanced" reweights the rare class (labels are often 1-50 % positive); unset: no weights'))] \
        = "balanced"
    max_features: Annotated[int, Field(ge=1, description="cap on the vocabulary size (unset: no cap)")] \
        | None = None
    seed: Annotated[int, Field(ge=0, lt=2**32, description="seeds the solver")] = 0

    # -- features -------------------------------------------------------------------------------
    def _vectorizers(self) -> list[TfidfVectorizer]:
        vecs = [TfidfVectorizer(ngram_range=(1, self.ngram_max), min_df=self.min_df, sublinear_tf=True,
                                max_features=self.max_features, dtype=np.float64)]
        if self.char_ngrams:
            vecs.append(TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=self.min_df,
                                        sublinear_tf=True, max_features=self.max_features, dtype=np.float64))
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
        min_df = self.min_df
        raise DataError(
            f"The {len(texts)} training texts give TF-IDF no words to learn from: a word is a run of two or "
            f"more letters or digits, and it must occur in at least min_df = {min_df} text(s). The first "
            f"texts are {examples}. Check that text_column names the column with the texts"
            + (", or lower the model's min_df setting." if min_df > 1 else ".")) from None

    def _features(self, texts: Sequence[str]) -> sp.csr_matrix:
        return sp.hstack([v.transform(texts) for v in self.vectorizers_], format="csr")

    # -- interface ------------------------------------------------------------------------------
    def _fit(self, texts, Y, val_texts, val_Y) -> None:
        X = self._fit_vectorizers(texts)
        Xv = self._features(val_texts) if val_texts is not None else None
        if self.multiclass:
            clf = self._fit_classes(X, Y.argmax(axis=1), Xv, None if val_Y is None else val_Y.argmax(axis=1),
                                    n_classes=Y.shape[1])
            self.coef_, self.intercept_, self.C_ = clf.coef_, clf.intercept_, [float(clf.C)]
            return
        coefs, intercepts, self.C_ = [], [], []
        for j in range(Y.shape[1]):
            clf = self._fit_label(X, Y[:, j], Xv, None if val_Y is None else val_Y[:, j])
            coefs.append(clf.coef_.ravel())
            intercepts.append(float(clf.intercept_[0]))
            self.C_.append(float(clf.C))
        self.coef_ = np.vstack(coefs)
        self.intercept_ = np.asarray(intercepts)

    def _fit_label(self, X, y, Xv, yv) -> LogisticRegression:
        grid = _C_GRID if self.C == "auto" else (float(self.C),)
        if len(grid) > 1 and (Xv is None or yv is None or yv.min() == yv.max()):
            grid = (10.0,)
        best, best_score = None, -np.inf
        for C in grid:
            clf = LogisticRegression(C=C, class_weight=self.class_weight, solver="liblinear",
                                     max_iter=1000, random_state=self.seed).fit(X, y)
            score = average_precision_score(yv, clf.decision_function(Xv)) if len(grid) > 1 else 0.0
            if score > best_score:
                best, best_score = clf, score
        return best

    def _fit_classes(self, X, y, Xv, yv, *, n_classes: int) -> LogisticRegression:
        """One multinomial logistic regression over the classes (softmax), C by validation log-loss."""
        grid = _C_GRID if self.C == "auto" else (float(self.C),)
        if len(grid) > 1 and (Xv is None or yv is None):
            grid = (10.0,)
        best, best_score = None, -np.inf
        for C in grid:
            clf = LogisticRegression(C=C, class_weight=self.class_weight, solver="lbfgs", max_iter=2000,
                                     random_state=self.seed).fit(X, y)
            score = -log_loss(yv, clf.predict_proba(Xv), labels=range(n_classes)) if len(grid) > 1 else 0.0
            if score > best_score:
                best, best_score = clf, score
        return best

    def _predict_proba(self, texts) -> np.ndarray:
        z = np.asarray(self._features(texts) @ self.coef_.T) + self.intercept_
        return softmax(z, axis=1) if self.multiclass else expit(z)

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
        model = cls.from_saved_params(meta["params"])
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
