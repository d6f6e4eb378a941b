"""One train/val/test (or k-fold) split for all labels.

The reference workflow's stratification, generalised: TF-IDF vectors → seeded KMeans; stratum =
label-combination string + "_" + cluster; strata with ``min_stratum`` rows or fewer merged into "other".
Rows are then assigned in *units* — the group column (document, case) or else exact-duplicate texts —
with scikit-learn's ``StratifiedGroupKFold``; copies of a text repeated across groups then follow their
majority, so neither a group nor a duplicated text is split (see :func:`reunite_duplicates`).
"""
from __future__ import annotations

import logging
import math
import warnings

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import StratifiedGroupKFold

from .config import SplitConfig
from .errors import DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                  "dev": "val", "test": "test", "testing": "test", "holdout": "test"}


def split_units(df: pd.DataFrame) -> np.ndarray:
    """Unit id per row: the ``group`` when there is one, else the exact-duplicate group."""
    key = df["group"] if "group" in df else df.get("dup_group", pd.Series(np.arange(len(df))))
    return pd.factorize(key)[0].astype(np.int64)


def reunite_duplicates(folds: np.ndarray, dup_group: np.ndarray) -> tuple[np.ndarray, int]:
    """Move every copy of a duplicated text into the fold holding most of its copies.

    Groups (documents, cases) are assigned whole; a text repeated across groups (boilerplate such as
    "1." or "Contact us") could then straddle folds. Its copies follow their majority (ties: the lowest
    fold), so no exact duplicate is ever on both sides of a split. Returns the new folds and how many
    rows moved.
    """
    frame = pd.DataFrame({"dup": dup_group, "fold": folds})
    spread = frame.groupby("dup")["fold"].nunique()
    straddling = spread.index[spread > 1]
    if not len(straddling):
        return folds, 0
    part = frame[frame["dup"].isin(straddling)]
    majority = part.groupby("dup")["fold"].agg(lambda f: f.value_counts().sort_index().idxmax())
    new = folds.copy()
    idx = part.index.to_numpy()
    new[idx] = majority.loc[part["dup"]].to_numpy()
    return new, int((new != folds).sum())


