"""Fine-tuned encoders (MiniLM, DistilBERT, RoBERTa, ...) as multi-label classifiers.

By default one network with one sigmoid output per label is trained (``problem_type =
"multi_label_classification"``); ``per_label = true`` trains one binary network per label instead, as the
reference workflow did, behind the same interface (for comparison: it costs ``n_labels`` times as much).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .base import check_training_data
from .transformer import TransformerClassifier

log = logging.getLogger(__name__)


class EncoderClassifier(TransformerClassifier):
    """A Hugging Face encoder fine-tuned with one multi-label head (or one model per label).

    Parameters
    ----------
    name : pretrained encoder: ``"minilm"`` (bundled all-MiniLM-L6-v2), a local directory or cached hub id
    per_label : train one binary model per label instead of one multi-label model
    **params : training settings of :class:`~lexcoder.models.transformer.TransformerClassifier`
        (``max_length``, ``epochs``, ``lr``, ``batch_size``, ``pooling``, ``quantize_int8``, ...)
    """

    kind = "encoder"

    def __init__(self, *, name: str = "minilm", per_label: bool = False, **params: Any) -> None:
        super().__init__(name=name, per_label=per_label, **params)

    def _build_model(self, num_labels: int) -> torch.nn.Module:
        from transformers import AutoModelForSequenceClassification
        from transformers.utils import logging as hf_logging
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # "newly initialized classifier weights" is expected here
        try:
            return AutoModelForSequenceClassification.from_pretrained(
                self._source(), num_labels=num_labels, problem_type="multi_label_classification",
                local_files_only=True)
        finally:
            hf_logging.set_verbosity(verbosity)

    # -- one binary model per label ------------------------------------------------------------------
    def _label_model(self, j: int) -> "EncoderClassifier":
        sub = EncoderClassifier(**{**self.params, "per_label": False})
        if self.checkpoint_dir is not None:
            sub.checkpoint_dir = Path(self.checkpoint_dir) / f"label{j}"
        return sub

    def fit(self, texts, Y, val_texts=None, val_Y=None, *, label_names=None) -> "EncoderClassifier":
        """Fine-tune (see :meth:`TransformerClassifier.fit`); with ``per_label``, one model per label."""
        if not self.params["per_label"]:
            return super().fit(texts, Y, val_texts, val_Y, label_names=label_names)
        texts, Y = check_training_data(texts, Y)
        names = list(label_names) if label_names is not None else [str(j) for j in range(Y.shape[1])]
        vY = None if val_Y is None else np.asarray(val_Y)
        self.label_models_ = []
        for j, name in enumerate(names):
            log.info("per-label mode: training the model for %s (%d of %d)", name, j + 1, len(names))
            sub = self._label_model(j).fit(texts, Y[:, [j]], val_texts, None if vY is None else vY[:, [j]],
                                           label_names=[name])
            self.label_models_.append(sub)
        self.label_names_ = names
        self.history_ = [m.history_ for m in self.label_models_]
        return self

    def predict_proba(self, texts) -> np.ndarray:
        """Probabilities ``(len(texts), n_labels)``."""
        if not self.params["per_label"]:
            return super().predict_proba(texts)
        self._check_fitted()
        return np.hstack([m.predict_proba(texts) for m in self.label_models_])

    def _save(self, directory: Path) -> None:
        if not self.params["per_label"]:
            return super()._save(directory)
        for j, m in enumerate(self.label_models_):
            m.save(directory / f"label{j}")

    @classmethod
    def _load(cls, directory: Path, meta: dict[str, Any]) -> "EncoderClassifier":
        if not meta["params"].get("per_label"):
            return super()._load(directory, meta)
        model = cls(**meta["params"])
        model.label_models_ = [EncoderClassifier.load(directory / f"label{j}")
                               for j in range(len(meta["label_names"]))]
        model.history_ = [m.history_ for m in model.label_models_]
        return model
