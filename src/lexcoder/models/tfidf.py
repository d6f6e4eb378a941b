"""TF-IDF + logistic regression, one class-balanced binary model per label (the fast CPU default).

Given context inputs (a DataFrame: :mod:`lexcoder.models.inputs`) the features are separate blocks, side by
side: the text's TF-IDF, one TF-IDF per neighbour side (``previous``, ``next``: own vocabularies, so "the
previous sentence mentions a section" is a feature of its own), the position in the document as a
piecewise-linear curve (hat functions at 0, 0.1, ..., 1: no fitted state) and each metadata column one-hot
(categories seen in training; numbers in up to five quantile bins).

Saved as JSON (vocabulary, settings) plus ``.npy`` arrays (idf, coefficients): no pickle, and a reload
reproduces the probabilities bit for bit because prediction always runs from those arrays.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, log_loss
from threadpoolctl import threadpool_limits

from ..errors import DataError
from .base import TextClassifier, model_family
from .outputs import MULTIOUTPUT, apply_links
from .inputs import NEIGHBOURS, POSITION, TEXT, ContextTexts, category, metadata_columns

log = logging.getLogger(__name__)

_C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0)
_POSITION_KNOTS = np.linspace(0.0, 1.0, 11)  # hat functions: a piecewise-linear effect of the position
_METADATA_BINS = 5  # quantile bins of a numeric metadata column


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
            if not _no_words(err):
                raise
        examples = list(dict.fromkeys(texts))[:5]
        min_df = self.min_df
        raise DataError(
            f"The {len(texts)} training texts give TF-IDF no words to learn from: a word is a run of two or "
            f"more letters or digits, and it must occur in at least min_df = {min_df} text(s). The first "
            f"texts are {examples}. Check that text_column names the column with the texts"
            + (", or lower the model's min_df setting." if min_df > 1 else ".")) from None

    def _fit_features(self, texts: list[str] | ContextTexts) -> sp.csr_matrix:
        """Learn the features of the training texts (with context: every block's) and return them."""
        if not isinstance(texts, ContextTexts):
            self.context_ = None
            return self._fit_vectorizers(texts)
        frame = texts.frame
        X = self._fit_vectorizers(frame[TEXT].tolist())
        self.neighbour_vectorizers_ = {}
        for side in (c for c in NEIGHBOURS if c in frame.columns):
            vecs = self._vectorizers()
            try:
                for v in vecs:
                    v.fit(frame[side].tolist())
            except ValueError as err:  # e.g. one-text documents only: no neighbour has a word
                if not _no_words(err):
                    raise
                log.warning("TF-IDF: the %s texts hold no words; that context block is left out.", side)
                continue
            self.neighbour_vectorizers_[side] = vecs
        self.context_ = {"neighbours": list(self.neighbour_vectorizers_), "position": POSITION in frame.columns,
                         "metadata": {col: _metadata_encoding(frame[col]) for col in metadata_columns(frame)}}
        return sp.hstack([X, *self._context_blocks(frame)], format="csr")

    def _features(self, texts: list[str] | ContextTexts) -> sp.csr_matrix:
        if not isinstance(texts, ContextTexts):
            return sp.hstack([v.transform(texts) for v in self.vectorizers_], format="csr")
        frame = texts.frame
        X = sp.hstack([v.transform(frame[TEXT].tolist()) for v in self.vectorizers_], format="csr")
        return sp.hstack([X, *self._context_blocks(frame)], format="csr")

    def _context_blocks(self, frame) -> list[sp.csr_matrix]:
        """The neighbour, position and metadata blocks of context inputs, in a fixed order."""
        blocks = [v.transform(frame[side].tolist()) for side in self.context_["neighbours"]
                  for v in self.neighbour_vectorizers_[side]]
        if self.context_["position"]:
            blocks.append(sp.csr_matrix(position_basis(frame[POSITION].to_numpy(dtype=float))))
        for col, encoding in self.context_["metadata"].items():
            blocks.append(sp.csr_matrix(_metadata_onehot(frame[col], encoding)))
        return blocks

    # -- interface ------------------------------------------------------------------------------
    def _fit(self, texts, Y, val_texts, val_Y) -> None:
        X = self._fit_features(texts)
        Xv = self._features(val_texts) if val_texts is not None else None
        if self.target_type_ == MULTIOUTPUT:
            self._fit_outputs(X, Y, Xv, val_Y)
            return
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

    def _fit_outputs(self, X, Y, Xv, val_Y) -> None:
        """Multi-output: each 0/1 label's and each variable's own model (as if fitted alone), their
        coefficients stacked in the rows of the matrix's columns (no body to share)."""
        self.coef_, self.intercept_ = np.zeros((Y.shape[1], X.shape[1])), np.zeros(Y.shape[1])
        self.C_ = []
        for o in self.outputs_:
            cols, yv = o.columns, None if val_Y is None else val_Y[:, o.columns]
            if o.categorical:
                clf = self._fit_classes(X, Y[:, cols].argmax(axis=1), Xv,
                                        None if yv is None else yv.argmax(axis=1), n_classes=o.width)
            else:
                clf = self._fit_label(X, Y[:, o.start], Xv, None if yv is None else yv[:, 0])
            coef, intercept = clf.coef_, clf.intercept_
            if o.categorical and len(coef) == 1:  # two classes: one logit z; softmax([0, z]) = [1 - σ(z), σ(z)]
                coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.r_[0.0, intercept]
            self.coef_[cols], self.intercept_[cols] = coef, intercept
            self.C_.append(float(clf.C))

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
            # one BLAS thread: lbfgs's work is sparse products; OpenBLAS's spinning threads only cost here,
            # up to 10x on a busy 2-core machine (measured while other jobs ran), never gaining when idle
            with threadpool_limits(limits=1, user_api="blas"):
                clf = LogisticRegression(C=C, class_weight=self.class_weight, solver="lbfgs", max_iter=2000,
                                         random_state=self.seed).fit(X, y)
            score = -log_loss(yv, clf.predict_proba(Xv), labels=range(n_classes)) if len(grid) > 1 else 0.0
            if score > best_score:
                best, best_score = clf, score
        return best

    def _predict_proba(self, texts) -> np.ndarray:
        z = np.asarray(self._features(texts) @ self.coef_.T) + self.intercept_
        return apply_links(z, self._link_groups())

    # -- persistence ------------------------------------------------------------------------------
    def _save(self, directory: Path) -> None:
        _save_vectorizers(directory, "", self.vectorizers_)
        for side in (self.context_ or {}).get("neighbours", []):
            _save_vectorizers(directory, f"{side}_", self.neighbour_vectorizers_[side])
        np.save(directory / "coef.npy", self.coef_, allow_pickle=False)
        np.save(directory / "intercept.npy", self.intercept_, allow_pickle=False)
        state = {"C_": self.C_, **({"context": self.context_} if self.context_ is not None else {})}
        (directory / "tfidf_state.json").write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def _load(cls, directory: Path, meta: dict[str, Any]) -> "TfidfClassifier":
        model = cls.from_saved_params(meta["params"])
        model.vectorizers_ = _load_vectorizers(directory, "", model._vectorizers())
        state = json.loads((directory / "tfidf_state.json").read_text(encoding="utf-8"))
        model.C_, model.context_ = state["C_"], state.get("context")
        model.neighbour_vectorizers_ = {side: _load_vectorizers(directory, f"{side}_", model._vectorizers())
                                        for side in (model.context_ or {}).get("neighbours", [])}
        model.coef_ = np.load(directory / "coef.npy", allow_pickle=False)
        model.intercept_ = np.load(directory / "intercept.npy", allow_pickle=False)
        return model


def _save_vectorizers(directory: Path, stem: str, vectorizers: list[TfidfVectorizer]) -> None:
    """Vocabularies as JSON term lists, idf weights as ``.npy`` (``vocabulary_0.json``, ``idf_0.npy`` ...)."""
    for i, vec in enumerate(vectorizers):
        terms = sorted(vec.vocabulary_, key=vec.vocabulary_.get)
        (directory / f"{stem}vocabulary_{i}.json").write_text(json.dumps(terms, ensure_ascii=False), encoding="utf-8")
        np.save(directory / f"{stem}idf_{i}.npy", vec.idf_, allow_pickle=False)


def _load_vectorizers(directory: Path, stem: str, vectorizers: list[TfidfVectorizer]) -> list[TfidfVectorizer]:
    """``vectorizers`` (unfitted, with the model's settings) given the saved vocabularies and idf weights."""
    for i, vec in enumerate(vectorizers):
        terms = json.loads((directory / f"{stem}vocabulary_{i}.json").read_text(encoding="utf-8"))
        vec.vocabulary = {t: k for k, t in enumerate(terms)}
        vec._validate_vocabulary()
        vec.idf_ = np.load(directory / f"{stem}idf_{i}.npy", allow_pickle=False)
    return vectorizers


def _no_words(err: ValueError) -> bool:
    """scikit-learn's complaint that texts left no term to learn."""
    return any(s in str(err) for s in ("vocabulary", "no terms remain", "max_df"))


def position_basis(position: np.ndarray) -> np.ndarray:
    """``(n, 11)`` hat functions of positions in [0, 1] (each row sums to 1: a linear interpolation between
    the knots 0, 0.1, ..., 1), so the model learns a piecewise-linear effect of where a text stands."""
    width = _POSITION_KNOTS[1] - _POSITION_KNOTS[0]
    return np.clip(1.0 - np.abs(position[:, None] - _POSITION_KNOTS[None, :]) / width, 0.0, None)


def _metadata_encoding(values) -> dict[str, Any]:
    """How a metadata column becomes features, learnt from the training rows: quantile bin edges when every
    value is a number, else the categories seen (JSON-ready)."""
    import pandas as pd
    present = values[~pd.isna(values)]
    numbers = pd.to_numeric(present, errors="coerce")
    if len(present) and not numbers.isna().any() and not pd.api.types.is_bool_dtype(present):
        qs = np.linspace(0, 1, _METADATA_BINS + 1)[1:-1]
        return {"edges": np.unique(np.quantile(numbers.to_numpy(dtype=float), qs)).tolist()}
    return {"categories": sorted({category(v) for v in present})}


def _metadata_onehot(values, encoding: dict[str, Any]) -> np.ndarray:
    """One-hot rows of a metadata column: its bin (plus a last column for a missing number), or its category
    (all zeros for a category not seen in training or a missing value)."""
    import pandas as pd
    missing = np.asarray(pd.isna(values), dtype=bool)
    if "edges" in encoding:
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        missing |= np.isnan(numbers)
        out = np.zeros((len(values), len(encoding["edges"]) + 2))
        rows = np.flatnonzero(~missing)
        out[rows, np.searchsorted(encoding["edges"], numbers[rows], side="right")] = 1.0
        out[missing, -1] = 1.0
        return out
    index = {c: j for j, c in enumerate(encoding["categories"])}
    out = np.zeros((len(values), len(index)))
    for i, v in enumerate(values):
        j = None if missing[i] else index.get(category(v))
        if j is not None:
            out[i, j] = 1.0
    return out
