"""Decisions for a categorical variable: temperature scaling and an optional per-class bias, both fitted on
the validation split (``[calibration] classes``, ``[thresholds] class_bias``).

A model of one categorical variable gives class probabilities ``P`` (n, k) (a softmax). Two post-hoc steps,
fitted once per partition on the validation rows of a model that never saw them, turn them into what a run
writes:

- **temperature scaling** (Guo et al. 2017, "On calibration of modern neural networks"): one number
  ``T > 0``; the written probabilities are ``softmax(log P / T)``. ``T > 1`` softens over-confident
  probabilities, ``T < 1`` sharpens timid ones. It never changes which class is the most probable, only how
  far a probability can be read as one;
- **per-class bias** (optional): one additive offset ``b_c`` per class on the log of those probabilities;
  the decision is ``argmax_c (log p_c + b_c)``, tuned for macro-F1. A positive ``b_c`` makes class ``c``
  chosen more often: it trades the frequent classes' precision for the rare classes' recall. Without it the
  decision is the most probable class.

Plain functions over arrays (:func:`fit_temperature`, :func:`scale_probabilities`, :func:`fit_class_bias`,
:func:`biased_argmax`) do the work; :class:`ClassDecision` holds a fitted rule and saves it as JSON;
:class:`DecidedModel` puts it behind a model's ``predict_proba``.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

from .errors import LexcoderError
from .evaluate import SMALL_SUPPORT
from .io import write_json
from .stats.bootstrap import class_count_metrics

log = logging.getLogger(__name__)

TEMPERATURE_BOUNDS = (0.05, 20.0)
"""The range a fitted temperature is kept in: beyond it a validation split has too few errors (or too few
right answers) to say anything, and a probability would be pushed to 0 or 1."""

BIAS_GRID = np.round(np.arange(-3.0, 3.0001, 0.25), 2)
"""The values one class's bias may take (log scale: +1 multiplies a class's odds by e ≈ 2.7)."""

BIAS_PASSES = 3
"""Rounds of coordinate ascent over the classes (it usually settles after two)."""

MIN_CLASS_ROWS = SMALL_SUPPORT
"""A class needs this many validation rows for its bias to be tuned; below, its bias stays 0 (the same
limit below which a class's figures are flagged ``small_support``)."""

_TINY = 1e-300  # probabilities are clipped here before the log: an exact 0 must not become -inf
_TIE = 1e-12  # macro-F1 values closer than this are equal (float noise of equal confusion counts)
CALIBRATIONS = ("none", "temperature")
BIASES = ("none", "macro_f1")


def log_probabilities(P: np.ndarray) -> np.ndarray:
    """``log P`` (n, k), finite: probabilities of exactly 0 are clipped to a tiny positive number first."""
    return np.log(np.clip(np.asarray(P, dtype=float), _TINY, None))


def scale_probabilities(P: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature-scaled probabilities ``softmax(log P / T)``, shape (n, k) as ``P``; rows sum to 1.

    ``T = 1`` returns the probabilities unchanged (up to rounding); the order of the classes within a row is
    kept for any ``T > 0``.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive; got {temperature}.")
    return softmax(log_probabilities(P) / temperature, axis=1)


def temperature_log_loss(y: np.ndarray, P: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of the class indices ``y`` (n,) under ``softmax(log P / T)`` (n, k)."""
    logp = log_softmax(log_probabilities(P) / temperature, axis=1)
    return float(-np.mean(logp[np.arange(len(y)), y]))


def fit_temperature(y: np.ndarray, P: np.ndarray, *, bounds: tuple[float, float] = TEMPERATURE_BOUNDS) -> float:
    """The temperature ``T`` that minimises the validation log-loss of ``softmax(log P / T)``.

    The log-loss is convex in ``1 / T`` (a log-sum-exp of lines minus a line), so a bounded scalar search
    finds its minimum within ``bounds``. ``T = 1`` is kept unless another temperature has a strictly lower
    log-loss. Classes absent from ``y`` are fine: the loss only reads the probability of each row's class.

    Parameters
    ----------
    y : (n,) human codes as class indices 0..k-1
    P : (n, k) the model's class probabilities on the same rows
    bounds : smallest and largest temperature allowed

    Returns
    -------
    T, a float in ``bounds`` (1.0 for no rows)
    """
    y, P = _check(y, P)
    if len(y) == 0:
        return 1.0
    low, high = bounds
    # searched over the inverse temperature, in which the loss is convex
    found = minimize_scalar(lambda beta: temperature_log_loss(y, P, 1.0 / beta), bounds=(1.0 / high, 1.0 / low),
                            method="bounded", options={"xatol": 1e-5})
    temperature = float(1.0 / found.x)
    if not temperature_log_loss(y, P, temperature) < temperature_log_loss(y, P, 1.0):
        return 1.0
    return temperature


def biased_argmax(P: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """The decisions ``argmax_c (log P[:, c] + bias[c])`` as class indices (n,); ``bias=None``: the argmax."""
    P = np.asarray(P, dtype=float)
    if bias is None:
        return P.argmax(axis=1)
    return (log_probabilities(P) + np.asarray(bias, dtype=float)).argmax(axis=1)


def macro_f1_of(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    """Macro-F1 over all ``k`` classes of class indices ``pred`` against ``y`` (0 for a class neither uses).

    The same figure as scikit-learn's ``f1_score(..., labels=range(k), average="macro", zero_division=0)``,
    from the one-vs-rest confusion counts (fast enough to be called for every step of a search).
    """
    n = len(y)
    cm = np.bincount(np.asarray(y) * k + np.asarray(pred), minlength=k * k).reshape(k, k)
    tp = np.diag(cm).astype(float)
    fp, fn = cm.sum(axis=0) - tp, cm.sum(axis=1) - tp
    counts = np.stack([tp, fp, fn, n - tp - fp - fn], axis=-1)
    return float(class_count_metrics(counts)["macro_f1"])


def fit_class_bias(y: np.ndarray, P: np.ndarray, *, grid: Sequence[float] = tuple(BIAS_GRID),
                   passes: int = BIAS_PASSES, min_rows: int = MIN_CLASS_ROWS) -> tuple[np.ndarray, list[int]]:
    """Per-class biases on ``log P`` that maximise macro-F1 on the rows ``y``, by coordinate ascent.

    Starting from no bias, each pass visits the classes in turn and sets the class's bias to the value of
    ``grid`` with the highest macro-F1, the others held fixed; among equally good values the one closest to 0
    wins, so a bias that does not help stays 0. Each step can only raise (or keep) the macro-F1, so the
    result is never below the plain argmax's on these rows.

    These rows are the validation split: the biases are fitted to them, so the validation macro-F1 with them
    is in-sample and flatters; only another split (the test split, the out-of-fold rows) says what they are
    worth. On a small validation split they can overfit: a class with fewer than ``min_rows`` rows here keeps
    bias 0 (its F1 would hang on one or two texts).

    Parameters
    ----------
    y : (n,) human codes as class indices 0..k-1
    P : (n, k) class probabilities (after temperature scaling, if any)
    grid : the values a bias may take; must include 0
    passes : rounds over the classes (stops early when a round changes nothing)
    min_rows : fewest rows of a class in ``y`` for its bias to be tuned

    Returns
    -------
    bias : (k,) float array
    not_tuned : indices of the classes kept at 0 for having fewer than ``min_rows`` rows
    """
    y, P = _check(y, P)
    grid = np.asarray(grid, dtype=float)
    if not np.isclose(grid, 0).any():
        raise ValueError("The bias grid must include 0 (no bias).")
    k = P.shape[1]
    counts = np.bincount(y, minlength=k)
    tunable = [c for c in range(k) if counts[c] >= min_rows]
    bias = np.zeros(k)
    if len(tunable) == 0:
        return bias, list(range(k))
    logp = log_probabilities(P)
    nearest_zero = np.argsort(np.abs(grid), kind="stable")  # ties go to the value closest to 0
    for _ in range(passes):
        changed = False
        for c in tunable:
            trial = bias.copy()
            scores = np.empty(len(grid))
            for g, value in enumerate(grid):
                trial[c] = value
                scores[g] = macro_f1_of(y, (logp + trial).argmax(axis=1), k)
            top = scores.max()
            choice = next(g for g in nearest_zero if scores[g] >= top - _TIE)
            changed |= grid[choice] != bias[c]
            bias[c] = grid[choice]
        if not changed:
            break
    return bias, [c for c in range(k) if c not in tunable]


class ClassDecision:
    """How a categorical variable's model turns its softmax into written probabilities and a class.

    ``transform(P)`` = ``softmax(log P / temperature_)``; ``decide(transform(P))`` = ``argmax(log p + bias_)``
    (the plain argmax without a bias). Fitted on the validation rows of the partition that trained the model.

    Parameters
    ----------
    calibration : "temperature" (fit ``T`` on validation) or "none" (``T = 1``)
    class_bias : "macro_f1" (tune a per-class bias on validation for macro-F1, see :func:`fit_class_bias`)
        or "none" (the most probable class)
    min_rows : fewest validation rows of a class for its bias to be tuned
    name : the variable's name, for log messages
    """

    def __init__(self, *, calibration: str = "temperature", class_bias: str = "none",
                 min_rows: int = MIN_CLASS_ROWS, name: str = "") -> None:
        self.calibration = calibration
        self.class_bias = class_bias
        self.min_rows = min_rows
        self.name = name

    def fit(self, y: np.ndarray, P: np.ndarray, classes: Sequence[Any]) -> "ClassDecision":
        """Fit on validation class indices ``y`` (n,) and the model's probabilities ``P`` (n, k); ``classes``
        are the k class names in ``P``'s column order. Returns ``self``.

        Without validation rows the rule stays the plain softmax and argmax (with a warning).
        """
        if self.calibration not in CALIBRATIONS or self.class_bias not in BIASES:
            raise LexcoderError(f"Unknown decision setting: calibration={self.calibration!r} (use one of "
                                f"{CALIBRATIONS}), class_bias={self.class_bias!r} (use one of {BIASES}).")
        y, P = _check(y, P)
        self.classes_ = [str(c) for c in classes]
        if P.shape[1] != len(self.classes_):
            raise ValueError(f"P has {P.shape[1]} columns for {len(self.classes_)} classes.")
        self.n_rows_ = int(len(y))
        self.rows_per_class_ = np.bincount(y, minlength=len(self.classes_)).astype(int).tolist()
        self.temperature_, self.bias_, self.not_tuned_, self.validation_ = 1.0, None, [], {}
        if len(y) == 0:
            if self.calibration != "none" or self.class_bias != "none":
                log.warning("%s: no validation rows, so no temperature or class bias is fitted; the model's "
                            "softmax and its most probable class are used.", self._who())
            return self
        if self.calibration == "temperature":
            self.temperature_ = fit_temperature(y, P)
        scaled = scale_probabilities(P, self.temperature_)
        if self.class_bias == "macro_f1":
            self._fit_bias(y, scaled)
        self.validation_ = {
            "log_loss": {"unscaled": temperature_log_loss(y, P, 1.0),
                         "scaled": temperature_log_loss(y, P, self.temperature_)},
            "macro_f1": {"argmax": macro_f1_of(y, scaled.argmax(axis=1), P.shape[1]),
                         "decided": macro_f1_of(y, self.decide(scaled), P.shape[1])}}
        return self

    def _fit_bias(self, y: np.ndarray, scaled: np.ndarray) -> None:
        bias, not_tuned = fit_class_bias(y, scaled, min_rows=self.min_rows)
        self.not_tuned_ = [self.classes_[c] for c in not_tuned]
        if len(not_tuned) == len(self.classes_):
            log.warning("%s: no class has %d validation rows; no class bias is tuned (the most probable class "
                        "is chosen).", self._who(), self.min_rows)
            return
        if not_tuned:
            log.warning("%s: class(es) %s have fewer than %d validation rows; their bias stays 0 (tuning it "
                        "would fit one or two texts).", self._who(), self.not_tuned_, self.min_rows)
        self.bias_ = bias

    def transform(self, P: np.ndarray) -> np.ndarray:
        """The probabilities to write: ``softmax(log P / T)``, shape (n, k) as the model's ``P``."""
        self._check_fitted(P)
        P = np.asarray(P, dtype=float)
        return P if self.temperature_ == 1.0 else scale_probabilities(P, self.temperature_)

    def decide(self, P: np.ndarray) -> np.ndarray:
        """Class indices (n,) chosen from *transformed* probabilities ``P`` (n, k): ``argmax(log P + bias)``."""
        self._check_fitted(P)
        return biased_argmax(P, self.bias_)

    # -- persistence -------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The rule as plain JSON values (the format of :meth:`save`)."""
        self._check_fitted()
        return {"classes": self.classes_, "calibration": self.calibration, "temperature": self.temperature_,
                "class_bias": self.class_bias,
                "bias": None if self.bias_ is None else dict(zip(self.classes_, map(float, self.bias_))),
                "bias_not_tuned": self.not_tuned_, "min_rows": self.min_rows, "tuned_on": "val",
                "n_rows": self.n_rows_, "rows_per_class": dict(zip(self.classes_, self.rows_per_class_)),
                "validation": self.validation_}

    def save(self, path: str | Path) -> Path:
        """Write the rule as JSON to ``path`` (atomically)."""
        return write_json(self.to_dict(), path)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], *, source: str = "decision") -> "ClassDecision":
        """A fitted rule from :meth:`to_dict`'s output; a malformed one raises :class:`LexcoderError`."""
        try:
            rule = cls(calibration=raw["calibration"], class_bias=raw["class_bias"], min_rows=int(raw["min_rows"]))
            rule.classes_ = [str(c) for c in raw["classes"]]
            rule.temperature_ = float(raw["temperature"])
            bias = raw["bias"]
            rule.bias_ = None if bias is None else np.array([float(bias[c]) for c in rule.classes_])
            rule.not_tuned_, rule.n_rows_ = list(raw.get("bias_not_tuned", [])), int(raw["n_rows"])
            rule.rows_per_class_ = [int(raw.get("rows_per_class", {}).get(c, 0)) for c in rule.classes_]
            rule.validation_ = raw.get("validation", {})
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise LexcoderError(f"{source} is not a lexcoder class decision ({type(err).__name__}: {err}). "
                                "Rerun the training into a new folder.") from None
        if not rule.temperature_ > 0:
            raise LexcoderError(f"{source}: temperature must be positive, got {rule.temperature_}. Rerun the "
                                "training into a new folder.")
        return rule

    @classmethod
    def load(cls, path: str | Path) -> "ClassDecision":
        """A rule saved by :meth:`save`; an unreadable or malformed file raises :class:`LexcoderError`."""
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise LexcoderError(f"{path} cannot be read ({type(err).__name__}: {err}). Rerun the training into "
                                "a new folder.") from None
        return cls.from_dict(raw, source=str(path))

    def summary(self) -> dict[str, Any]:
        """The keys a metrics block carries: ``temperature`` and ``class_bias`` (``{class: bias}`` or None)."""
        self._check_fitted()
        bias = None if self.bias_ is None else dict(zip(self.classes_, map(float, self.bias_)))
        return {"temperature": float(self.temperature_), "class_bias": bias}

    def _check_fitted(self, P: np.ndarray | None = None) -> None:
        if not hasattr(self, "classes_"):
            raise LexcoderError("This ClassDecision is not fitted yet; call fit() first.")
        if P is not None and np.shape(P)[1:] != (len(self.classes_),):
            raise ValueError(f"Expected probabilities of shape (n, {len(self.classes_)}); got {np.shape(P)}.")

    def _who(self) -> str:
        return f"Variable {self.name!r}" if self.name else "Class decision"


class DecidedModel:
    """A fitted model of one categorical variable whose ``predict_proba`` passes through its
    :class:`ClassDecision` (temperature), and whose ``predict`` makes the rule's decision (bias).

    Everything else (``classes_``, ``params`` …) is the wrapped model's.
    """

    def __init__(self, model: Any, decision: ClassDecision) -> None:
        self.model = model
        self.decision = decision

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """The written (temperature-scaled) probabilities, shape (len(texts), k)."""
        return self.decision.transform(self.model.predict_proba(texts))

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """The chosen class of each text (the rule's decision)."""
        return np.asarray(self.model.classes_)[self.decision.decide(self.predict_proba(texts))]

    def __getattr__(self, name: str) -> Any:
        if name in ("model", "decision"):  # not set yet (e.g. while unpickling/copying)
            raise AttributeError(name)
        return getattr(self.model, name)


def decide_classes(model: Any, P: np.ndarray) -> np.ndarray:
    """Class indices chosen from ``P`` (n, k), the probabilities ``model.predict_proba`` gave: the rule of a
    :class:`DecidedModel`, the most probable class for a plain model (a run saved without a rule)."""
    decision = model.decision if isinstance(model, DecidedModel) else None
    return P.argmax(axis=1) if decision is None else decision.decide(P)


def with_saved_decision(model: Any, path: str | Path) -> Any:
    """``model`` wrapped with the rule saved at ``path`` (a :class:`DecidedModel`), or ``model`` itself when
    there is no such file (a run saved before decisions were; it keeps the softmax and the argmax).

    Raises
    ------
    LexcoderError
        When the file is malformed or lists other classes than the model's.
    """
    path = Path(path)
    if not path.is_file():
        return model
    rule = ClassDecision.load(path)
    classes = [str(c) for c in model.classes_]
    if rule.classes_ != classes:
        raise LexcoderError(f"{path} lists the classes {rule.classes_}, but the model beside it codes {classes}. "
                            "Rerun the training into a new folder.")
    return DecidedModel(model, rule)


def _check(y: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``y`` as int class indices (n,) into the columns of ``P`` (n, k); a clear ValueError otherwise."""
    y, P = np.asarray(y), np.asarray(P, dtype=float)
    if P.ndim != 2 or y.ndim != 1 or len(y) != len(P):
        raise ValueError(f"Expected y of shape (n,) and P of shape (n, k); got {y.shape} and {P.shape}.")
    if len(y) and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= P.shape[1]):
        raise ValueError(f"y must hold class indices 0..{P.shape[1] - 1}; got {np.unique(y)[:10].tolist()}.")
    return y.astype(int), P
