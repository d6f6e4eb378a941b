"""The one classifier interface every model family implements (see docs/ARCHITECTURE.md, the model interface).

A classifier maps texts to an ``(n_texts, n_labels)`` array of probabilities, one independent sigmoid per
label. Model files are safe and portable: JSON, numpy ``.npy`` and safetensors, never pickle.
"""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import LexcoderError
from ..io import atomic_dir

META_FILE = "lexcoder_model.json"


class TextClassifier(ABC):
    """Multi-label text classifier: ``fit`` / ``predict_proba`` / ``save`` / ``load``.

    Subclasses set :attr:`kind`, store their constructor arguments unchanged (scikit-learn style), learn
    attributes ending in ``_`` in :meth:`fit`, and implement :meth:`_save` / :meth:`_load`.
    """

    kind: ClassVar[str]

    def __init__(self, **params: Any) -> None:
        self.params = params

    @abstractmethod
    def fit(self, texts: Sequence[str], Y: np.ndarray, val_texts: Sequence[str] | None = None,
            val_Y: np.ndarray | None = None, *, label_names: Sequence[str] | None = None
            ) -> "TextClassifier":
        """Learn from ``texts`` and the 0/1 matrix ``Y`` of shape ``(n, n_labels)``; returns ``self``.

        ``val_texts``/``val_Y`` may be used for early stopping, never to tune decision thresholds
        (that is :mod:`lexcoder.thresholds`' job).
        """

    @abstractmethod
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities, shape ``(len(texts), n_labels)``, float64 in [0, 1]."""

    @abstractmethod
    def _save(self, directory: Path) -> None: ...

    @classmethod
    @abstractmethod
    def _load(cls, directory: Path, meta: dict[str, Any]) -> "TextClassifier": ...

    def save(self, directory: str | Path) -> Path:
        """Save into ``directory`` (created if needed; a model saved there before is replaced).

        The files are written into a temporary folder beside ``directory`` that replaces it only once
        complete, so an interrupted save (disk full, killed process) leaves the previous model intact.
        """
        self._check_fitted()
        directory = Path(directory)
        with atomic_dir(directory) as tmp:
            self._save(tmp)
            meta = {"kind": self.kind, "params": self.params, "label_names": list(self.label_names_)}
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
        return model

    def _check_fitted(self) -> None:
        if not hasattr(self, "label_names_"):
            raise LexcoderError(f"This {type(self).__name__} is not fitted yet; call fit() first.")


def check_training_data(texts: Sequence[str], Y: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Validate what ``fit`` receives: same length, a 2-D 0/1 matrix, positives and negatives per label."""
    texts = [str(t) for t in texts]
    Y = np.asarray(Y)
    if Y.ndim == 1:
        Y = Y[:, None]
    if Y.ndim != 2 or len(Y) != len(texts):
        raise LexcoderError(f"Expected Y of shape (n_texts, n_labels) = ({len(texts)}, k); got {Y.shape}.")
    if not np.isin(Y, (0, 1)).all():
        raise LexcoderError("Y must contain only 0 and 1.")
    pos = Y.sum(axis=0)
    bad = np.flatnonzero((pos == 0) | (pos == len(Y)))
    if len(bad):
        raise LexcoderError(f"Label column(s) {bad.tolist()} have only one class in the training data.")
    return texts, Y.astype(np.int8)

