"""One multi-output model read as the run's models: the 0/1 labels' model and one model per variable.

With categorical variables next to 0/1 labels, a fine-tuned family trains one body with a sigmoid per label
and a softmax head per variable (:mod:`lexcoder.models.outputs`). Everything downstream — thresholds,
calibration, decision rules, ``predict``, the audit — reads the labels' block as one model and each
variable's block as another. :class:`SharedOutputs` hands out those *views*; they share one forward pass:
the views ask the shared model for the same inputs one after the other (``predict`` codes the labels, then
each variable, of every chunk), and the model runs once per distinct input.
"""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd

from .outputs import MULTIOUTPUT, Output, labels_and_variables


def is_shared(model: Any) -> bool:
    """Whether ``model`` (a fitted family estimator) learnt 0/1 labels and categorical variables together."""
    return getattr(model, "target_type_", None) == MULTIOUTPUT


class SharedOutputs:
    """A fitted multi-output model and its views (:meth:`labels`, :meth:`variable`).

    Parameters
    ----------
    model : a fitted :class:`~lexcoder.models.base.TextClassifier` with a multi-output target
    """

    def __init__(self, model: Any) -> None:
        if not is_shared(model):
            raise ValueError(f"{type(model).__name__} was not fitted on a multi-output target.")
        self.model = model
        self._last: tuple[str, tuple[np.ndarray, dict[str, np.ndarray]]] | None = None

    @property
    def outputs(self) -> list[Output]:
        return list(self.model.outputs_)

    @property
    def label_names(self) -> list[str]:
        return [o.name for o in self.outputs if not o.categorical]

    @property
    def variable_names(self) -> list[str]:
        return [o.name for o in self.outputs if o.categorical]

    def probabilities(self, inputs: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The labels' probabilities of a 1 ``(n, n_labels)`` and each variable's ``(n, k)``, by name.

        The last input's answer is kept (keyed by its content, not its identity), so the views of one
        chunk cost one forward pass.
        """
        key, last = _fingerprint(inputs), self._last  # one read: another thread may replace it meanwhile
        if last is None or last[0] != key:
            last = self._last = (key, labels_and_variables(self.model.predict_proba(inputs), self.outputs))
        return last[1]

    def labels(self) -> "LabelsView":
        """The 0/1 labels' block as a multi-label model."""
        return LabelsView(self)

    def variable(self, name: str) -> "VariableView":
        """One categorical variable's block as a multi-class model."""
        if name not in self.variable_names:
            raise KeyError(f"{name!r} is not a categorical output of this model; it has {self.variable_names}.")
        return VariableView(self, name)


class _View:
    """Attributes a view does not define are the shared model's (``kind``, ``params``, ``history_`` …)."""

    def __init__(self, shared: SharedOutputs) -> None:
        self.shared = shared

    def __getattr__(self, name: str) -> Any:
        if name == "shared":  # not set yet (e.g. while unpickling/copying)
            raise AttributeError(name)
        return getattr(self.shared.model, name)


class LabelsView(_View):
    """The 0/1 labels of a shared model: ``predict_proba`` → ``(n, n_labels)`` probabilities of a 1."""

    @property
    def label_names_(self) -> list[str]:
        return self.shared.label_names

    def predict_proba(self, inputs: Any) -> np.ndarray:
        return self.shared.probabilities(inputs)[0].copy()  # a copy: the caller may change it, the cache not


class VariableView(_View):
    """One categorical variable of a shared model: ``predict_proba`` → ``(n, k)`` over ``classes_``."""

    def __init__(self, shared: SharedOutputs, name: str) -> None:
        super().__init__(shared)
        self.name = name

    @property
    def classes_(self) -> np.ndarray:
        return next(o.classes for o in self.shared.outputs if o.name == self.name)

    def predict_proba(self, inputs: Any) -> np.ndarray:
        return self.shared.probabilities(inputs)[1][self.name].copy()


def _fingerprint(inputs: Any) -> str:
    """A digest of the model inputs' content: texts, or a DataFrame of context inputs."""
    digest = hashlib.blake2b(digest_size=16)
    if isinstance(inputs, pd.DataFrame):
        digest.update(repr(list(inputs.columns)).encode())
        digest.update(pd.util.hash_pandas_object(inputs, index=False).to_numpy().tobytes())
    else:
        for text in inputs:  # length-prefixed: no two lists of texts give the same byte stream
            data = str(text).encode("utf-8", "surrogatepass")
            digest.update(len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()
