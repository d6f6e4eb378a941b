"""Vectorised (group) bootstrap of the confusion-matrix figures: F1, precision, recall, Cohen's κ.

Every figure of a binary label is a function of its four confusion counts, so a resample only needs the
counts. Rows are first summed per resampling *unit* (a group such as a document or case, or else the row
itself); a resample draws units with replacement, and its counts are ``multiplicities @ unit_counts``:
one matrix product for all labels and all resamples. A categorical variable's figures (accuracy, macro- and
weighted-F1, multi-class κ) are functions of its classes' one-vs-rest counts, so it is resampled the same way
(:func:`bootstrap_classes`).
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

FIGURES = ("f1", "precision", "recall", "cohen_kappa")
CLASS_FIGURES = ("accuracy", "macro_f1", "weighted_f1", "cohen_kappa")
_MAX_CELLS = 4_000_000  # resamples x units drawn at once (bounded memory on large corpora)


def confusion_counts(Y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per-row confusion indicators.

    Parameters
    ----------
    Y, pred : (n, n_labels) 0/1 human labels and model decisions

    Returns
    -------
    (n, n_labels, 4) float array of indicators for tp, fp, fn, tn
    """
    Y = np.asarray(Y, dtype=bool)
    pred = np.asarray(pred, dtype=bool)
    return np.stack([Y & pred, ~Y & pred, Y & ~pred, ~Y & ~pred], axis=-1).astype(np.float64)


