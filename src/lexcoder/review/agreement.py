"""Inter-coder agreement of the double-coded items, live: κ, Krippendorff's α and Gwet's AC1 with intervals.

The figures are the evaluation's own (:func:`lexcoder.stats.agreement`); the intervals come from the same
bootstrap machinery: the items are resampled with replacement (percent agreement and κ through
:func:`lexcoder.stats.bootstrap.bootstrap_classes`, as the agreement of one coder's codes with the other's;
α and AC1 from each resample's k × k table of code pairs, :func:`lexcoder.stats.bootstrap_counts`).
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd

from ..stats import agreement, bootstrap_counts, gwet_ac1, krippendorff_alpha
from ..stats.bootstrap import bootstrap_classes
from .store import Field

FIGURES = ("percent_agreement", "cohen_kappa", "krippendorff_alpha", "gwet_ac1")


def coded_pairs(decided: pd.DataFrame, field: Field) -> tuple[np.ndarray, np.ndarray]:
    """The first two coders' codes of every item two or more coders decided, for one label or variable.

    Parameters
    ----------
    decided : :meth:`~lexcoder.review.store.ReviewStore.decided_values` (of one kind of item)
    field : the label or variable

    Returns
    -------
    two (n_items,) arrays of value indices into ``field.values`` (0/1 for a label; class indices)
    """
    part = decided[decided["label"] == field.name].sort_values(["item_id", "order"])
    first_two = part.groupby("item_id", sort=False).head(2)
    both = first_two[first_two.groupby("item_id")["coder"].transform("size") == 2]
    index = {v: i for i, v in enumerate(field.values)}
    codes = both["value"].map(index).to_numpy(dtype=int).reshape(-1, 2)
    return codes[:, 0], codes[:, 1]


def agreement_with_intervals(a: np.ndarray, b: np.ndarray, n_values: int, *, n_boot: int = 300, seed: int = 0,
                             level: float = 0.95) -> dict[str, Any]:
    """n, percent agreement, κ, α and AC1 of two coders' codes, each with a percentile bootstrap interval.

    Parameters
    ----------
    a, b : (n,) the two coders' codes as value indices 0..n_values-1
    n_values : the number of values of the scheme (2 for a label, k for a variable with k classes)
    n_boot, seed, level : resamples of the items, their seed, the intervals' coverage

    Returns
    -------
    dict with ``n`` and, for each of :data:`FIGURES`, the figure and ``<figure>_ci`` ([low, high], or None
    where the figure is undefined in too many resamples or fewer than 2 items were double-coded)
    """
    a, b = np.asarray(a, dtype=int), np.asarray(b, dtype=int)
    return dict(_cached(a.tobytes(), b.tobytes(), int(n_values), int(n_boot), int(seed), float(level)))


@functools.lru_cache(maxsize=256)
def _cached(a_bytes: bytes, b_bytes: bytes, k: int, n_boot: int, seed: int, level: float) -> tuple:
    a, b = np.frombuffer(a_bytes, dtype=int), np.frombuffer(b_bytes, dtype=int)
    out = agreement(a, b, categories=range(k))
    out.update({f"{name}_ci": None for name in FIGURES})
    if len(a) < 2 or not n_boot:
        return tuple(out.items())
    # percent agreement and κ are the accuracy and κ of one coder's codes "predicting" the other's
    overall = bootstrap_classes(a, b, k, n_boot=n_boot, seed=seed, level=level)["overall"]
    out.update(percent_agreement_ci=overall["accuracy"], cohen_kappa_ci=overall["cohen_kappa"])
    q = 100 * np.array([(1 - level) / 2, (1 + level) / 2])
    for name, values in _resampled_alpha_ac1(a, b, k, n_boot, seed).items():
        if np.mean(np.isnan(values)) <= 0.05:  # undefined in a few resamples: the interval of the others
            out[f"{name}_ci"] = [float(x) for x in np.nanpercentile(values, q)]
    return tuple(out.items())


def _resampled_alpha_ac1(a: np.ndarray, b: np.ndarray, k: int, n_boot: int, seed: int) -> dict[str, np.ndarray]:
    """α and AC1 on ``n_boot`` resamples of the items (NaN where undefined), from each resample's k × k
    table of code pairs."""
    pairs = np.zeros((len(a), k * k))
    pairs[np.arange(len(a)), a * k + b] = 1
    tables = bootstrap_counts(pairs, n_boot=n_boot, seed=seed).astype(int)  # (n_boot, k * k)
    figures = {"krippendorff_alpha": np.full(n_boot, np.nan), "gwet_ac1": np.full(n_boot, np.nan)}
    for r, table in enumerate(tables):
        cells = np.repeat(np.arange(k * k), table)
        ra, rb = cells // k, cells % k
        for name, value in (("krippendorff_alpha", krippendorff_alpha(ra, rb)),
                            ("gwet_ac1", gwet_ac1(ra, rb, categories=range(k)))):
            figures[name][r] = np.nan if value is None else value
    return figures


def agreement_table(decided: pd.DataFrame, fields: list[Field], *, n_boot: int = 300) -> list[dict[str, Any]]:
    """One row per (kind of item, label) with double-coded items: ``kind``, ``label`` and the figures of
    :func:`agreement_with_intervals`."""
    rows = []
    for kind in ("audit", "code"):
        part = decided[decided["kind"] == kind]
        for f in fields:
            a, b = coded_pairs(part, f)
            if len(a):
                rows.append({"kind": kind, "label": f.name, **agreement_with_intervals(a, b, len(f.values),
                                                                                         n_boot=n_boot)})
    return rows
