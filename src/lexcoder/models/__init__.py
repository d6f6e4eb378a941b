"""Model families behind one interface, chosen by name (``[model] kind = ...``).

Heavy families (encoder, llm) are imported lazily so the TF-IDF path needs only scikit-learn.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..calibrate import with_saved_calibration
from ..errors import ConfigError
from .base import TextClassifier
from .params import check_model_params
from .registry import get_model_class


def build_model(kind: str, name: str | None = None, params: dict[str, Any] | None = None) -> TextClassifier:
    """A new, unfitted classifier of family ``kind`` (``name`` = pretrained model for encoder/llm).

    ``params`` are checked against the family's constructor first (:mod:`lexcoder.models.params`):
    an unknown key, a wrong type or an out-of-range value raises one :class:`ConfigError`.
    """
    klass = get_model_class(kind)
    params = check_model_params(kind, name, params, source="[model]")
    if name is not None:
        params["name"] = name
    try:
        return klass(**params)
    except TypeError as err:
        raise ConfigError(f"[model.params] for kind {kind!r}: {err}") from None


def load_model(directory: str | Path) -> TextClassifier:
    """Load a saved model folder (``model.save(DIR)`` or ``RUN/models/<kind>``) with its saved calibration.

    :func:`lexcoder.load_model` also accepts a run directory.
    """
    return with_saved_calibration(TextClassifier.load(directory), directory)


__all__ = ["TextClassifier", "get_model_class", "build_model", "load_model"]