def count_metrics(counts: np.ndarray) -> dict[str, np.ndarray]:
    """F1, precision, recall and Cohen's κ from confusion counts.

    Parameters
    ----------
    counts : (..., 4) tp, fp, fn, tn

    Returns
    -------
    dict of arrays of shape ``counts.shape[:-1]``; precision/recall/F1 are 0 where undefined (as
    scikit-learn's ``zero_division=0``), κ is NaN where undefined (one category only).
    """
    tp, fp, fn, tn = np.moveaxis(counts, -1, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        denom = (tp + fp) * (fp + tn) + (tp + fn) * (fn + tn)
        kappa = np.where(denom > 0, 2 * (tp * tn - fn * fp) / denom, np.nan)
    return {"f1": f1, "precision": precision, "recall": recall, "cohen_kappa": kappa}


def bootstrap_counts(unit_counts: np.ndarray, *, n_boot: int, seed: int) -> np.ndarray:
    """Confusion counts of ``n_boot`` resamples of the units (drawn with replacement).

    Parameters
    ----------
    unit_counts : (n_units, n_labels, 4) confusion counts summed per unit
    n_boot : number of resamples
    seed : seed of the random generator (same seed, same resamples)

    Returns
    -------
    (n_boot, n_labels, 4) counts
    """
    n_units = unit_counts.shape[0]
    flat = unit_counts.reshape(n_units, -1)
    rng = np.random.default_rng(seed)
    chunk = max(1, _MAX_CELLS // max(n_units, 1))
    out = []
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        draws = rng.integers(0, n_units, size=(b, n_units)) + (np.arange(b) * n_units)[:, None]
        mult = np.bincount(draws.ravel(), minlength=b * n_units).reshape(b, n_units)
        out.append(mult @ flat)
    return np.concatenate(out).reshape(n_boot, *unit_counts.shape[1:])


def bootstrap_metrics(Y: np.ndarray, pred: np.ndarray, *, groups: np.ndarray | None = None,
                      n_boot: int = 1000, seed: int = 42, level: float = 0.95) -> dict[str, Any]:
    """Percentile bootstrap intervals for each label's F1, precision, recall, κ and for the macro averages.

    Parameters
    ----------
    Y, pred : (n, n_labels) 0/1 human labels and model decisions
    groups : (n,) group of each row (document, case); whole groups are resampled. ``None``: rows.
    n_boot : number of resamples (``[evaluate] bootstrap``)
    seed : random seed (``[evaluate] seed``)
    level : coverage of the intervals

    Returns
    -------
    dict with ``labels`` (n_labels lists, one dict ``{figure: [low, high]}`` per label), ``macro``
    (``{figure: [low, high]}``) and ``info`` (resamples, seed, unit, n_units, level)
    """
    unit_counts = _unit_counts(confusion_counts(Y, pred), groups)
    n_units = unit_counts.shape[0]
    figures = count_metrics(bootstrap_counts(unit_counts, n_boot=n_boot, seed=seed))
    q = 100 * np.array([(1 - level) / 2, (1 + level) / 2])
    per_label = [{} for _ in range(unit_counts.shape[1])]
    macro = {}
    for name in FIGURES:
        values = figures[name]  # (n_boot, n_labels)
        for j, bounds in enumerate(_percentiles(values, q).T):
            per_label[j][name] = bounds
        with warnings.catch_warnings():  # κ undefined for every label of a resample: NaN, not a warning
            warnings.simplefilter("ignore", RuntimeWarning)
            macro_values = np.nanmean(values, axis=1) if name == "cohen_kappa" else values.mean(axis=1)
        macro[name] = _percentiles(macro_values[:, None], q)[:, 0]
    return {"labels": [{k: _pair(v) for k, v in d.items()} for d in per_label],
            "macro": {k: _pair(v) for k, v in macro.items()},
            "info": {"resamples": int(n_boot), "seed": int(seed), "level": level,
                     "unit": "row" if groups is None else "group", "n_units": n_units}}


def class_count_metrics(counts: np.ndarray) -> dict[str, np.ndarray]:
    """A categorical variable's figures from its classes' one-vs-rest confusion counts.

    Every row falls in exactly one cell of each class's counts, so the rows are ``sum(counts[..., 0, :])``,
    the correct ones ``sum_c tp_c``, the human marginals ``tp + fn`` and the model's ``tp + fp``; κ is
    ``(p_o - p_e) / (1 - p_e)`` with ``p_e = sum_c human_c * model_c / n**2`` (as scikit-learn's unweighted
    ``cohen_kappa_score``).

    Parameters
    ----------
    counts : (..., k, 4) tp, fp, fn, tn of each of the k classes against the rest

    Returns
    -------
    dict of arrays of shape ``counts.shape[:-2]``: ``accuracy``, ``macro_f1`` (mean of the classes' F1, 0 for
    a class neither side used, as scikit-learn's ``labels=range(k), zero_division=0``), ``weighted_f1``
    (weighted by the human support), ``cohen_kappa`` (NaN where undefined: both sides one class only)
    """
    per_class = count_metrics(counts)["f1"]
    tp, fp, fn, _ = np.moveaxis(counts, -1, 0)
    n = counts[..., 0, :].sum(axis=-1)
    human, model = tp + fn, tp + fp
    with np.errstate(divide="ignore", invalid="ignore"):
        accuracy = np.where(n > 0, tp.sum(axis=-1) / n, np.nan)
        p_e = (human * model).sum(axis=-1) / n ** 2
        kappa = np.where((n > 0) & (p_e < 1), (accuracy - p_e) / (1 - p_e), np.nan)
        weighted = np.where(n > 0, (per_class * human).sum(axis=-1) / n, 0.0)
    return {"accuracy": accuracy, "macro_f1": per_class.mean(axis=-1), "weighted_f1": weighted,
            "cohen_kappa": kappa}


def bootstrap_classes(y: np.ndarray, pred: np.ndarray, n_classes: int, *, groups: np.ndarray | None = None,
                      n_boot: int = 1000, seed: int = 42, level: float = 0.95) -> dict[str, Any]:
    """Percentile bootstrap intervals for a categorical variable: accuracy, macro-/weighted-F1, κ, and each
    class's F1, precision and recall.

    Parameters
    ----------
    y, pred : (n,) human codes and model decisions, class indices 0..n_classes-1
    n_classes : k, the number of classes
    groups : (n,) group of each row (document, case); whole groups are resampled. ``None``: rows.
    n_boot, seed, level : resamples, random seed, coverage (as :func:`bootstrap_metrics`)

    Returns
    -------
    dict with ``overall`` (``{figure: [low, high] or None}`` for :data:`CLASS_FIGURES`), ``classes`` (one
    ``{f1, precision, recall: [low, high]}`` per class) and ``info``
    """
    one_hot = np.eye(n_classes, dtype=bool)
    rows = confusion_counts(one_hot[np.asarray(y, dtype=int)], one_hot[np.asarray(pred, dtype=int)])
    unit_counts = _unit_counts(rows, groups)
    counts = bootstrap_counts(unit_counts, n_boot=n_boot, seed=seed)  # (n_boot, k, 4)
    q = 100 * np.array([(1 - level) / 2, (1 + level) / 2])
    overall = class_count_metrics(counts)
    per_class = count_metrics(counts)
    bounds = {name: _percentiles(per_class[name], q).T for name in ("f1", "precision", "recall")}
    return {"overall": {name: _pair(_percentiles(overall[name][:, None], q)[:, 0]) for name in CLASS_FIGURES},
            "classes": [{name: _pair(b[c]) for name, b in bounds.items()} for c in range(n_classes)],
            "info": {"resamples": int(n_boot), "seed": int(seed), "level": level,
                     "unit": "row" if groups is None else "group", "n_units": int(unit_counts.shape[0])}}


def bootstrap_difference(Y_a: np.ndarray, pred_a: np.ndarray, Y_b: np.ndarray, pred_b: np.ndarray, *,
                         groups: np.ndarray | None = None, figure: str = "f1", n_boot: int = 1000,
                         seed: int = 42, level: float = 0.95) -> dict[str, Any]:
    """Paired percentile bootstrap interval of ``figure(b) - figure(a)`` per label and for the macro average.

    Both sides are computed on the *same* resampled rows or groups, so what the two evaluations share
    (the texts, most codes) cancels, and the interval is much narrower than two separate ones.

    Parameters
    ----------
    Y_a, pred_a : (n, n_labels) reference codes and decisions of evaluation a (e.g. the earlier run)
    Y_b, pred_b : (n, n_labels) the same rows for evaluation b (codes may differ, e.g. corrected ones)
    groups : (n,) group of each row; whole groups are resampled. ``None``: rows.
    figure : one of ``FIGURES``
    n_boot, seed, level : resamples, random seed, coverage

    Returns
    -------
    dict with ``labels`` (one ``[low, high]`` or None per label), ``macro`` (``[low, high]``) and ``info``
    """
    if figure not in FIGURES:
        raise ValueError(f"figure must be one of {FIGURES}, not {figure!r}")
    n_labels = np.asarray(Y_a).shape[1]
    rows = np.concatenate([confusion_counts(Y_a, pred_a), confusion_counts(Y_b, pred_b)], axis=1)
    unit_counts = _unit_counts(rows, groups)
    values = count_metrics(bootstrap_counts(unit_counts, n_boot=n_boot, seed=seed))[figure]
    diff = values[:, n_labels:] - values[:, :n_labels]  # (n_boot, n_labels)
    q = 100 * np.array([(1 - level) / 2, (1 + level) / 2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        macro = np.nanmean(diff, axis=1)[:, None]
    return {"labels": [_pair(b) for b in _percentiles(diff, q).T], "macro": _pair(_percentiles(macro, q)[:, 0]),
            "info": {"resamples": int(n_boot), "seed": int(seed), "level": level, "figure": figure,
                     "unit": "row" if groups is None else "group", "n_units": int(unit_counts.shape[0])}}


def _unit_counts(rows: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """Per-row confusion indicators ``(n, ..., 4)`` summed per resampling unit (group, else row)."""
    codes = np.arange(len(rows)) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
    n_units = int(codes.max() + 1) if len(codes) else 0
    unit_counts = np.zeros((n_units, *rows.shape[1:]))
    np.add.at(unit_counts, codes, rows)
    return unit_counts


def _percentiles(values: np.ndarray, q: np.ndarray) -> np.ndarray:
    """(2, k) percentiles of (n_boot, k) values, ignoring NaN; NaN where a column is all NaN."""
    out = np.full((2, values.shape[1]), np.nan)
    ok = ~np.isnan(values).all(axis=0)
    if ok.any():
        out[:, ok] = np.nanpercentile(values[:, ok], q, axis=0)
    return out


def _pair(bounds: np.ndarray) -> list[float] | None:
    return None if np.isnan(bounds).any() else [float(bounds[0]), float(bounds[1])]
