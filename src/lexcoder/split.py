"""One train/val/test (or k-fold) split for all labels.

Stratification as in the reference workflow: TF-IDF vectors → seeded KMeans; stratum = label combination
+ "_" + cluster, rare strata falling back to the label combination, then to "other" (:func:`strata`).

Rows are assigned in *units* that never straddle splits (:func:`split_units`). What a unit is depends on
``split.duplicates``:

- ``"link"`` (default): groups (``group_column``) that share an identical cleaned text form one unit, so
  neither a group nor a repeated text straddles splits;
- ``"keep_groups"``: one unit per group; identical texts in different groups may straddle (counted);
- ``"keep_duplicates"``: one unit per group, except that each text shared by several groups is a unit of
  its own; identical texts never straddle, the groups that share them may (counted).

A row with an empty group cell is a group of its own (never pooled with the other empty cells). Units
go straight to the splits (:func:`allocate_units`, stratified), so every split holds its requested
fraction of the rows to within one largest unit: ``|rows - fraction * n_rows| < largest unit's rows``.
A largest unit that does not fit into the smallest split is a :class:`~lexcoder.errors.DataError`.
:func:`split_with_facts` also returns what was done (:class:`SplitFacts`).
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.cluster import KMeans
from sklearn.feature_extraction.text import TfidfVectorizer

from .config import SplitConfig
from .errors import DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
DUPLICATE_MODES = ("link", "keep_groups", "keep_duplicates")
_SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                  "dev": "val", "test": "test", "testing": "test"}  # not "holdout": it may mean val or test
_SWITCH_HINT = ('Set split.duplicates = "keep_groups" (groups never straddle splits; identical texts '
                'shared by groups may, and are counted) or "keep_duplicates" (identical texts never '
                'straddle; the groups sharing them may, and are counted), or drop the repeated rows '
                '(numbering, headings, boilerplate) from the data.')


@dataclass(frozen=True)
class SplitFacts:
    """What :func:`split_with_facts` did, for ``manifest.json`` and the command line.

    Part names are ``train``/``val``/``test``, or ``fold 0``, ``fold 1``, ... in k-fold mode.
    """

    method: str
    duplicates: str
    rows: int
    groups: int  # distinct non-empty group values (0 without a group column)
    empty_group_rows: int  # rows with an empty group cell, each a group of its own
    units: int  # independent units the rows were assigned in (under ``duplicates``)
    linked_groups: int  # groups sharing an identical text with at least one other group
    shared_texts: int  # distinct texts occurring in more than one group
    largest_unit_rows: int  # tolerance: each part is within fewer rows than this of its target
    straddling_groups: int  # groups with rows in more than one part
    straddling_duplicates: int  # identical texts with copies in more than one part
    requested: dict[str, float] = field(default_factory=dict)  # empty for a user's split column
    realised: dict[str, float] = field(default_factory=dict)  # share of rows per part
    rows_per_split: dict[str, int] = field(default_factory=dict)
    val_from_train: float | None = None  # column mode without validation rows: share of train carved

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (for ``manifest.json``)."""
        return asdict(self)

    def summary(self) -> str:
        """One line for the command line."""
        shares = " / ".join(f"{k} {v:.1%}" for k, v in self.realised.items())
        asked = f" (asked {' / '.join(f'{v:.1%}' for v in self.requested.values())})" if self.requested else ""
        units = f"{self.units:,} units"
        if self.groups:
            units += f" from {self.groups:,} groups ({self.linked_groups:,} share texts with other groups)"
        if self.empty_group_rows:
            units += f", {self.empty_group_rows:,} row(s) with an empty group cell (each a group of its own)"
        return (f"Split ({self.method}, duplicates = {self.duplicates}): {units}, largest "
                f"{self.largest_unit_rows:,} rows; {shares}{asked}; {self.straddling_groups:,} group(s) and "
                f"{self.straddling_duplicates:,} repeated text(s) straddle splits.")


