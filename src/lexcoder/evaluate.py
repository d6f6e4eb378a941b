"""Per-label quality figures against the human labels (scikit-learn's metrics, not re-implemented).

Output follows the ``metrics.json`` shape fixed in docs/ARCHITECTURE.md; with the options of
:func:`evaluate_predictions` each label also gets bootstrap intervals (``f1_ci``, ``precision_ci``,
``recall_ci``, ``cohen_kappa_ci``; ``macro.f1_ci`` …), agreement with the human coders
(``krippendorff_alpha``, ``gwet_ac1``), calibration (``ece``, ``brier``, ``reliability``) and, where a
second coder's columns exist, the same agreement figures human-vs-human under ``second_coder``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (accuracy_score, average_precision_score, cohen_kappa_score, confusion_matrix,
                             f1_score, precision_score, recall_score, roc_auc_score)

from .config import Config
from .data import second_coder_columns
from .stats import agreement, bootstrap_metrics, expected_calibration_error, gwet_ac1, krippendorff_alpha
from .stats import reliability_curve


def label_metrics(y: np.ndarray, p: np.ndarray, threshold: float | np.ndarray) -> dict[str, Any]:
    """Figures for one label: y (n,) 0/1 human codes, p (n,) probabilities, decision ``p >= threshold``.

    ``threshold`` may be one number or one per row (pooled cross-validation folds).
    """
    y = np.asarray(y).astype(int)
    pred = (np.asarray(p) >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    both = 0 < y.sum() < len(y)
    return {
        "f1": float(f1_score(y, pred, zero_division=0)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "accuracy": float(accuracy_score(y, pred)),
        "roc_auc": float(roc_auc_score(y, p)) if both else None,
        "average_precision": float(average_precision_score(y, p)) if y.sum() else None,
        "cohen_kappa": _kappa(y, pred),
        "support": int(y.sum()),
        "n": int(len(y)),
        "prevalence": float(y.mean()) if len(y) else None,
        "predicted_prevalence": float(pred.mean()) if len(y) else None,
        "threshold": float(np.mean(threshold)),
        "tp": int(tp), "fp": int(fp), "tn": int(tn), "fn": int(fn),
        "krippendorff_alpha": krippendorff_alpha(y, pred),
        "gwet_ac1": gwet_ac1(y, pred),
    }


def calibration_metrics(y: np.ndarray, p: np.ndarray, *, n_bins: int = 10) -> dict[str, Any]:
    """ECE, Brier score and reliability curve of one label's probabilities ``p`` (n,) against ``y`` (n,)."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    return {"ece": expected_calibration_error(y, p, n_bins=n_bins),
            "brier": float(np.mean((p - y) ** 2)) if len(y) else None,
            "reliability": reliability_curve(y, p, n_bins=n_bins)}


def _kappa(y: np.ndarray, pred: np.ndarray) -> float | None:
    if len(np.unique(np.concatenate([y, pred]))) < 2:
        return None  # undefined when both raters use one category only
    return float(cohen_kappa_score(y, pred))