def strata(texts: pd.Series, Y: np.ndarray, *, n_clusters: int = 40, min_stratum: int = 4,
           seed: int = 42) -> np.ndarray:
    """Stratum per row: label combination + "_" + TF-IDF KMeans cluster.

    Strata with ``min_stratum`` rows or fewer fall back to the label combination alone, and combinations
    that rare are merged into "other" (the reference workflow merged rare strata into "other" directly,
    which left the positives of rare labels unstratified).
    """
    combos = np.array(["".join(map(str, row)) for row in Y.astype(int)], dtype=object)
    k = max(1, min(n_clusters, len(texts) // 2))
    if k > 1:
        X = TfidfVectorizer(sublinear_tf=True, min_df=2 if len(texts) > 50 else 1,
                            max_features=50_000).fit_transform(texts)
        clusters = KMeans(n_clusters=k, n_init=1, random_state=seed).fit_predict(X)
    else:
        clusters = np.zeros(len(texts), dtype=int)
    labels = pd.Series(combos + "_" + clusters.astype(str))
    # rare strata fall back to their label combination alone (so rare labels stay stratified),
    # and only combinations that are themselves rare are merged into "other"
    combo = pd.Series(combos)
    rare = labels.map(labels.value_counts()) <= min_stratum
    labels[rare] = combo[rare]
    rare = labels.map(labels.value_counts()) <= min_stratum
    labels[rare] = "other"
    return labels.to_numpy(dtype=object)


def assign_folds(strata_: np.ndarray, units: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold index (0..n_folds-1) per row; whole units stay in one fold, strata spread evenly."""
    n_units = len(np.unique(units))
    if n_units < n_folds:
        raise DataError(f"Only {n_units} independent groups of rows (documents/cases/duplicate texts) "
                        f"but {n_folds} folds were requested. Use fewer folds or more data.")
    folds = np.empty(len(units), dtype=np.int64)
    cv = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # rare strata ("fewer members than n_splits") are expected
        warnings.simplefilter("ignore", UserWarning)
        for fold, (_, idx) in enumerate(cv.split(np.zeros(len(units)), pd.factorize(strata_)[0], units)):
            folds[idx] = fold
    return folds


def _fold_count(cfg: SplitConfig) -> tuple[int, list[int]]:
    """Smallest number of folds that expresses the train/val/test fractions (at most 20)."""
    fracs = [cfg.train, cfg.val, cfg.test]
    for n in range(3, 21):
        if all(abs(f * n - round(f * n)) < 1e-6 for f in fracs):
            return n, [round(f * n) for f in fracs]
    n = 20
    counts = [max(1, math.floor(f * n)) for f in fracs]
    counts[0] = n - counts[1] - counts[2]
    return n, counts


def make_splits(df: pd.DataFrame, label_columns: list[str], cfg: SplitConfig | None = None
                ) -> pd.DataFrame:
    """Assign every row to train/val/test (or to a fold).

    Parameters
    ----------
    df : cleaned canonical table (``id``, ``text``, labels, optional ``group``, ``dup_group``)
    label_columns : label columns (one split serves them all)
    cfg : split settings

    Returns
    -------
    DataFrame with columns ``id``, ``split`` ("train"/"val"/"test", or "cv" in k-fold mode),
    ``fold`` (int), ``stratum`` (str), ``unit`` (int); one row per input row, same order.
    """
    cfg = cfg or SplitConfig()
    Y = df[label_columns].to_numpy()
    units = split_units(df)
    st = strata(df["text"], Y, n_clusters=cfg.n_clusters, min_stratum=cfg.min_stratum, seed=cfg.seed)
    out = pd.DataFrame({"id": df["id"].to_numpy(), "stratum": st, "unit": units})
    if cfg.method == "column":
        out["split"], out["fold"] = _from_column(df, cfg.column)
    else:
        n, counts = (cfg.n_folds, None) if cfg.method == "kfold" else _fold_count(cfg)
        folds = assign_folds(st, units, n, cfg.seed)
        if "dup_group" in df:
            folds, moved = reunite_duplicates(folds, df["dup_group"].to_numpy())
            if moved:
                log.info("%d row(s) whose text repeats in other groups moved to their copies' split.", moved)
        out["fold"] = folds
        out["split"] = "cv" if counts is None else np.repeat(SPLITS, counts)[folds]
    check_splits(df, out, label_columns)
    return out[["id", "split", "fold", "stratum", "unit"]]


def _from_column(df: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    if column not in df.columns:
        raise DataError(f"split.column = {column!r} is not a column of the data. Add it, or choose "
                        "split.method = \"cluster_stratified\".")
    values = df[column]
    as_num = pd.to_numeric(values, errors="coerce")
    if as_num.notna().all() and (as_num % 1 == 0).all():
        folds = pd.factorize(as_num.astype(int), sort=True)[0]
        if folds.max() < 2:
            raise DataError(f"split column {column!r} holds only {folds.max() + 1} fold number(s); k-fold "
                            "needs at least 3 (test, validation and training folds).")
        return np.full(len(df), "cv", dtype=object), folds
    names = values.astype(str).str.strip().str.lower().map(_SPLIT_ALIASES)
    if names.isna().any():
        bad = values[names.isna()]
        rows = df.loc[names.isna(), "source_row"] if "source_row" in df else bad.index + 1
        raise DataError(f"split column {column!r} must hold train/val/test (or fold numbers); rows "
                        f"{list(rows[:10])} hold {sorted(set(map(str, bad[:5])))}.")
    if "group" in df:
        n_bad = int((pd.DataFrame({"g": df["group"], "s": names}).groupby("g")["s"].nunique() > 1).sum())
        if n_bad:
            log.warning("%d group(s) straddle splits in your split column %r.", n_bad, column)
    return names.to_numpy(dtype=object), pd.Series(names).map({s: i for i, s in enumerate(SPLITS)}).to_numpy()


def cv_partitions(splits: pd.DataFrame) -> list[dict[str, np.ndarray]]:
    """The train/val/test row masks to fit: one for a plain split, one per fold in k-fold mode.

    In k-fold mode fold ``i`` is the test part, fold ``(i+1) % k`` the validation part (thresholds),
    the others train, so every row gets exactly one out-of-fold test prediction.
    """
    if (splits["split"] != "cv").all():
        return [{s: (splits["split"] == s).to_numpy() for s in SPLITS}]
    folds = splits["fold"].to_numpy()
    k = folds.max() + 1
    return [{"test": folds == i, "val": folds == (i + 1) % k, "train": (folds != i) & (folds != (i + 1) % k)}
            for i in range(k)]


def check_splits(df: pd.DataFrame, splits: pd.DataFrame, label_columns: list[str]) -> None:
    """Every label needs positives and negatives in every training part; raise a clear error if not."""
    Y = df[label_columns].to_numpy()
    for i, part in enumerate(cv_partitions(splits)):
        pos = Y[part["train"]].sum(axis=0)
        n = part["train"].sum()
        for label, p in zip(label_columns, pos):
            if p == 0 or p == n:
                what = "positive (1)" if p == 0 else "negative (0)"
                where = "the training split" if len(cv_partitions(splits)) == 1 else f"the training part of fold {i}"
                total = int(df[label].sum())
                raise DataError(
                    f"Label '{label}' has no {what} example in {where} ({total} positive(s) in all "
                    f"{len(df)} rows). A model cannot learn it: code more examples, drop the label from "
                    "label_columns, or use fewer folds / another split.")


def prevalence_table(df: pd.DataFrame, splits: pd.DataFrame, label_columns: list[str]) -> pd.DataFrame:
    """Rows and label prevalence (share of 1s) per split (or fold)."""
    key = np.where(splits["split"].to_numpy() == "cv", "fold " + splits["fold"].astype(str), splits["split"])
    grouped = df[label_columns].groupby(key)
    table = grouped.mean().T
    table.loc["rows"] = grouped.size()
    order = [s for s in SPLITS if s in table.columns] or sorted(table.columns)
    return table[order]
