"""The outputs of a fitted model and how they map onto the 0/1 matrix a family learns.

Every family learns from one 0/1 matrix and predicts one matrix of the same width; an :class:`Output` says
which columns of it belong to which of the model's outputs. A 0/1 label is one column (a sigmoid), a
categorical variable one column per class (a softmax over them). The 0/1 labels come first, then each
categorical variable's block, so a transformer's head is ``n_labels + sum k_j`` logits in that order and
each *link group* (the labels' block, each variable's block) is a contiguous slice.

The multi-output target (scikit-learn's "multiclass-multioutput"): ``y`` is 2-D ``(n, m)``, a DataFrame
(its column names name the outputs) or an array; each column is a 0/1 label or a categorical variable.
Which is which is said by ``categorical`` (the names or positions of the categorical columns); without it
a column holding only 0 and 1 is read as a label and any other as a categorical variable. A categorical
variable coded 0/1 must therefore be named in ``categorical`` to stay a softmax over its two classes
(lexcoder's pipeline always names its ``class_columns``).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit, softmax

from ..errors import LexcoderError

MULTIOUTPUT = "multiclass-multioutput"

# (columns, softmax): one contiguous block of the matrix and its link
LinkGroup = tuple[slice, bool]


@dataclass(frozen=True, eq=False)
class Output:
    """One output of a model.

    Attributes
    ----------
    name : the output's name (a label column or a categorical variable)
    classes : its classes, sorted (``[0, 1]`` for a 0/1 label)
    categorical : a softmax over ``classes`` (True) or one sigmoid (False)
    start : its first column in the family's matrix
    """

    name: str
    classes: np.ndarray
    categorical: bool
    start: int

    @property
    def width(self) -> int:
        """Columns in the family's matrix: the number of classes, or 1 for a 0/1 label."""
        return len(self.classes) if self.categorical else 1

    @property
    def columns(self) -> slice:
        return slice(self.start, self.start + self.width)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "classes": np.asarray(self.classes).tolist(), "categorical": self.categorical}


def layout(names: Sequence[str], classes: Sequence[np.ndarray], categorical: Sequence[bool]) -> list[Output]:
    """The outputs in the given order, with columns assigned: 0/1 labels first, then each variable's block."""
    order = [j for j in range(len(names)) if not categorical[j]] + [j for j in range(len(names)) if categorical[j]]
    start, placed = 0, {}
    for j in order:
        placed[j] = Output(str(names[j]), np.asarray(classes[j]), bool(categorical[j]), start)
        start += placed[j].width
    return [placed[j] for j in range(len(names))]


def single_target_layout(target_type: str, classes: np.ndarray, label_names: Sequence[str]) -> list[Output]:
    """The layout of the three single-target shapes: one label per column (multi-label), one label
    (binary), or one categorical variable over ``classes`` (multi-class)."""
    if target_type == "multiclass":
        return layout(["y"], [classes], [True])
    if target_type == "binary":
        return layout([label_names[0]], [classes], [False])
    return layout(label_names, [np.array([0, 1])] * len(label_names), [False] * len(label_names))


def outputs_from_meta(meta: dict[str, Any]) -> list[Output]:
    """The layout a saved model recorded (``meta`` of :meth:`TextClassifier.save`)."""
    if "outputs" in meta:
        outs = meta["outputs"]
        return layout([o["name"] for o in outs], [np.asarray(o["classes"]) for o in outs],
                      [o["categorical"] for o in outs])
    classes = np.asarray(meta["classes"]) if "classes" in meta else None
    return single_target_layout(meta.get("target_type", "multilabel"), classes, meta["label_names"])


def n_columns(outputs: Sequence[Output]) -> int:
    """Width of the family's matrix."""
    return sum(o.width for o in outputs)


def link_groups(outputs: Sequence[Output]) -> list[LinkGroup]:
    """The contiguous blocks of the matrix with their link: the 0/1 labels' block (sigmoids), then one
    block per categorical variable (a softmax each)."""
    n_labels = sum(not o.categorical for o in outputs)
    groups: list[LinkGroup] = [(slice(0, n_labels), False)] if n_labels else []
    return groups + [(o.columns, True) for o in sorted(outputs, key=lambda o: o.start) if o.categorical]


def apply_links(Z: np.ndarray, groups: Sequence[LinkGroup]) -> np.ndarray:
    """Probabilities (float64) from logits ``Z`` ``(n, width)``: sigmoids, and a softmax per variable."""
    Z = np.asarray(Z, dtype=np.float64)
    if len(groups) == 1:
        return softmax(Z, axis=1) if groups[0][1] else expit(Z)
    P = np.empty_like(Z)
    for cols, soft in groups:
        P[:, cols] = softmax(Z[:, cols], axis=1) if soft else expit(Z[:, cols])
    return P


