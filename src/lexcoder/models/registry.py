"""The model families by name (``[model] kind = ...``): each kind's class, imported only when used.

Heavy families (encoder, llm) import torch/transformers, so the TF-IDF path needs only scikit-learn.
"""
from __future__ import annotations

import importlib

from ..errors import ConfigError, LexcoderError

# kind -> "module:Class"
REGISTRY = {
    "tfidf": "lexcoder.models.tfidf:TfidfClassifier",
    "encoder": "lexcoder.models.encoder:EncoderClassifier",
    "llm": "lexcoder.models.llm:LLMClassifier",
}


def get_model_class(kind: str) -> type:
    """The classifier class registered for ``kind`` (a :class:`~lexcoder.models.base.TextClassifier`)."""
    if kind not in REGISTRY:
        raise ConfigError(f"Unknown model kind {kind!r}; choose one of {sorted(REGISTRY)}.")
    module_name, cls_name = REGISTRY[kind].split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise LexcoderError(
            f"Model kind {kind!r} needs packages that are not installed ({err.name}). "
            "Install them with `pip install 'lexcoder[models]'` (or `make install`).") from None
    return getattr(module, cls_name)
