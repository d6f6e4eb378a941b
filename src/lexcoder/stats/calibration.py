"""Are the probabilities probabilities? Reliability curve and expected calibration error (ECE)."""
from __future__ import annotations

from typing import Any

import numpy as np


def _bins(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bin index in [0, n_bins) of each probability (1.0 falls in the last bin)."""
    return np.minimum((np.asarray(p, dtype=float) * n_bins).astype(int), n_bins - 1)


def reliability_curve(y: np.ndarray, p: np.ndarray, *, n_bins: int = 10) -> list[dict[str, Any]]:
    """Observed share of positives against mean predicted probability, per equal-width bin.

    Parameters
    ----------
    y : (n,) 0/1 human labels
    p : (n,) predicted probabilities
    n_bins : number of equal-width bins on [0, 1]

    Returns
    -------
    one dict per non-empty bin: ``low``, ``high``, ``n``, ``mean_prob``, ``observed``
    """
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    idx = _bins(p, n_bins)
    n = np.bincount(idx, minlength=n_bins)
    sum_p = np.bincount(idx, weights=p, minlength=n_bins)
    sum_y = np.bincount(idx, weights=y, minlength=n_bins)
    return [{"low": k / n_bins, "high": (k + 1) / n_bins, "n": int(n[k]),
             "mean_prob": float(sum_p[k] / n[k]), "observed": float(sum_y[k] / n[k])}
            for k in np.flatnonzero(n)]


def expected_calibration_error(y: np.ndarray, p: np.ndarray, *, n_bins: int = 10) -> float | None:
    """ECE: mean over equal-width bins of |observed share − mean probability|, weighted by bin size.

    Parameters
    ----------
    y : (n,) 0/1 human labels
    p : (n,) predicted probabilities
    n_bins : number of equal-width bins on [0, 1]

    Returns
    -------
    ECE in [0, 1] (0 = perfectly calibrated), ``None`` for no rows
    """
    if len(y) == 0:
        return None
    curve = reliability_curve(y, p, n_bins=n_bins)
    return float(sum(b["n"] * abs(b["observed"] - b["mean_prob"]) for b in curve) / len(y))
