"""The one classifier interface every model family implements (see docs/ARCHITECTURE.md, the model interface).

A model family is a scikit-learn estimator over texts. Its settings are the annotated fields of a
:func:`model_family` class (a dataclass): each becomes a keyword-only constructor argument stored
unchanged as an attribute, so ``get_params``/``set_params``, :func:`sklearn.base.clone`,
``cross_val_predict``, ``TunedThresholdClassifierCV`` or cleanlab's ``CleanLearning`` work on a lexcoder
model. The annotation of a field is its type and range (``Annotated[int, Field(ge=1, description=...)]``):
from it lexcoder validates settings (:mod:`lexcoder.models.params`), writes the commented example config
and the README's parameter tables, so the class is the one source of truth.

Three target shapes, as in scikit-learn (``target_type_`` says which one a model was fitted on):

- ``"multilabel"`` (lexcoder's 0/1 labels): ``y`` is an ``(n, n_labels)`` 0/1 matrix; ``predict_proba``
  returns ``(n, n_labels)`` probabilities, one independent sigmoid per label; ``classes_ = arange(n_labels)``;
- ``"binary"``: ``y`` is 1-D with two distinct values; ``predict_proba`` returns ``(n, 2)`` and ``classes_``
  holds the two values (what ``TunedThresholdClassifierCV`` and ``CleanLearning`` expect);
- ``"multiclass"`` (an exclusive categorical variable): ``y`` is 1-D with three or more values;
  ``predict_proba`` returns ``(n, k)`` probabilities that sum to 1 (a softmax), ``classes_`` the k values
  in sorted order, ``predict`` the most probable one.

A family sees a 0/1 matrix in every case (one column per class for ``"multiclass"``, one-hot) and reads
``self.target_type_`` to choose sigmoids or a softmax.

Model files are safe and portable: JSON, numpy ``.npy`` and safetensors, never pickle.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from ..errors import LexcoderError
from ..io import atomic_dir

log = logging.getLogger(__name__)

META_FILE = "lexcoder_model.json"

T = TypeVar("T", bound=type)


def model_family(cls: T) -> T:
    """Class decorator for a model family: its annotated fields become its settings.

    The fields turn into keyword-only constructor arguments that are stored unchanged (scikit-learn's
    estimator contract: no logic in ``__init__``; settings are checked in ``fit``). A subclass adds fields
    or re-declares one to change its default. The class docstring gains a numpydoc ``Parameters`` section
    written from the fields' descriptions.
    """
    cls = dataclass(kw_only=True, eq=False, repr=False)(cls)
    from .params import parameters_section  # params reads the fields this decorator has just made
    cls.__doc__ = (cls.__doc__ or "").rstrip() + "\n\n" + parameters_section(cls)
    return cls


class TextClassifier(ClassifierMixin, BaseEstimator):
    """Text classifier: ``fit`` / ``predict_proba`` / ``predict`` / ``save`` / ``load``.

    A family subclasses this with :func:`model_family`, sets :attr:`kind`, and implements :meth:`_fit`,
    :meth:`_predict_proba`, :meth:`_save` and :meth:`_load`. Fitted state lives in attributes ending in
    ``_``; ``label_names_`` and ``classes_`` are set by :meth:`fit`.
    """

    kind: ClassVar[str]

    # -- what a family implements --------------------------------------------------------------------
    def _fit(self, texts: list[str], Y: np.ndarray, val_texts: list[str] | None, val_Y: np.ndarray | None,
             **fit_params: Any) -> None:
        """Learn from ``texts`` and the 0/1 matrix ``Y`` ``(n, n_labels)`` (checked by :meth:`fit`)."""
        raise NotImplementedError

    def _predict_proba(self, texts: list[str]) -> np.ndarray:
        """Probabilities ``(len(texts), n_labels)``, float64 in [0, 1], one sigmoid per label."""
        raise NotImplementedError

    def _save(self, directory: Path) -> None:
        raise NotImplementedError

    @classmethod
    def _load(cls, directory: Path, meta: dict[str, Any]) -> "TextClassifier":
        """A fitted model from ``directory``; ``meta`` holds ``params`` and ``label_names``."""
        raise NotImplementedError

    def _setting_conflicts(self) -> list[str]:
        """Problems between settings that are each valid alone (e.g. a stride longer than the window)."""
        return []

    # -- the estimator interface ---------------------------------------------------------------------
    def fit(self, texts: Sequence[str], y: Any, val_texts: Sequence[str] | None = None, val_y: Any = None, *,
            label_names: Sequence[str] | None = None, **fit_params: Any) -> "TextClassifier":
        """Learn from ``texts`` and their codes ``y``; returns ``self``.

        Parameters
        ----------
        texts : the texts (any sequence of strings)
        y : ``(n, n_labels)`` 0/1 matrix (multi-label), or 1-D: two distinct values (binary), three or more
            (one categorical variable, multi-class)
        val_texts, val_y : validation texts and codes (same shape as ``y``), used by some families for
            early stopping or choosing a regularisation strength — never to tune decision thresholds
            (that is :mod:`lexcoder.thresholds`' job)
        label_names : one name per label (default ``"0"``, ``"1"``, …)
        **fit_params : family-specific (see the family's ``_fit``)

        Raises
        ------
        lexcoder.errors.InvalidSettingError
            If a setting has the wrong type, is out of range or conflicts with another one.
        lexcoder.errors.LexcoderError
            If ``y`` has the wrong shape, values other than 0/1, or a label with only one class.
        """
        from .params import check_settings
        check_settings(self)
        texts, Y, classes = check_training_data(texts, y)
        self.target_type_ = "multilabel" if classes is None else "binary" if len(classes) == 2 else "multiclass"
        val_Y = None
        if val_texts is not None and val_y is not None:
            val_texts = [str(t) for t in val_texts]
            val_Y = label_matrix(val_y, classes, len(val_texts), what="val_y")
        elif val_texts is not None:
            val_texts = None  # texts without codes cannot validate anything
        n_labels = Y.shape[1]
        self.label_names_ = [str(n) for n in label_names] if label_names is not None else \
            [str(j) for j in range(n_labels)]
        if len(self.label_names_) != n_labels:
            raise LexcoderError(f"{len(self.label_names_)} label_names for {n_labels} label column(s) in y.")
        if val_Y is not None and val_Y.shape[1] != n_labels:
            raise LexcoderError(f"val_y has {val_Y.shape[1]} label column(s); y has {n_labels}.")
        self.classes_ = classes if classes is not None else np.arange(n_labels)
        self._fit(texts, Y, val_texts, val_Y, **fit_params)
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities: ``(n, n_labels)`` (multi-label), ``(n, 2)`` (binary), ``(n, k)`` (multi-class)."""
        self._check_fitted()
        P = self._predict_proba([str(t) for t in texts])
        return np.c_[1.0 - P[:, 0], P[:, 0]] if self.target_type_ == "binary" else P

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Codes: a 0/1 matrix at probability 0.5 (multi-label), or the predicted class (binary at 0.5,
        multi-class the most probable).

        lexcoder's pipeline does not use this: it tunes one threshold per label on validation data.
        """
        P = self.predict_proba(texts)
        if self.target_type_ == "binary":
            return self.classes_[(P[:, 1] >= 0.5).astype(int)]
        if self.target_type_ == "multiclass":
            return self.classes_[P.argmax(axis=1)]
        return (P >= 0.5).astype(int)

    @property
    def multiclass(self) -> bool:
        """Fitted on one categorical variable (softmax over its classes) rather than 0/1 labels."""
        return getattr(self, "target_type_", "multilabel") == "multiclass"

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "label_names_")

    def __sklearn_tags__(self):  # scikit-learn >= 1.6 reads these (older releases ignore the method)
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.target_tags.multi_output = True
        if tags.classifier_tags is not None:
            tags.classifier_tags.multi_label = True
        return tags

    # -- persistence -----------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Save into ``directory`` (created if needed; a model saved there before is replaced).

        The files are written into a temporary folder beside ``directory`` that replaces it only once
        complete, so an interrupted save (disk full, killed process) leaves the previous model intact.
        """
        self._check_fitted()
        directory = Path(directory)
        with atomic_dir(directory) as tmp:
            self._save(tmp)
            meta = {"kind": self.kind, "params": self.get_params(deep=False),
                    "label_names": list(self.label_names_)}
            if self.target_type_ != "multilabel":
                meta.update(target_type=self.target_type_, classes=np.asarray(self.classes_).tolist())
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "TextClassifier":
        """Load a classifier saved by :meth:`save` (of this class or, from the base class, of any kind)."""
        directory = Path(directory)
        meta_path = directory / META_FILE
        if not meta_path.is_file():
            raise LexcoderError(f"{directory} holds no saved lexcoder model ({META_FILE} missing).")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        from .registry import get_model_class
        klass = get_model_class(meta["kind"]) if cls is TextClassifier else cls
        model = klass._load(directory, meta)
        model.label_names_ = list(meta["label_names"])
        model.target_type_ = meta.get("target_type", "multilabel")  # models saved before 0.2 are multi-label
        model.classes_ = np.asarray(meta["classes"]) if "classes" in meta else np.arange(len(model.label_names_))
        return model

    @classmethod
    def from_saved_params(cls, params: dict[str, Any]) -> "TextClassifier":
        """An unfitted model with the settings a saved model recorded (settings it does not know are
        dropped with their names logged: a model saved by a newer lexcoder may have more)."""
        from .params import declared_fields
        known = declared_fields(cls)
        unknown = sorted(set(params) - set(known))
        if unknown:
            log.warning("Ignoring saved setting(s) %s that %s does not have.",
                                                unknown, cls.__name__)
        return cls(**{k: v for k, v in params.items() if k in known})

    def _check_fitted(self) -> None:
        if not hasattr(self, "label_names_"):
            raise LexcoderError(f"This {type(self).__name__} is not fitted yet; call fit() first.")


def pd_isna(values: np.ndarray) -> np.ndarray:
    """Missing values (None, NaN, pandas' NA) of a 1-D array of any dtype."""
    import pandas as pd
    return np.asarray(pd.isna(values), dtype=bool)


def check_training_data(texts: Sequence[str], y: Any) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """Validate what ``fit`` receives.

    Returns
    -------
    texts : the texts as a list of ``str``
    Y : ``(n, n_labels)`` int8 0/1 matrix; a binary ``y`` becomes one column (1 = the second class), a
        multi-class ``y`` one column per class (one-hot)
    classes : the classes of a 1-D ``y`` (binary or multi-class), sorted; None for a label matrix

    Raises
    ------
    LexcoderError
        Lengths differ, ``y`` is not 0/1 (or 1-D with at least two values), or a label has one class only.
    """
    texts = [str(t) for t in texts]
    y_arr = np.asarray(y)
    classes = None
    if y_arr.ndim == 1:
        if pd_isna(y_arr).any():
            raise LexcoderError(f"y has {int(pd_isna(y_arr).sum())} missing value(s); every text needs a class.")
        classes = np.unique(y_arr)
        if len(classes) < 2:
            raise LexcoderError(f"y holds one class only ({classes.tolist()}): there is nothing to learn.")
    Y = label_matrix(y_arr, classes, len(texts), what="y")
    pos = Y.sum(axis=0)
    bad = np.flatnonzero((pos == 0) | (pos == len(Y)))
    if len(bad):
        raise LexcoderError(f"Label column(s) {bad.tolist()} have only one class in the training data.")
    return texts, Y, classes


def label_matrix(y: Any, classes: np.ndarray | None, n_texts: int, *, what: str) -> np.ndarray:
    """``y`` as an ``(n_texts, n_labels)`` int8 0/1 matrix (a binary ``y`` against its ``classes``)."""
    y = np.asarray(y)
    if classes is not None:
        if y.ndim != 1 or not np.isin(y, classes).all():
            raise LexcoderError(f"{what} must be 1-D with values among {classes.tolist()}, like y.")
        y = (y == classes[1])[:, None] if len(classes) == 2 else y[:, None] == classes[None, :]
    if y.ndim != 2 or len(y) != n_texts:
        raise LexcoderError(f"Expected {what} of shape (n_texts, n_labels) = ({n_texts}, k); got {y.shape}.")
    if not np.isin(y, (0, 1)).all():
        raise LexcoderError(f"{what} must contain only 0 and 1.")
    return y.astype(np.int8)
