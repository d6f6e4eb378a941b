"""Agreement between coders (model vs. human, or human vs. human) on one label or categorical variable.

Cohen's κ (scikit-learn), Krippendorff's α (nominal level, computed here: the reference package is
GPL-licensed and lexcoder is MIT) and Gwet's AC1, which stays informative for rare labels where κ and α
collapse (the "kappa paradox"). All three take nominal codes with any number of categories: 0/1 for a label,
class indices 0..k-1 for a categorical variable (AC1 then needs ``categories=range(k)``).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import cohen_kappa_score


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

    Parameters
    ----------
    a, b : (n,) the two coders' codes; NaN marks a row that coder did not code (left out)
    categories : the q >= 2 categories of the coding scheme (``range(k)`` for a variable with k classes), also
        those neither coder used: ``q`` enters ``p_e``, so it is the scheme's number, not the observed one

    Returns
    -------
    float or None
        AC1 ≤ 1; ``None`` for no rows

    Raises
    ------
    ValueError
        fewer than two categories, or a code that is not one of ``categories`` (it would silently count as
        agreement on no category)
    """
    a, b = _paired(a, b)
    cats = np.asarray(categories, dtype=float)
    if len(np.unique(cats)) < 2 or len(np.unique(cats)) != len(cats):
        raise ValueError(f"Gwet's AC1 needs two or more distinct categories; got {list(categories)}.")
    stray = np.setdiff1d(np.concatenate([a, b]), cats)
    if len(stray):
        raise ValueError(f"Codes {stray.tolist()[:5]} are not among the categories {cats.tolist()}; pass every "
                         "category of the scheme, e.g. categories=range(k) for class indices 0..k-1.")
    if len(a) == 0:
        return None
    pa = float(np.mean(a == b))
    pi = ((a[:, None] == cats).mean(axis=0) + (b[:, None] == cats).mean(axis=0)) / 2
    pe = float(np.sum(pi * (1 - pi)) / (len(cats) - 1))
    return 1.0 if pe == 1 else (pa - pe) / (1 - pe)


def _coincidences(codes: np.ndarray) -> np.ndarray:
    """Krippendorff's coincidence matrix of nominal codes, shape (m coders, n units) with NaN = not coded.

    Returns ``o``, shape (k, k) over the k distinct codes in sorted order:
    ``o[c, k] = sum_u (number of ordered c-k pairs of values in unit u) / (m_u - 1)``, summed over the units
    with ``m_u >= 2`` values (a unit one coder alone coded has no pair and carries no information).
    """
    values = np.unique(codes[~np.isnan(codes)])
    counts = (codes[..., None] == values).sum(axis=0)  # n_uc: coders who gave unit u code c, shape (n, k)
    m_u = counts.sum(axis=1)
    counts, m_u = counts[m_u >= 2], m_u[m_u >= 2]
    weighted = counts / (m_u - 1)[:, None]
    # ordered pairs within a unit: n_uc * n_uk for c != k, n_uc * (n_uc - 1) on the diagonal
    return weighted.T @ counts - np.diag(weighted.sum(axis=0))


def krippendorff_alpha(*codes: np.ndarray) -> float | None:
    """Krippendorff's α at the nominal level for two or more coders, with missing codes.

    From the coincidence matrix ``o`` (see :func:`_coincidences`), its marginals ``n_c = sum_k o[c, k]``
    and ``n = sum_c n_c`` (the number of pairable values)::

        alpha = 1 - D_o / D_e = 1 - (n - 1) * (n - sum_c o[c, c]) / (n**2 - sum_c n_c**2)

    (Krippendorff 2011, "Computing Krippendorff's Alpha-Reliability", Annenberg School for Communication,
    University of Pennsylvania, https://repository.upenn.edu/asc_papers/43, section C).

    Parameters
    ----------
    *codes : each coder's codes, shape (n_units,), all the same length; any numeric codes (0/1 labels,
        class indices); NaN marks a unit that coder did not code

    Returns
    -------
    float or None
        α ≤ 1 (1 = perfect agreement, 0 = agreement at chance level, below 0 = systematic disagreement);
        ``None`` where undefined: no unit coded by two coders, or a single category among the pairable
        codes (no disagreement is expected by chance, so α is 0 / 0).
    """
    if len(codes) < 2:
        raise ValueError(f"Krippendorff's alpha needs the codes of at least two coders; got {len(codes)}.")
    arrays = [np.asarray(c, dtype=float) for c in codes]
    if any(a.ndim != 1 or a.shape != arrays[0].shape for a in arrays):
        raise ValueError("Expected 1-D arrays of the same length; got shapes "
                         f"{', '.join(str(a.shape) for a in arrays)}.")
    o = _coincidences(np.vstack(arrays))
    n_c = o.sum(axis=1)
    if np.count_nonzero(n_c) < 2:
        return None
    n = n_c.sum()
    return float(1 - (n - 1) * (n - np.trace(o)) / (n ** 2 - np.sum(n_c ** 2)))


def agreement(a: np.ndarray, b: np.ndarray, categories: Sequence[float] = (0, 1)) -> dict[str, Any]:
    """All agreement figures of two coders on one label (or one variable, with ``categories=range(k)``):
    n, percent agreement, κ, α, AC1."""
    pa, pb = _paired(a, b)
    return {"n": int(len(pa)), "percent_agreement": float(np.mean(pa == pb)) if len(pa) else None,
            "cohen_kappa": cohen_kappa(pa, pb), "krippendorff_alpha": krippendorff_alpha(pa, pb),
            "gwet_ac1": gwet_ac1(pa, pb, categories)}