def split_units(df: pd.DataFrame, duplicates: str = "link") -> np.ndarray:
    """Unit id per row: rows of one unit always land in the same split (or fold).

    Parameters
    ----------
    df : cleaned canonical table (optional ``group``; ``dup_group`` marks identical texts, without it
        no two rows count as identical)
    duplicates : "link", "keep_groups" or "keep_duplicates" (see the module docstring)

    Returns
    -------
    (n_rows,) int64 array of unit ids 0..n_units-1
    """
    groups, dups = _group_keys(df), _dup_keys(df)
    if duplicates == "keep_groups":
        return groups
    if duplicates == "keep_duplicates":
        shared = _groups_per_dup(groups, dups) > 1  # such a text is a unit; offset keeps the ids apart
        return pd.factorize(np.where(shared, dups, groups + dups.max() + 1))[0].astype(np.int64)
    if duplicates != "link":
        raise ValueError(f"duplicates must be one of {DUPLICATE_MODES}, got {duplicates!r}")
    n_g, n_d = groups.max() + 1, dups.max() + 1  # bipartite graph group -- text; units = its components
    graph = coo_matrix((np.ones(len(df)), (groups, n_g + dups)), shape=(n_g + n_d, n_g + n_d))
    return pd.factorize(connected_components(graph, directed=False)[1][groups])[0].astype(np.int64)


def _group_keys(df: pd.DataFrame) -> np.ndarray:
    """Group id per row; a row without group (no column, empty cell) is a group of its own."""
    if "group" not in df:
        return np.arange(len(df), dtype=np.int64)
    empty = _empty_groups(df)
    codes = pd.factorize(df["group"].astype(str).where(~empty))[0]  # empty → -1, then each a fresh id
    codes[empty] = codes.max() + 1 + np.arange(int(empty.sum()))
    return codes.astype(np.int64)


def _empty_groups(df: pd.DataFrame) -> np.ndarray:
    if "group" not in df:
        return np.zeros(len(df), dtype=bool)
    return (df["group"].isna() | (df["group"].astype(str).str.strip() == "")).to_numpy()


def _dup_keys(df: pd.DataFrame) -> np.ndarray:
    """Identical-text id per row: ``dup_group`` (:func:`lexcoder.clean.clean`); without it, one per row."""
    if "dup_group" not in df:
        return np.arange(len(df), dtype=np.int64)
    return pd.factorize(df["dup_group"])[0].astype(np.int64)


def _groups_per_dup(groups: np.ndarray, dups: np.ndarray) -> np.ndarray:
    """Per row: in how many groups its text occurs."""
    frame = pd.DataFrame({"g": groups, "d": dups})
    return frame.groupby("d")["g"].transform("nunique").to_numpy()