def output_groups(outputs: Sequence[Output], *, per_output: bool, per_variable: bool) -> list[list[int]] | None:
    """Which outputs share a network when they do not all share one (None: one network for all).

    ``per_output``: every output its own network; ``per_variable``: the 0/1 labels one network, each
    categorical variable one. Returns lists of output positions, or None if that leaves a single group.
    """
    if per_output:
        groups = [[j] for j in range(len(outputs))]
    elif per_variable:
        labels = [j for j, o in enumerate(outputs) if not o.categorical]
        groups = ([labels] if labels else []) + [[j] for j, o in enumerate(outputs) if o.categorical]
    else:
        return None
    return groups if len(groups) > 1 else None


# -- the multi-output target -----------------------------------------------------------------------
def is_multioutput(y: Any, categorical: Sequence[str | int] | None) -> bool:
    """Whether ``y`` is read as a multi-output target: ``categorical`` is given, or ``y`` is 2-D with a
    column that holds anything but 0 and 1 (a 2-D 0/1 matrix stays the multi-label target)."""
    if categorical is not None:
        return True
    if (y.ndim if hasattr(y, "ndim") else np.asarray(y, dtype=object).ndim) != 2:
        return False
    return any(not _is_01(col) for _, col in _columns(y))


def check_multioutput(y: Any, n_texts: int, *, names: Sequence[str] | None,
                      categorical: Sequence[str | int] | None) -> tuple[list[Output], np.ndarray]:
    """Validate a multi-output ``y`` and encode it.

    Parameters
    ----------
    y : ``(n_texts, m)`` DataFrame or array; each column a 0/1 label or a categorical variable
    names : the outputs' names (default: the DataFrame's column names, else ``"0"``, ``"1"``, ...)
    categorical : names or positions of the categorical columns (default: every column not 0/1 only)

    Returns
    -------
    outputs : the layout (see :func:`layout`)
    Y : ``(n_texts, width)`` int8 0/1 matrix (one-hot within each variable's block)

    Raises
    ------
    LexcoderError
        Wrong shape, duplicate or unknown names, a missing value, a label with values other than 0/1, or
        an output with one class only; the message names the column.
    """
    cols = _columns(y)
    if len(cols) == 0 or any(len(c) != n_texts for _, c in cols):
        raise LexcoderError(f"Expected y of shape (n_texts, n_outputs) = ({n_texts}, m); got "
                            f"{getattr(y, 'shape', np.shape(y))}.")
    names = [str(n) for n in (names if names is not None else [n for n, _ in cols])]
    if len(names) != len(cols) or len(set(names)) != len(names):
        raise LexcoderError(f"Expected {len(cols)} distinct output names for the {len(cols)} column(s) of y; "
                            f"got {names}.")
    is_cat = _categorical_flags(names, cols, categorical)
    classes = [_column_classes(name, col, cat, explicit=categorical is not None)
               for name, (_, col), cat in zip(names, cols, is_cat)]
    outputs = layout(names, classes, is_cat)
    return outputs, encode(y, outputs, n_texts, what="y")


def encode(y: Any, outputs: Sequence[Output], n_texts: int, *, what: str) -> np.ndarray:
    """``y`` (columns in the order of ``outputs``) as the family's 0/1 matrix; values must be among each
    output's classes (``what`` names ``y`` in messages, e.g. ``"val_y"``); a DataFrame with every output's
    column is read by column name."""
    by_name = {str(c): c for c in getattr(y, "columns", [])}
    if hasattr(y, "iloc") and all(o.name in by_name for o in outputs):
        y = y[[by_name[o.name] for o in outputs]]
    cols = _columns(y)
    if len(cols) != len(outputs) or any(len(c) != n_texts for _, c in cols):
        raise LexcoderError(f"Expected {what} of shape ({n_texts}, {len(outputs)}) with the columns "
                            f"{[o.name for o in outputs]}; got {getattr(y, 'shape', np.shape(y))}.")
    Y = np.zeros((n_texts, n_columns(outputs)), dtype=np.int8)
    for o, (_, col) in zip(outputs, cols):
        _check_complete(col, o.name, what)
        known = np.isin(col, o.classes)
        if not known.all():
            odd = list(dict.fromkeys(np.asarray(col)[~known].tolist()))[:5]
            raise LexcoderError(f"Column {o.name!r} of {what} holds {odd} (row {int(np.flatnonzero(~known)[0])}); "
                                f"expected one of {o.classes.tolist()}, the classes seen in training.")
        if o.categorical:
            Y[:, o.columns] = np.asarray(col)[:, None] == o.classes[None, :]
        else:
            Y[:, o.start] = np.asarray(col) == o.classes[1]
    return Y


def decode(Y: np.ndarray, outputs: Sequence[Output]):
    """The inverse of :func:`encode`: a DataFrame with one column per output (its name), holding the
    label's 0/1 or the variable's class; with ``categorical_names`` it refits a model on the same target."""
    import pandas as pd
    return pd.DataFrame({o.name: o.classes[Y[:, o.columns].argmax(axis=1)] if o.categorical
                         else o.classes[Y[:, o.start].astype(int)] for o in outputs})