def evaluate_predictions(Y: np.ndarray, P: np.ndarray, thresholds: Sequence[float],
                         label_names: Sequence[str], *, groups: np.ndarray | None = None,
                         bootstrap: int = 0, seed: int = 42, ece_bins: int = 10,
                         Y_second: np.ndarray | None = None) -> dict[str, Any]:
    """Per-label, macro and micro figures for one split.

    Parameters
    ----------
    Y : (n, n_labels) human labels
    P : (n, n_labels) probabilities
    thresholds : (n_labels,) decision thresholds, or (n, n_labels) for per-row thresholds
    label_names : names of the label columns
    groups : (n,) group of each row; the bootstrap resamples whole groups. ``None``: single rows.
    bootstrap : number of bootstrap resamples for the ``*_ci`` intervals (0: no intervals)
    seed : seed of the bootstrap
    ece_bins : equal-width bins of the reliability curve and ECE
    Y_second : (n, n_labels) a second human coder's labels (NaN where not coded), for ``second_coder``

    Returns
    -------
    dict with keys ``labels`` ({label: figures}), ``macro`` and ``micro`` (f1, precision, recall), ``n``
    (+ ``bootstrap`` settings when intervals were computed)
    """
    Y = np.asarray(Y).astype(int)
    T = np.broadcast_to(np.asarray(thresholds, dtype=float), np.shape(P))
    pred = (np.asarray(P) >= T).astype(int)
    labels = {name: {**label_metrics(Y[:, j], P[:, j], T[:, j]),
                     **calibration_metrics(Y[:, j], P[:, j], n_bins=ece_bins)}
              for j, name in enumerate(label_names)}
    summary = {}
    for avg in ("macro", "micro"):
        summary[avg] = {
            "f1": float(f1_score(Y, pred, average=avg, zero_division=0)),
            "precision": float(precision_score(Y, pred, average=avg, zero_division=0)),
            "recall": float(recall_score(Y, pred, average=avg, zero_division=0)),
        }
    kappas = [m["cohen_kappa"] for m in labels.values() if m["cohen_kappa"] is not None]
    summary["macro"]["cohen_kappa"] = float(np.mean(kappas)) if kappas else None
    out = {"n": int(len(Y)), "labels": labels, **summary}
    if bootstrap and len(Y):
        add_intervals(out, bootstrap_metrics(Y, pred, groups=groups, n_boot=bootstrap, seed=seed))
    if Y_second is not None:
        add_second_coder(out, Y, pred, np.asarray(Y_second, dtype=float), label_names)
    return out


def add_intervals(block: dict[str, Any], boot: dict[str, Any]) -> None:
    """Put bootstrap intervals into an evaluation block as ``<figure>_ci`` keys (labels and macro)."""
    for figures, intervals in zip(block["labels"].values(), boot["labels"]):
        figures.update({f"{k}_ci": v for k, v in intervals.items()})
    block["macro"].update({f"{k}_ci": v for k, v in boot["macro"].items()})
    block["bootstrap"] = boot["info"]


def add_second_coder(block: dict[str, Any], Y: np.ndarray, pred: np.ndarray, Y_second: np.ndarray,
                     label_names: Sequence[str]) -> None:
    """Human-vs-human agreement beside model-vs-human, on the rows the second coder coded.

    Each label with any second-coder code gets ``second_coder = {"human_vs_human": {...},
    "model_vs_human": {...}}`` (n, percent agreement, κ, α, AC1; model compared with the first coder).
    """
    for j, name in enumerate(label_names):
        coded = ~np.isnan(Y_second[:, j])
        if not coded.any():
            continue
        block["labels"][name]["second_coder"] = {
            "human_vs_human": agreement(Y[coded, j], Y_second[coded, j]),
            "model_vs_human": agreement(Y[coded, j], pred[coded, j]),
        }


def evaluate_options(cfg: Config, df: pd.DataFrame, rows: np.ndarray) -> dict[str, Any]:
    """Keyword options of :func:`evaluate_predictions` for the rows ``rows`` (bool mask) of a run's table.

    Bootstrap settings come from ``[evaluate]``; the table's ``group`` column (if any) makes the bootstrap
    resample whole groups; ``<label><data.second_coder_suffix>`` columns give the second coder's labels.
    """
    second = second_coder_columns(cfg.data, df.columns)
    Y_second = None
    if second:
        Y_second = np.column_stack([_as_float(df[second[lab]]) if lab in second else np.full(len(df), np.nan)
                                    for lab in cfg.data.label_columns])[rows]
    groups = df["group"].to_numpy()[rows] if "group" in df.columns else None
    return {"groups": groups, "bootstrap": cfg.evaluate.bootstrap, "seed": cfg.evaluate.seed,
            "ece_bins": cfg.evaluate.ece_bins, "Y_second": Y_second}


def _as_float(column: pd.Series) -> np.ndarray:
    """0/1 codes as floats, NaN where a coder left the cell empty."""
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
