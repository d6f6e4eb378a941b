"""Properties of the split over generated small tables (Hypothesis).

Tables: random groups (some cells empty), identical texts repeated within and across groups, random 0/1
labels, random fractions, every ``split.duplicates`` mode, train/val/test and k-fold. Whatever the table,
the split either keeps its promises or refuses with a clear :class:`DataError`:

- no unit straddles, and neither do groups (``link``, ``keep_groups``) nor identical texts (``link``,
  ``keep_duplicates``); a row with an empty group cell is never pooled with other rows by its empty cell;
- every split (fold) holds ``fraction × rows`` rows to within less than one largest unit;
- the same data and seed give the same split.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, reject, settings
from hypothesis import strategies as st

from lexcoder.clean import clean
from lexcoder.config import DataConfig, SplitConfig
from lexcoder.data import validate_table
from lexcoder.errors import DataError
from lexcoder.split import _top_up, allocate_units, part_names, split_with_facts

LABELS = ["remorse", "hardship"]
WORDS = ["court", "appeal", "contract", "liability", "clause", "terms", "notice", "damages", "party", "law",
         "judgment", "remorse", "hardship", "sentence", "letter", "record"]
FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def tables(draw) -> pd.DataFrame:
    """A cleaned table of 20-60 rows: groups with empty cells, texts repeated across groups, two 0/1 labels.

    Hypothesis draws the shape (rows, groups, share of empty cells, how often texts repeat, seed); a seeded
    generator fills the cells, which keeps generation fast.
    """
    n = draw(st.integers(20, 60))
    n_groups = draw(st.integers(3, n // 2))
    empty = draw(st.sampled_from([0.0, 0.1, 0.5]))
    n_texts = draw(st.integers((2 * n) // 3, n))  # most texts unique, some repeated across groups
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    pool = [" ".join(rng.choice(WORDS, size=rng.integers(2, 7))) + f" item{i}" for i in range(n_texts)]
    raw = pd.DataFrame({"id": [f"r{i}" for i in range(n)], "text": rng.choice(pool, size=n),
                        "case": [None if rng.random() < empty else f"case{g}"
                                 for g in rng.integers(0, n_groups, n)]})
    for label in LABELS:
        raw[label] = (rng.random(n) < rng.uniform(0.2, 0.6)).astype(int)
    df, _ = validate_table(raw, DataConfig(path="generated", id_column="id", label_columns=LABELS,
                                           group_column="case"))
    return clean(df, LABELS)[0]


@st.composite
def configs(draw) -> SplitConfig:
    weights = draw(st.lists(st.integers(3, 8), min_size=3, max_size=3))
    train, val, test = (w / sum(weights) for w in weights)
    return SplitConfig(method=draw(st.sampled_from(["cluster_stratified", "kfold"])),
                       n_folds=draw(st.integers(3, 4)), train=train, val=val, test=1 - train - val, n_clusters=4,
                       duplicates=draw(st.sampled_from(["link", "keep_groups", "keep_duplicates"])),
                       seed=draw(st.integers(0, 2**16)))


def _split_or_reject(df: pd.DataFrame, cfg: SplitConfig):
    """The split, or (after checking that the refusal is clear and in the user's terms) a rejected example."""
    try:
        return split_with_facts(df, LABELS, cfg, group_column="case")
    except DataError as err:
        msg = str(err)
        assert "split." in msg or msg.startswith("Label '"), msg  # names the setting (or label) to change
        if cfg.method == "cluster_stratified":
            assert "fold" not in msg, msg  # never internal fold counts the user did not ask for
        event("refused: " + ("label" if msg.startswith("Label") else "unit too large"))
        reject()


def _spread(key, splits, rows=None) -> pd.Series:
    frame = pd.DataFrame({"k": np.asarray(key), "p": part_names(splits)})
    return frame[rows if rows is not None else slice(None)].groupby("k")["p"].nunique()


@pytest.mark.slow  # several seconds on 2 cores: CI runs it (make test); the quick suite (-m 'not slow') does not
@FAST
@given(df=tables(), cfg=configs())
def test_nothing_straddles_that_the_mode_keeps_together(df, cfg):
    splits, facts = _split_or_reject(df, cfg)
    assert splits["id"].tolist() == df["id"].tolist()
    assert (_spread(splits["unit"], splits) == 1).all()
    named = (df["group"] != "").to_numpy()
    groups, texts = _spread(df["group"], splits, named), _spread(df["dup_group"], splits)
    if cfg.duplicates in ("link", "keep_groups"):
        assert (groups == 1).all() and facts.straddling_groups == 0
    if cfg.duplicates in ("link", "keep_duplicates"):
        assert (texts == 1).all() and facts.straddling_duplicates == 0
    assert facts.straddling_groups == int((groups > 1).sum())
    assert facts.straddling_duplicates == int((texts > 1).sum())
    if cfg.duplicates == "keep_groups":  # one unit per group; an empty cell is a group of its own
        assert splits.loc[~named, "unit"].nunique() == (~named).sum()
        pairs = pd.DataFrame({"u": splits["unit"], "g": df["group"]})[named]
        assert (pairs.groupby("u")["g"].nunique() == 1).all() and (pairs.groupby("g")["u"].nunique() == 1).all()


@pytest.mark.slow  # several seconds on 2 cores: CI runs it (make test); the quick suite (-m 'not slow') does not
@FAST
@given(df=tables(), cfg=configs())
def test_each_split_is_within_one_unit_of_its_fraction(df, cfg):
    splits, facts = _split_or_reject(df, cfg)
    rows = pd.Series(part_names(splits)).value_counts()
    largest = splits["unit"].value_counts().max()
    expected = ({"train": cfg.train, "val": cfg.val, "test": cfg.test} if cfg.method == "cluster_stratified"
                else {f"fold {i}": 1 / cfg.n_folds for i in range(cfg.n_folds)})
    assert facts.requested == {k: round(v, 6) for k, v in expected.items()}
    for part, fraction in expected.items():
        assert abs(rows.get(part, 0) - fraction * len(df)) < largest, (part, rows.to_dict(), largest)
    assert facts.largest_unit_rows == largest and facts.rows_per_split == rows.to_dict()


@pytest.mark.slow  # several seconds on 2 cores: CI runs it (make test); the quick suite (-m 'not slow') does not
@FAST
@given(df=tables(), cfg=configs())
def test_same_data_and_seed_give_the_same_split(df, cfg):
    first, facts = _split_or_reject(df, cfg)
    again, facts_again = split_with_facts(df.copy(), LABELS, cfg, group_column="case")
    pd.testing.assert_frame_equal(first, again)
    assert facts == facts_again


@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_allocation_bound_holds_for_any_units_strata_and_fractions(data):
    """The core guarantee without TF-IDF: whole units, |rows - fraction × n| < largest unit, seeded."""
    n = data.draw(st.integers(1, 200))
    units = np.array(data.draw(st.lists(st.integers(0, data.draw(st.integers(0, n))), min_size=n, max_size=n)))
    strata_ = np.array(data.draw(st.lists(st.sampled_from("abcdef"), min_size=n, max_size=n)), dtype=object)
    fractions = data.draw(st.lists(st.floats(0.01, 1), min_size=2, max_size=6))
    seed = data.draw(st.integers(0, 1000))
    labels = np.array(data.draw(st.lists(st.lists(st.integers(0, 1), min_size=2, max_size=2), min_size=n,
                                         max_size=n))) if data.draw(st.booleans()) else None
    part = allocate_units(units, strata_, fractions, seed=seed, labels=labels)
    largest = pd.Series(units).value_counts().max()
    rows = np.bincount(part, minlength=len(fractions))
    assert (np.abs(rows - np.asarray(fractions) / sum(fractions) * n) < largest).all()
    assert (pd.DataFrame({"u": units, "p": part}).groupby("u")["p"].nunique() == 1).all()
    np.testing.assert_array_equal(part, allocate_units(units, strata_, fractions, seed=seed, labels=labels))


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_zero_targets_get_nothing_and_warn_nothing():
    """A label without positives and a part of share 0 have zero targets: no division warning, and the
    empty part receives no row."""
    labels = np.zeros((20, 2), int)
    labels[:5, 1] = 1
    part = allocate_units(np.arange(20), np.array(["a"] * 20, dtype=object), [0.5, 0.5, 0.0], seed=1, labels=labels)
    assert np.bincount(part, minlength=3).tolist() == [10, 10, 0]


@settings(max_examples=50, deadline=None)
@given(sizes=st.lists(st.integers(1, 9), min_size=1, max_size=30), data=st.data())
def test_top_up_leaves_no_part_short_by_a_largest_unit(sizes, data):
    """The repair pass after the greedy one (rarely needed there), from an arbitrary assignment."""
    sizes = np.array(sizes)
    k = data.draw(st.integers(2, 5))
    part = np.array(data.draw(st.lists(st.integers(0, k - 1), min_size=len(sizes), max_size=len(sizes))))
    target = np.full(k, sizes.sum() / k)
    _top_up(part, sizes, target)
    assert (np.bincount(part, weights=sizes, minlength=k) - target > -sizes.max()).all()
