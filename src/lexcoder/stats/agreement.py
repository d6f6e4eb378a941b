"""Agreement between two coders (model vs. human, or human vs. human) on one 0/1 label.

Cohen's κ (scikit-learn), Krippendorff's α (the ``krippendorff`` package, nominal level) and Gwet's AC1,
which stays informative for rare labels where κ and α collapse (the "kappa paradox").
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import cohen_kappa_score

log = logging.getLogger(__name__)


def _paired(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows both coders coded (NaN = not coded), as float arrays."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"Expected two 1-D arrays of the same length; got shapes {a.shape} and {b.shape}.")
    keep = ~(np.isnan(a) | np.isnan(b))
    return a[keep], b[keep]


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float | None:
    """Cohen's κ of two coders' codes, shape (n,); ``None`` where undefined (one category only)."""
    a, b = _paired(a, b)
    if len(a) == 0 or len(np.unique(np.concatenate([a, b]))) < 2:
        return None
    return float(cohen_kappa_score(a, b))


def gwet_ac1(a: np.ndarray, b: np.ndarray, categories: Sequence[float] = (0, 1)) -> float | None:
    """Gwet's AC1 of two coders' nominal codes, shape (n,).

    ``AC1 = (p_a - p_e) / (1 - p_e)`` with observed agreement ``p_a`` and chance agreement
    ``p_e = sum_k pi_k (1 - pi_k) / (q - 1)``, where ``pi_k`` is the mean share of category ``k`` over the two
    coders and ``q`` the number of categories (Gwet 2008, Br J Math Stat Psychol 61:29-48).
    ``None`` for no rows.
    """
    a, b = _paired(a, b)
    if len(a) == 0:
        return None
    cats = np.asarray(categories, dtype=float)
    pa = float(np.mean(a == b))
    pi = ((a[:, None] == cats).mean(axis=0) + (b[:, None] == cats).mean(axis=0)) / 2
    pe = float(np.sum(pi * (1 - pi)) / (len(cats) - 1))
    return 1.0 if pe == 1 else (pa - pe) / (1 - pe)


def krippendorff_alpha(a: np.ndarray, b: np.ndarray) -> float | None:
    """Krippendorff's α (nominal) of two coders' codes, shape (n,); NaN marks a row one coder left out.

    ``None`` where undefined (a single category in all codes) or if the ``krippendorff`` package is
    missing (``pip install lexcoder[report]``).
    """
    try:
        import krippendorff
    except ImportError:
        log.warning("Krippendorff's alpha skipped: install the 'krippendorff' package (lexcoder[report]).")
        return None
    a, b = _paired(a, b)
    if len(a) < 2 or len(np.unique(np.concatenate([a, b]))) < 2:
        return None
    return float(krippendorff.alpha(reliability_data=np.vstack([a, b]), level_of_measurement="nominal"))


def agreement(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """All agreement figures of two coders on one label: n, percent agreement, κ, α, AC1."""
    pa, pb = _paired(a, b)
    return {"n": int(len(pa)), "percent_agreement": float(np.mean(pa == pb)) if len(pa) else None,
            "cohen_kappa": cohen_kappa(pa, pb), "krippendorff_alpha": krippendorff_alpha(pa, pb),
            "gwet_ac1": gwet_ac1(pa, pb)}
