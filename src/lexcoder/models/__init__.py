"""Model families behind one interface, chosen by name (``[model] kind = ...``).

Heavy families (encoder, llm) are imported lazily so the TF-IDF path needs only scikit-learn.
"""
from __future__ import annotations

import importlib
from typing import Any

from ..errors import ConfigError, LexcoderError
from .base import TextClassifier

# kind -> "module:Class"; modules import torch/transformers only when used
_REGISTRY = {
    "tfidf": "lexcoder.models.tfidf:TfidfClassifier",
    "encoder": "lexcoder.models.encoder:EncoderClassifier",
    "llm": "lexcoder.models.llm:LLMClassifier",
}


def get_model_class(kind: str) -> type[TextClassifier]:
    """The classifier class registered for ``kind``."""
    if kind not in _REGISTRY:
        raise ConfigError(f"Unknown model kind {kind!r}; choose one of {sorted(_REGISTRY)}.")
    module_name, cls_name = _REGISTRY[kind].split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise LexcoderError(
            f"Model kind {kind!r} needs packages that are not installed ({err.name}). "
            "Install them with `pip install 'lexcoder[models]'` (or `make install`).") from None
    return getattr(module, cls_name)


def build_model(kind: str, name: str | None = None, params: dict[str, Any] | None = None) -> TextClassifier:
    """A new, unfitted classifier of family ``kind`` (``name`` = pretrained model for encoder/llm).

    ``params`` are checked against the family's constructor first (:mod:`lexcoder.models.params`):
    an unknown key, a wrong type or an out-of-range value raises one :class:`ConfigError`.
    """
    from .params import check_model_params
    klass = get_model_class(kind)
    params = check_model_params(kind, name, params, source="[model]")
    if name is not None:
        params["name"] = name
    try:
        return klass(**params)
    except TypeError as err:
        raise ConfigError(f"[model.params] for kind {kind!r}: {err}") from None


def load_model(directory) -> TextClassifier:
    """Load a saved lexcoder classifier, or the model of a run directory, with its saved calibration.

    ``directory`` is either a model folder (``model.save(DIR)``, or ``RUN/models/<kind>``) or a run
    directory. Either way the probabilities are those ``lexcoder predict`` writes: one model, one scale.
    """
    from pathlib import Path

    from ..calibrate import with_saved_calibration
    from ..rundir import RunDir
    run = RunDir(Path(directory))
    if run.config.is_file() and run.is_run():
        return run.load_model()[0]
    return with_saved_calibration(TextClassifier.load(directory), directory)


__all__ = ["TextClassifier", "get_model_class", "build_model", "load_model"]
