"""The one classifier interface every model family implements (see docs/ARCHITECTURE.md, the model interface).

A model family is a scikit-learn estimator over texts. Its settings are the annotated fields of a
:func:`model_family` class (a dataclass): each becomes a keyword-only constructor argument stored
unchanged as an attribute, so ``get_params``/``set_params``, :func:`sklearn.base.clone`,
``cross_val_predict``, ``TunedThresholdClassifierCV`` or cleanlab's ``CleanLearning`` work on a lexcoder
model. The annotation of a field is its type and range (``Annotated[int, Field(ge=1, description=...)]``):
from it lexcoder validates settings (:mod:`lexcoder.models.params`), writes the commented example config
and the README's parameter tables, so the class is the one source of truth.

Four target shapes, as in scikit-learn (``target_type_`` says which one a model was fitted on):

- ``"multilabel"`` (lexcoder's 0/1 labels): ``y`` is an ``(n, n_labels)`` 0/1 matrix; ``predict_proba``
  returns ``(n, n_labels)`` probabilities, one independent sigmoid per label; ``classes_ = arange(n_labels)``;
- ``"binary"``: ``y`` is 1-D with two distinct values; ``predict_proba`` returns ``(n, 2)`` and ``classes_``
  holds the two values (what ``TunedThresholdClassifierCV`` and ``CleanLearning`` expect);
- ``"multiclass"`` (an exclusive categorical variable): ``y`` is 1-D with three or more values;
  ``predict_proba`` returns ``(n, k)`` probabilities that sum to 1 (a softmax), ``classes_`` the k values
  in sorted order, ``predict`` the most probable one;
- ``"multiclass-multioutput"`` (0/1 labels and categorical variables together, one model for all): ``y`` is
  ``(n, m)``, a DataFrame or an array, each column a 0/1 label or a categorical variable (``fit``'s
  ``categorical`` names the latter); ``predict_proba`` returns a list of ``(n, k_j)`` arrays, one per output
  (a label's ``(n, 2)``), as scikit-learn's ``MultiOutputClassifier``; ``classes_`` is the list of each
  output's classes, ``label_names_`` the outputs' names, ``predict`` an ``(n, m)`` object array.

A family sees a 0/1 matrix in every case and predicts one of the same width: ``self.outputs_``
(:mod:`lexcoder.models.outputs`) says which columns belong to which output, and ``_link_groups()`` which
blocks take sigmoids (the 0/1 labels) and which a softmax (each categorical variable; the one variable of
``"multiclass"``).

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
from .inputs import check_same_inputs, input_columns, model_texts
from .outputs import MULTIOUTPUT, LinkGroup, categorical_names, check_multioutput, decode, encode, \
    is_multioutput, link_groups, n_columns, outputs_from_meta, predict_classes, single_target_layout, \
    split_probabilities

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
            label_names: Sequence[str] | None = None, categorical: Sequence[str | int] | None = None,
            **fit_params: Any) -> "TextClassifier":
        """Learn from ``texts`` and their codes ``y``; returns ``self``.

        Parameters
        ----------
        texts : the texts (any sequence of strings), or a DataFrame of context inputs (a ``text`` column with
            the texts' neighbours, position, metadata: :mod:`lexcoder.models.inputs`); ``predict_proba``
            then needs the same columns
        y : ``(n, n_labels)`` 0/1 matrix (multi-label), or 1-D: two distinct values (binary), three or more
            (one categorical variable, multi-class), or ``(n, m)`` DataFrame/array of 0/1 labels and
            categorical variables (multi-output, see :mod:`lexcoder.models.outputs`)
        val_texts, val_y : validation texts and codes (same shape as ``y``), used by some families for
            early stopping or choosing a regularisation strength — never to tune decision thresholds
            (that is :mod:`lexcoder.thresholds`' job)
        label_names : one name per label or output (default: a DataFrame's column names, else ``"0"``, ``"1"``, …)
        categorical : names (or positions) of the categorical columns of a 2-D ``y``; giving it (even empty)
            makes ``y`` a multi-output target, and the other columns must be 0/1 labels. Without it a 2-D ``y``
            whose columns are all 0/1 is multi-label, and one with other values multi-output (its 0/1
            columns labels, the others categorical: name a categorical variable coded 0/1 here)
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
        if is_multioutput(y, categorical):
            return self._fit_multioutput(texts, y, val_texts, val_y, label_names, categorical, **fit_params)
        texts, Y, classes = check_training_data(texts, y)
        self.target_type_ = "multilabel" if classes is None else "binary" if len(classes) == 2 else "multiclass"
        val_texts, val_Y = _validation(texts, val_texts, val_y, lambda v, n: label_matrix(v, classes, n, what="val_y"))
        n_labels = Y.shape[1]
        self.label_names_ = [str(n) for n in label_names] if label_names is not None else \
            [str(j) for j in range(n_labels)]
        if len(self.label_names_) != n_labels:
            raise LexcoderError(f"{len(self.label_names_)} label_names for {n_labels} label column(s) in y.")
        if val_Y is not None and val_Y.shape[1] != n_labels:
            raise LexcoderError(f"val_y has {val_Y.shape[1]} label column(s); y has {n_labels}.")
        self.classes_ = classes if classes is not None else np.arange(n_labels)
        self.outputs_ = single_target_layout(self.target_type_, self.classes_, self.label_names_)
        self.input_columns_ = input_columns(texts)  # None: plain texts; else the context inputs' columns
        self._fit(texts, Y, val_texts, val_Y, **fit_params)
        return self

    def _fit_multioutput(self, texts, y, val_texts, val_y, label_names, categorical, **fit_params
                         ) -> "TextClassifier":
        """:meth:`fit` for a multi-output ``y``: the family learns the matrix of :func:`outputs.layout`."""
        texts = model_texts(texts)
        outputs, Y = check_multioutput(y, len(texts), names=label_names, categorical=categorical)
        val_texts, val_Y = _validation(texts, val_texts, val_y, lambda v, n: encode(v, outputs, n, what="val_y"))
        self.target_type_, self.outputs_ = MULTIOUTPUT, outputs
        self.label_names_ = [o.name for o in outputs]
        self.classes_ = [o.classes for o in outputs]
        self.input_columns_ = input_columns(texts)
        self._fit(texts, Y, val_texts, val_Y, **fit_params)
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray | list[np.ndarray]:
        """Probabilities: ``(n, n_labels)`` (multi-label), ``(n, 2)`` (binary), ``(n, k)`` (multi-class), or
        for a multi-output model a list with one ``(n, k_j)`` array per output, columns in the order of
        ``classes_[j]`` (a 0/1 label: ``(n, 2)``), as scikit-learn's ``MultiOutputClassifier``."""
        self._check_fitted()
        texts = model_texts(texts)
        check_same_inputs(getattr(self, "input_columns_", None), texts)
        P = self._predict_proba(texts)
        if self.target_type_ == MULTIOUTPUT:
            return split_probabilities(P, self.outputs_)
        return np.c_[1.0 - P[:, 0], P[:, 0]] if self.target_type_ == "binary" else P

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Codes: a 0/1 matrix at probability 0.5 (multi-label), or the predicted class (binary at 0.5,
        multi-class the most probable), or for a multi-output model an ``(n, m)`` object array of both.

        lexcoder's pipeline does not use this: it tunes one threshold per label on validation data.
        """
        P = self.predict_proba(texts)
        if self.target_type_ == MULTIOUTPUT:
            return predict_classes(P, self.outputs_)
        if self.target_type_ == "binary":
            return self.classes_[(P[:, 1] >= 0.5).astype(int)]
        if self.target_type_ == "multiclass":
            return self.classes_[P.argmax(axis=1)]
        return (P >= 0.5).astype(int)

    @property
    def multiclass(self) -> bool:
        """Fitted on one categorical variable (softmax over its classes) rather than 0/1 labels."""
        return getattr(self, "target_type_", "multilabel") == "multiclass"

    def _link_groups(self) -> list[LinkGroup]:
        """The blocks of the family's matrix and their links (the labels' sigmoids, each variable's softmax)."""
        return link_groups(self.outputs_)

    def _n_columns(self) -> int:
        """Width of the family's matrix (labels plus every variable's classes)."""
        return n_columns(self.outputs_)

    def _target_of(self, Y: np.ndarray) -> tuple[Any, dict[str, Any]]:
        """``y`` and the ``fit`` keywords (besides ``label_names``) that give back the family's matrix ``Y``
        (to fit a helper model, e.g. a TF-IDF blend or a part of the outputs, on the same target)."""
        if self.target_type_ == MULTIOUTPUT:
            return decode(Y, self.outputs_), {"categorical": categorical_names(self.outputs_)}
        if self.target_type_ == "binary":
            return self.classes_[Y[:, 0].astype(int)], {}
        if self.target_type_ == "multiclass":
            return self.classes_[Y.argmax(axis=1)], {}
        return Y, {}

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
            if getattr(self, "input_columns_", None) is not None:
                meta["input_columns"] = list(self.input_columns_)
            if self.target_type_ == MULTIOUTPUT:
                meta.update(target_type=self.target_type_, outputs=[o.to_json() for o in self.outputs_])
            elif self.target_type_ != "multilabel":
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
        model.input_columns_ = meta.get("input_columns")
        model.target_type_ = meta.get("target_type", "multilabel")  # models saved before 0.2 are multi-label
        model.classes_ = np.asarray(meta["classes"]) if "classes" in meta else np.arange(len(model.label_names_))
        model.outputs_ = outputs_from_meta(meta)
        if model.target_type_ == MULTIOUTPUT:
            model.classes_ = [o.classes for o in model.outputs_]
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
    texts = model_texts(texts)
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


def _validation(texts: list[str], val_texts: Any, val_y: Any, encode_y) -> tuple[list[str] | None, Any]:
    """Validation inputs, checked like the training ``texts``, and their codes as the family's matrix
    (``encode_y(val_y, n)``); (None, None) without codes: texts without codes cannot validate anything."""
    if val_texts is None or val_y is None:
        return None, None
    val_texts = model_texts(val_texts)
    check_same_inputs(input_columns(texts), val_texts, what="val_texts")
    return val_texts, encode_y(val_y, len(val_texts))


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