def categorical_names(outputs: Sequence[Output]) -> list[str]:
    return [o.name for o in outputs if o.categorical]


def split_probabilities(P: np.ndarray, outputs: Sequence[Output]) -> list[np.ndarray]:
    """The family's probability matrix as scikit-learn's multi-output list: per output ``(n, k_j)`` in the
    order of its classes (a 0/1 label: ``(n, 2)``, columns for 0 and 1)."""
    return [P[:, o.columns].copy() if o.categorical else np.c_[1.0 - P[:, o.start], P[:, o.start]]
            for o in outputs]


def labels_and_variables(probas: Sequence[np.ndarray], outputs: Sequence[Output]
                         ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Multi-output probabilities as the pipeline reads them: each 0/1 label's probability of a 1,
    ``(n, n_labels)`` in the order of the outputs, and each categorical variable's ``(n, k)`` by name."""
    n = len(probas[0]) if len(probas) else 0
    labels = [p[:, 1] for o, p in zip(outputs, probas) if not o.categorical]
    return (np.column_stack(labels) if labels else np.zeros((n, 0)),
            {o.name: p for o, p in zip(outputs, probas) if o.categorical})


def predict_classes(probas: Sequence[np.ndarray], outputs: Sequence[Output]) -> np.ndarray:
    """``(n, m)`` object array: per output its most probable class (a 0/1 label at 0.5)."""
    n = len(probas[0]) if probas else 0
    out = np.empty((n, len(outputs)), dtype=object)
    for j, (o, p) in enumerate(zip(outputs, probas)):
        out[:, j] = o.classes[p.argmax(axis=1)] if o.categorical else o.classes[(p[:, 1] >= 0.5).astype(int)]
    return out


# -- checks ----------------------------------------------------------------------------------------
def _columns(y: Any) -> list[tuple[Any, np.ndarray]]:
    """(name, values) per column of a 2-D ``y`` (a DataFrame keeps each column's dtype)."""
    if hasattr(y, "columns") and hasattr(y, "iloc"):
        return [(name, y.iloc[:, j].to_numpy()) for j, name in enumerate(y.columns)]
    arr = np.asarray(y, dtype=object) if isinstance(y, (list, tuple)) else np.asarray(y)
    if arr.ndim != 2:
        raise LexcoderError(f"Expected a 2-D y (n_texts, n_outputs) for several outputs; got shape {arr.shape}.")
    return [(str(j), arr[:, j]) for j in range(arr.shape[1])]


def _is_01(col: np.ndarray) -> bool:
    col = np.asarray(col)
    present = col[~_isna(col)]
    try:
        return bool(np.isin(present, (0, 1)).all())  # "0"/"1" written as text are classes, not a label
    except TypeError:
        return False


def _categorical_flags(names: list[str], cols, categorical: Sequence[str | int] | None) -> list[bool]:
    if categorical is None:
        return [not _is_01(col) for _, col in cols]
    if isinstance(categorical, (str, int)):
        categorical = [categorical]
    flags = [False] * len(names)
    for c in categorical:
        if isinstance(c, (int, np.integer)) and not isinstance(c, bool) and 0 <= c < len(names):
            flags[int(c)] = True
        elif str(c) in names:
            flags[names.index(str(c))] = True
        else:
            raise LexcoderError(f"categorical names {c!r}, which is not an output of y; the outputs are {names}.")
    return flags


def _column_classes(name: str, col: np.ndarray, categorical: bool, *, explicit: bool) -> np.ndarray:
    _check_complete(col, name, "y")
    if not categorical and not _is_01(col):
        odd = sorted({str(v) for v in np.asarray(col, dtype=object) if v not in (0, 1)})[:5]
        hint = "name it in categorical" if explicit else "it is read as categorical only without 0/1 values"
        raise LexcoderError(f"Column {name!r} of y is a 0/1 label but holds {odd}: code it 0/1, or, if it is a "
                            f"categorical variable, {hint}.")
    try:
        classes = np.unique(col) if categorical else np.array([0, 1])
    except TypeError:
        kinds = sorted({type(v).__name__ for v in col})
        raise LexcoderError(f"Column {name!r} of y mixes value types {kinds}; write every class the same way "
                            f"(e.g. all as text).") from None
    present = np.unique(np.asarray(col, dtype=np.int8)) if not categorical else classes
    if len(present) < 2:
        raise LexcoderError(f"Column {name!r} of y holds one class only ({present.tolist()}) in the training "
                            f"data: there is nothing to learn.")
    return classes


def _isna(values: np.ndarray) -> np.ndarray:
    import pandas as pd
    return np.asarray(pd.isna(values), dtype=bool)


def _check_complete(col: np.ndarray, name: str, what: str) -> None:
    missing = _isna(np.asarray(col))
    if missing.any():
        raise LexcoderError(f"Column {name!r} of {what} has {int(missing.sum())} missing value(s) (first at row "
                            f"{int(np.flatnonzero(missing)[0])}); every text needs a code in every output.")
