"""Post-hoc calibration of predicted probabilities (Platt scaling or isotonic regression).

Fitted per label on the *validation* split (``[calibration] method``); the pipeline then tunes thresholds
on the calibrated validation probabilities, saves the calibrator as ``calibration.json`` next to the model
(plain JSON, no pickle) and ``predict`` applies it. Calibration changes what a probability means, not the
ranking of texts (both maps are monotone).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit, logit
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from .errors import LexcoderError

log = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"
METHODS = ("none", "platt", "isotonic")
_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    """The logit of ``p`` kept finite: probabilities of exactly 0 or 1 are moved ``_EPS`` inwards."""
    return logit(np.clip(np.asarray(p, dtype=float), _EPS, 1 - _EPS))


def _fit_platt(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    lr = LogisticRegression(C=1e4).fit(_logit(p)[:, None], y)
    return {"a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])}


def _fit_isotonic(y: np.ndarray, p: np.ndarray) -> dict[str, list[float]]:
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
    return {"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}


def _apply(method: str, params: dict[str, Any] | None, p: np.ndarray) -> np.ndarray:
    if params is None:
        return np.asarray(p, dtype=float)
    if method == "platt":
        return expit(params["a"] * _logit(p) + params["b"])
    return np.interp(p, params["x"], params["y"])


class Calibrator:
    """One monotone map per label from raw to calibrated probabilities.

    Parameters
    ----------
    method : "platt" (logistic regression on the logit of the probability) or "isotonic"
    """

    def __init__(self, method: str = "platt") -> None:
        self.method = method

    def fit(self, Y: np.ndarray, P: np.ndarray, *, label_names: Sequence[str] | None = None) -> "Calibrator":
        """Fit on validation labels ``Y`` and probabilities ``P``, both (n, n_labels); returns ``self``.

        A label with only one class in ``Y`` keeps its raw probabilities (with a warning).
        """
        if self.method not in ("platt", "isotonic"):
            raise LexcoderError(f"Unknown calibration method {self.method!r}; use one of {METHODS}.")
        Y, P = np.asarray(Y).astype(int), np.asarray(P, dtype=float)
        fit = _fit_platt if self.method == "platt" else _fit_isotonic
        self.params_: list[dict[str, Any] | None] = []
        for j in range(P.shape[1]):
            if 0 < Y[:, j].sum() < len(Y):
                self.params_.append(fit(Y[:, j], P[:, j]))
            else:
                name = label_names[j] if label_names else j
                log.warning("Label %s has one class only in the validation split: not calibrated.", name)
                self.params_.append(None)
        return self

    def transform(self, P: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, same shape (n, n_labels) as ``P``."""
        if not hasattr(self, "params_"):
            raise LexcoderError("This Calibrator is not fitted yet; call fit() first.")
        P = np.asarray(P, dtype=float)
        return np.column_stack([_apply(self.method, prm, P[:, j]) for j, prm in enumerate(self.params_)])

    def save(self, path: str | Path) -> Path:
        """Write the calibrator as JSON."""
        path = Path(path)
        path.write_text(json.dumps({"method": self.method, "params": self.params_}), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Calibrator":
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        cal = cls(raw["method"])
        cal.params_ = raw["params"]
        return cal


class CalibratedModel:
    """A fitted classifier whose ``predict_proba`` passes through a :class:`Calibrator`.

    Everything else (``label_names_``, ``params`` …) is the wrapped model's; ``save`` writes the model and
    ``calibration.json`` into the same directory.
    """

    def __init__(self, model: Any, calibrator: Calibrator) -> None:
        self.model = model
        self.calibrator = calibrator

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Calibrated probabilities, shape (len(texts), n_labels)."""
        return self.calibrator.transform(self.model.predict_proba(texts))

    def save(self, directory: str | Path) -> Path:
        """Save the model and ``calibration.json`` into ``directory`` together (atomically)."""
        from .io import atomic_dir
        with atomic_dir(directory) as tmp:
            self.model.save(tmp)
            self.calibrator.save(tmp / CALIBRATION_FILE)
        return Path(directory)

    def __getattr__(self, name: str) -> Any:
        if name in ("model", "calibrator"):  # not set yet (e.g. while unpickling/copying)
            raise AttributeError(name)
        return getattr(self.model, name)


def calibrate_on_validation(model: Any, Y_val: np.ndarray, P_val: np.ndarray, *, method: str = "none",
                            label_names: Sequence[str] | None = None) -> tuple[Any, np.ndarray]:
    """Fit a calibrator on validation and wrap ``model`` with it.

    Parameters
    ----------
    model : fitted classifier
    Y_val, P_val : (n_val, n_labels) validation labels and the model's raw probabilities
    method : "none" (return ``model`` and ``P_val`` unchanged), "platt" or "isotonic"

    Returns
    -------
    (model, P_val) : the calibrated model and calibrated validation probabilities
    """
    if method == "none":
        return model, P_val
    calibrator = Calibrator(method).fit(Y_val, P_val, label_names=label_names)
    return CalibratedModel(model, calibrator), calibrator.transform(P_val)


def with_saved_calibration(model: Any, directory: str | Path) -> Any:
    """``model`` wrapped with the calibrator saved in ``directory``, if there is one."""
    path = Path(directory) / CALIBRATION_FILE
    return CalibratedModel(model, Calibrator.load(path)) if path.is_file() else model