def strata(texts: pd.Series, Y: np.ndarray, *, n_clusters: int = 40, min_stratum: int = 4,
           seed: int = 42) -> np.ndarray:
    """Stratum per row: label combination + "_" + TF-IDF KMeans cluster.

    Strata with ``min_stratum`` rows or fewer fall back to the label combination alone, and combinations
    that rare are merged into "other" (the reference workflow merged rare strata into "other" directly,
    which left the positives of rare labels unstratified).
    """
    combos = np.array(["".join(map(str, row)) for row in Y.astype(int)], dtype=object)
    k = max(1, min(n_clusters, len(texts) // 2))
    try:
        X = TfidfVectorizer(sublinear_tf=True, min_df=2 if len(texts) > 50 else 1,
                            max_features=50_000).fit_transform(texts) if k > 1 else None
    except ValueError:  # texts without shared words (codes, digits): stratify by label combination only
        log.warning("The texts share too few words to cluster them; the split is stratified by labels only.")
        X = None
    if X is not None:
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


def allocate_units(units: np.ndarray, strata_: np.ndarray, fractions: Sequence[float], *, seed: int,
                   labels: np.ndarray | None = None) -> np.ndarray:
    """Part index per row: whole units, stratified, every part within one largest unit of its target.

    Units are taken largest first (among equal sizes: rarest stratum first, then in a seeded random
    order). Each goes, among the parts still below their target size, to the one where it lowers most
    the chi-square distance between realised and target counts (per stratum, per label's positives if
    ``labels`` are given, and the part's size). A last pass moves units to any part still short by a
    largest unit or more (:func:`_top_up`).

    Parameters
    ----------
    units : (n,) unit id per row (:func:`split_units`)
    strata_ : (n,) stratum per row (:func:`strata`)
    fractions : share of the rows per part (normalised to sum 1)
    seed : order of equal units and tie-breaks
    labels : optional (n, n_labels) 0/1 codes; balancing each label's positives as well halves the
        prevalence imbalance between splits on the ToS sentences

    Returns
    -------
    (n,) int array of part indices. With ``m`` the largest unit's rows, every part ``i`` holds
    ``r_i`` rows with ``|r_i - fractions[i] * n| < m``.
    """
    f = np.asarray(fractions, dtype=float) / np.sum(fractions)
    unit, _ = pd.factorize(pd.Series(units))
    keys, _ = pd.factorize(pd.Series(strata_))
    sizes = np.bincount(unit)
    key_unit = unit
    if labels is not None:  # each label's positives are balanced too, as one more "stratum" per label
        rows, label = np.nonzero(np.asarray(labels))
        key_unit, keys = np.concatenate([unit, unit[rows]]), np.concatenate([keys, keys.max() + 1 + label])
    pairs = pd.DataFrame({"u": key_unit, "k": keys}).value_counts().sort_index()
    pu, pk = (pairs.index.get_level_values(i).to_numpy() for i in (0, 1))
    pc = pairs.to_numpy().astype(float)
    start = np.searchsorted(pu, np.arange(len(sizes) + 1))
    n_k = np.bincount(keys)
    target, size_target = np.outer(n_k, f), len(unit) * f
    rng = np.random.default_rng(seed)
    rarity = np.minimum.reduceat(n_k[pk], start[:-1])
    # largest units first: they are the hard ones to place (measured on the ToS documents: a third less
    # label-prevalence imbalance than a seeded order by size class); the seed still acts through the
    # strata (KMeans), the order of equal units and tie-breaks
    order = np.lexsort((rng.random(len(sizes)), rarity, -sizes))
    jitter = rng.random((len(sizes), len(f))) * 1e-9  # seeded tie-break between equal parts
    count, filled, part = np.zeros_like(target), np.zeros(len(f)), np.empty(len(sizes), dtype=np.int64)
    with np.errstate(divide="ignore"):  # a zero target (a part of share 0, a label without positives)
        inv_target, inv_size = 1 / target, 1 / size_target  # gives inf: any unit there costs inf
    for i in order:
        a, b, s = start[i], start[i + 1], sizes[i]
        # growth of sum (count - target)^2 / target if the unit joins each part (terms equal for all
        # parts dropped); single-stratum units, the common case, skip the sum
        if b - a == 1:
            k, c = pk[a], pc[a]
            cost = c * (2 * count[k] + c) * inv_target[k]
        else:
            cost = (pc[a:b, None] * (2 * count[pk[a:b]] + pc[a:b, None]) * inv_target[pk[a:b]]).sum(axis=0)
        cost += s * (2 * filled + s) * inv_size + jitter[i]
        cost[filled >= size_target] = np.inf  # a part only receives while below its target size
        p = int(np.argmin(cost))
        if filled[p] >= size_target[p]:  # every part full: only float rounding of the targets gets here
            p = int(np.argmax(size_target - filled))
        part[i] = p
        count[pk[a:b], p] += pc[a:b]
        filled[p] += s
    moved = _top_up(part, sizes, size_target)
    if moved:
        log.debug("%d unit(s) moved to parts that were short by a largest unit or more.", moved)
    return part[unit]


def _top_up(part: np.ndarray, sizes: np.ndarray, target: np.ndarray) -> int:
    """Move units from the fullest part to any part short by a largest unit ``m`` or more (in place).

    The greedy pass leaves every part below ``target + m`` (a part only receives while under its target).
    A part short by ``m`` or more receives a unit of the fullest part, which is over its target, so the
    donor stays above ``target - m`` and the receiver below its target: the shortfall shrinks, nothing
    else leaves the band. Returns the number of units moved.
    """
    m, moved = sizes.max(), 0
    excess = np.bincount(part, weights=sizes, minlength=len(target)) - target
    while excess.min() <= -m:
        short, full = int(excess.argmin()), int(excess.argmax())
        donors = np.flatnonzero(part == full)
        fits = donors[sizes[donors] <= excess[full]]  # the donor stays at or above its target if it can
        i = fits[np.argmax(sizes[fits])] if len(fits) else donors[np.argmin(sizes[donors])]
        part[i] = short
        excess[short] += sizes[i]
        excess[full] -= sizes[i]
        moved += 1
    return moved


def check_units_fit(df: pd.DataFrame, units: np.ndarray, parts: Sequence[tuple[str, float]], *,
                    duplicates: str, where: str = "group column") -> None:
    """Raise a :class:`DataError` if the largest unit holds more rows than the smallest part's share.

    Every part then ends non-empty and within one unit of its target (see :func:`allocate_units`).
    ``parts`` holds (description in the user's terms, fraction of ``df``'s rows) per part.
    """
    codes = pd.factorize(pd.Series(units))[0]
    sizes = np.bincount(codes)
    label, frac = min(parts, key=lambda p: p[1])
    capacity = frac / sum(p[1] for p in parts) * len(df)
    if sizes.max() <= capacity:
        return
    rows = codes == sizes.argmax()
    if capacity < 1:
        raise DataError(f"{label} asks for {capacity:.2g} of {len(df):,} rows, less than one row. "
                        "Give it a larger share, or use more data.")
    what, fix = _describe_unit(df, rows, duplicates, where)
    raise DataError(f"{label} asks for {capacity:,.0f} of {len(df):,} rows, but {what}: "
                    f"more than that part can hold. {fix}")


def _describe_unit(df: pd.DataFrame, rows: np.ndarray, duplicates: str, where: str) -> tuple[str, str]:
    """(what the too-large unit is, how to fix it), in the user's terms."""
    groups, named, n_rows = _group_keys(df), ~_empty_groups(df) & ("group" in df), int(rows.sum())
    in_unit = np.unique(groups[rows & named])  # the user's groups in the unit (empty cells left out)
    if len(in_unit) > 1 and duplicates == "link":
        shared = _shared_texts(df)
        shared = shared[shared["text"].isin(set(df.loc[rows, "text"]))]
        examples = ", ".join(f"{t[:40]!r} ({g} groups)" for t, g in zip(shared["text"][:4], shared["groups"][:4]))
        short = int((shared["text"].str.split().str.len() <= 3).sum())
        return (f'split.duplicates = "link" keeps every group ({where}) and every repeated text together, and '
                f"{len(in_unit):,} of {len(np.unique(groups[named])):,} groups are linked through "
                f"{len(shared):,} identical text(s) that occur in more than one group (e.g. {examples}; "
                f"{short:,} of them 3 words or shorter) into one unit of {n_rows:,} rows", _SWITCH_HINT)
    if len(in_unit) == 1:
        name = df.loc[rows & named, "group"].iloc[0]
        extra = "" if (rows & named).sum() == n_rows else " with the rows that share its texts"
        return (f"the largest group, {name!r} ({where}), holds {n_rows:,} rows{extra}",
                "Ask for a larger share there, split such large groups, or use more data.")
    text = str(df.loc[rows, "text"].iloc[0])
    return (f"the text {text[:60]!r} occurs {n_rows:,} times (identical texts are kept together)",
            'Drop the repeated copies, or set split.duplicates = "keep_groups" so that copies in different '
            "groups (or rows without a group) may fall into different splits.")


def _shared_texts(df: pd.DataFrame) -> pd.DataFrame:
    """Texts occurring in more than one group: columns ``text``, ``groups`` (count), most groups first."""
    frame = pd.DataFrame({"text": df["text"].to_numpy(), "g": _group_keys(df), "d": _dup_keys(df)})
    per = frame.groupby("d").agg(text=("text", "first"), groups=("g", "nunique"))
    return per[per["groups"] > 1].sort_values("groups", ascending=False, kind="stable").reset_index(drop=True)


def _part_plan(cfg: SplitConfig) -> tuple[list[str], list[tuple[str, float]]]:
    """Part names and (description in the user's terms, fraction) per part, for the configured method."""
    if cfg.method == "kfold":
        k = cfg.n_folds
        return [f"fold {i}" for i in range(k)], [(f"each of split.n_folds = {k} folds", 1 / k)] * k
    fracs = (cfg.train, cfg.val, cfg.test)
    names = ("training", "validation", "test")
    return list(SPLITS), [(f"split.{s} = {f:g} (the {n} split)", f) for s, f, n in zip(SPLITS, fracs, names)]


def split_with_facts(df: pd.DataFrame, label_columns: list[str], cfg: SplitConfig | None = None, *,
                     group_column: str | None = None) -> tuple[pd.DataFrame, SplitFacts]:
    """Assign every row to train/val/test (or to a fold), and say what was done.

    Parameters
    ----------
    df : cleaned canonical table (``id``, ``text``, labels, optional ``group``, ``dup_group``)
    label_columns : label columns (one split serves them all)
    cfg : split settings
    group_column : the user's name of the group column, for messages (e.g. ``cfg.data.group_column``)

    Returns
    -------
    splits : DataFrame with columns ``id``, ``split`` ("train"/"val"/"test", or "cv" in k-fold mode),
        ``fold`` (int: index in ("train", "val", "test"), or the fold), ``stratum`` (str), ``unit`` (int);
        one row per input row, same order
    facts : :class:`SplitFacts`
    """
    cfg = cfg or SplitConfig()
    where = f"group_column {group_column!r}" if group_column else "group column"
    _warn_empty_groups(df, where)
    units = split_units(df, cfg.duplicates)
    names, parts = _part_plan(cfg)
    column = _read_column(df, cfg.column) if cfg.method == "column" else None  # errors before the slow part
    if column is None:
        check_units_fit(df, units, parts, duplicates=cfg.duplicates, where=where)
    st = strata(df["text"], df[label_columns].to_numpy(), n_clusters=cfg.n_clusters,
                min_stratum=cfg.min_stratum, seed=cfg.seed)
    out = pd.DataFrame({"id": df["id"].to_numpy(), "stratum": st, "unit": units})
    carved = None
    if column is not None:
        out["split"], out["fold"], carved = _from_column(df, column, cfg, st, label_columns, where)
    else:
        out["fold"] = allocate_units(units, st, [f for _, f in parts], seed=cfg.seed,
                                     labels=df[label_columns].to_numpy())
        out["split"] = "cv" if cfg.method == "kfold" else np.asarray(SPLITS, dtype=object)[out["fold"]]
    check_splits(df, out, label_columns)
    requested = {} if cfg.method == "column" else dict(zip(names, (f for _, f in parts)))
    facts = _facts(df, out, cfg, requested=requested, carved=carved)
    _log_straddles(facts, where)
    return out[["id", "split", "fold", "stratum", "unit"]], facts


def make_splits(df: pd.DataFrame, label_columns: list[str], cfg: SplitConfig | None = None, *,
                group_column: str | None = None) -> pd.DataFrame:
    """The ``splits`` of :func:`split_with_facts`; its facts are in ``.attrs["split_facts"]`` (a dict)."""
    splits, facts = split_with_facts(df, label_columns, cfg, group_column=group_column)
    splits.attrs["split_facts"] = facts.to_dict()
    return splits


def _warn_empty_groups(df: pd.DataFrame, where: str) -> None:
    n = int(_empty_groups(df).sum())
    if n:
        log.warning("%d row(s) have an empty %s cell: each such row is treated as a group of its own "
                    "(fill the cell to keep rows of one case/document together).", n, where)


def _read_column(df: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(split per row, fold per row or None) from the user's split column: names or fold numbers."""
    if column not in df.columns:
        raise DataError(f"split.column = {column!r} is not a column of the data. Add it, or choose "
                        "split.method = \"cluster_stratified\".")
    as_num = pd.to_numeric(df[column], errors="coerce")
    if as_num.notna().all() and (as_num % 1 == 0).all():
        folds = pd.factorize(as_num.astype(int), sort=True)[0]
        if folds.max() < 2:
            raise DataError(f"split column {column!r} holds only {folds.max() + 1} fold number(s); k-fold "
                            "needs at least 3 (test, validation and training folds).")
        return np.full(len(df), "cv", dtype=object), folds
    return _split_names(df, column), None


def _from_column(df: pd.DataFrame, column: tuple[np.ndarray, np.ndarray | None], cfg: SplitConfig,
                 st: np.ndarray, label_columns: list[str], where: str
                 ) -> tuple[np.ndarray, np.ndarray, float | None]:
    """(split, fold, share of train carved into val or None) from :func:`_read_column`'s result."""
    names, folds = column
    if folds is not None:
        return names, folds, None
    carved = None
    if "val" not in set(names):
        names, carved = _carve_validation(df, names, cfg, st, label_columns, where)
    return names, pd.Series(names).map({s: i for i, s in enumerate(SPLITS)}).to_numpy(), carved


def _split_names(df: pd.DataFrame, column: str) -> np.ndarray:
    """The column's values as train/val/test; a clear error for anything else or a missing part."""
    values = df[column]
    names = values.astype(str).str.strip().str.lower().map(_SPLIT_ALIASES)
    if names.isna().any():
        bad = values[names.isna()]
        rows = df.loc[names.isna(), "source_row"] if "source_row" in df else bad.index + 1
        raise DataError(f"split column {column!r} must hold train/val/test (validation, valid and dev also "
                        f"mean val) or fold numbers; rows {list(rows[:10])} hold "
                        f"{sorted(set(map(str, bad[:5])))}.")
    found = sorted(set(names), key=SPLITS.index)
    missing = [s for s in ("train", "test") if s not in found]
    if missing:
        raise DataError(f"split column {column!r} holds only {found} rows; it needs train and test rows "
                        f"(missing: {missing}; validation rows are carved out of train when absent). "
                        "Mark the missing rows, or use split.method = \"cluster_stratified\".")
    return names.to_numpy(dtype=object)


def _carve_validation(df: pd.DataFrame, names: np.ndarray, cfg: SplitConfig, st: np.ndarray,
                      label_columns: list[str], where: str) -> tuple[np.ndarray, float]:
    """Move whole units (stratified) of the column's train rows into a validation split."""
    share = cfg.val / (cfg.train + cfg.val)
    train = names == "train"
    sub = df.loc[train].reset_index(drop=True)
    units = split_units(sub, cfg.duplicates)
    label = (f"the validation split carved out of the train rows of split column {cfg.column!r} "
             f"(split.val / (split.train + split.val) = {share:.3g})")
    check_units_fit(sub, units, [("the rest of the train rows", 1 - share), (label, share)],
                    duplicates=cfg.duplicates, where=where)
    part = allocate_units(units, st[train], [1 - share, share], seed=cfg.seed,
                          labels=sub[label_columns].to_numpy())
    names = names.copy()
    names[np.flatnonzero(train)[part == 1]] = "val"
    log.info("Split column %r has no validation rows: %d of its %d train rows (%.1f%%, whole units, stratified; "
             "share = split.val / (split.train + split.val) = %.3g) became the validation split.",
             cfg.column, int((part == 1).sum()), int(train.sum()), 100 * (part == 1).mean(), share)
    return names, share


def _facts(df: pd.DataFrame, out: pd.DataFrame, cfg: SplitConfig, *, requested: dict[str, float],
           carved: float | None) -> SplitFacts:
    part = part_names(out)
    groups, dups, empty = _group_keys(df), _dup_keys(df), _empty_groups(df)
    real = ~empty & ("group" in df)  # rows with a group value of the user's
    shared = (_groups_per_dup(groups, dups) > 1) & ("group" in df)  # texts found in several groups

    def straddling(key: np.ndarray, rows: np.ndarray) -> int:
        frame = pd.DataFrame({"k": key[rows], "p": part[rows]})
        return int((frame.groupby("k")["p"].nunique() > 1).sum())

    counts = pd.Series(part).value_counts()
    order = [s for s in SPLITS if s in counts.index] or sorted(counts.index, key=lambda p: int(p.split()[-1]))
    return SplitFacts(
        method=cfg.method, duplicates=cfg.duplicates, rows=len(df), groups=len(np.unique(groups[real])),
        empty_group_rows=int(empty.sum()), units=int(out["unit"].nunique()),
        linked_groups=len(np.unique(groups[real & shared])), shared_texts=len(np.unique(dups[shared])),
        largest_unit_rows=int(out["unit"].value_counts().max()),
        straddling_groups=straddling(groups, real), straddling_duplicates=straddling(dups, np.ones(len(df), bool)),
        requested={k: round(float(v), 6) for k, v in requested.items()},
        realised={p: round(float(counts[p] / len(df)), 6) for p in order},
        rows_per_split={p: int(counts[p]) for p in order}, val_from_train=carved)


def _log_straddles(facts: SplitFacts, where: str) -> None:
    """Say what straddles splits (a warning when it is the user's own split column)."""
    level = logging.WARNING if facts.method == "column" else logging.INFO
    if facts.straddling_groups:
        log.log(level, "%d group(s) (%s) have rows in more than one split (split.method = %r, "
                "split.duplicates = %r).", facts.straddling_groups, where, facts.method, facts.duplicates)
    if facts.straddling_duplicates:
        log.log(level, "%d identical text(s) have copies in more than one split (split.method = %r, "
                "split.duplicates = %r).", facts.straddling_duplicates, facts.method, facts.duplicates)


def assign_folds(strata_: np.ndarray, units: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold index (0..n_folds-1) per row: whole units, strata spread evenly, equal-size folds.

    Each fold holds ``n / n_folds`` rows to within one largest unit (see :func:`allocate_units`).
    """
    n_units = len(np.unique(units))
    if n_units < n_folds:
        raise DataError(f"Only {n_units} independent groups of rows (documents/cases/duplicate texts) "
                        f"but {n_folds} folds were requested. Use fewer folds or more data.")
    return allocate_units(units, strata_, [1 / n_folds] * n_folds, seed=seed)


def part_names(splits: pd.DataFrame) -> np.ndarray:
    """Per row: its split ("train"/"val"/"test"), or "fold <i>" in k-fold mode."""
    split = splits["split"].to_numpy()
    return np.where(split == "cv", "fold " + splits["fold"].astype(str).to_numpy(dtype=object), split)


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
    parts = cv_partitions(splits)
    for i, part in enumerate(parts):
        pos = Y[part["train"]].sum(axis=0)
        n = part["train"].sum()
        for label, p in zip(label_columns, pos):
            if p == 0 or p == n:
                what = "positive (1)" if p == 0 else "negative (0)"
                where = "the training split" if len(parts) == 1 else f"the training part of fold {i}"
                other = "use another split seed or larger split.train" if len(parts) == 1 else "use fewer folds"
                total = int(df[label].sum())
                raise DataError(
                    f"Label '{label}' has no {what} example in {where} ({total} positive(s) in all "
                    f"{len(df)} rows). A model cannot learn it: code more examples, drop the label from "
                    f"label_columns, or {other}.")


def class_indicators(df: pd.DataFrame, class_columns: list[str]) -> pd.DataFrame:
    """One 0/1 column per (categorical variable, class), named ``"<variable> = <class>"``.

    The split stratifies and balances these like 0/1 labels, so every class is spread over the parts in
    proportion (stratified by class x TF-IDF cluster) and a class missing from training is an error.
    """
    columns = {}
    for variable in class_columns:
        for value in sorted(df[variable].dropna().unique()):
            columns[f"{variable} = {value}"] = (df[variable] == value).to_numpy(dtype=np.int8)
    return pd.DataFrame(columns, index=df.index)


def prevalence_table(df: pd.DataFrame, splits: pd.DataFrame, label_columns: list[str]) -> pd.DataFrame:
    """Rows and label prevalence (share of 1s) per split (or fold)."""
    grouped = df[label_columns].groupby(part_names(splits))
    table = grouped.mean().T
    table.loc["rows"] = grouped.size()
    order = [s for s in SPLITS if s in table.columns] or sorted(table.columns)
    return table[order]
