"""Split invariants on real data: disjoint, complete, groups and duplicates intact, labels in train."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lexcoder.clean import clean
from lexcoder.config import SplitConfig
from lexcoder.data import validate_table
from lexcoder.config import DataConfig
from lexcoder.errors import DataError
from lexcoder.split import cv_partitions, make_splits


@pytest.fixture(scope="module")
def prepared(tos_docs, tos_labels):
    cfg = DataConfig(path="tos", id_column="id", label_columns=tos_labels, group_column="doc_id")
    df, _ = validate_table(tos_docs, cfg)
    df, _, _ = clean(df, tos_labels)
    return df


def _groups_intact(df, splits):
    """Each group sits in one split, apart from copies of texts that also occur in other groups."""
    shared = df.groupby("dup_group")["group"].transform("nunique") > 1
    own = pd.DataFrame({"g": df["group"], "s": splits["split"] + splits["fold"].astype(str)})[~shared.to_numpy()]
    return (own.groupby("g")["s"].nunique() == 1).all()


def test_train_val_test_invariants(prepared, tos_labels):
    splits = make_splits(prepared, tos_labels, SplitConfig(seed=3))
    assert splits["id"].tolist() == prepared["id"].tolist()  # complete, same order
    assert set(splits["split"]) == {"train", "val", "test"}  # disjoint by construction: one value per row
    assert _groups_intact(prepared, splits)
    dup_spread = pd.DataFrame({"d": prepared["dup_group"], "s": splits["split"]}).groupby("d")["s"].nunique()
    assert (dup_spread == 1).all()  # no exact duplicate on both sides of a split
    train = splits["split"] == "train"
    assert (prepared.loc[train.to_numpy(), tos_labels].sum() > 0).all()
    shares = splits["split"].value_counts(normalize=True)
    assert 0.45 < shares["train"] < 0.75 and 0.1 < shares["test"] < 0.3  # 60/20/20 by whole documents


def test_split_is_seeded(prepared, tos_labels):
    a = make_splits(prepared, tos_labels, SplitConfig(seed=1))
    b = make_splits(prepared, tos_labels, SplitConfig(seed=1))
    c = make_splits(prepared, tos_labels, SplitConfig(seed=2))
    pd.testing.assert_frame_equal(a, b)
    assert not a["split"].equals(c["split"])


def test_without_groups_strata_balance_label_prevalence(tos_full, tos_labels):
    cfg = DataConfig(path="tos", id_column="id", label_columns=tos_labels)
    df, _ = validate_table(tos_full, cfg)
    df, _, _ = clean(df, tos_labels)
    splits = make_splits(df, tos_labels, SplitConfig(seed=0))
    prev = df[tos_labels].groupby(splits["split"].to_numpy()).mean()
    # stratification keeps each label's prevalence within 30% (relative) of the overall prevalence
    overall = df[tos_labels].mean()
    assert ((prev - overall).abs() / overall).max().max() < 0.3


def test_kfold_partitions_cover_every_row_once(prepared, tos_labels):
    splits = make_splits(prepared, tos_labels, SplitConfig(method="kfold", n_folds=5, seed=0))
    parts = cv_partitions(splits)
    assert len(parts) == 5
    tested = np.sum([p["test"] for p in parts], axis=0)
    assert (tested == 1).all()
    for p in parts:
        assert not (p["train"] & (p["val"] | p["test"])).any()


def test_column_mode_uses_the_authors_folds(prepared, tos_labels):
    splits = make_splits(prepared, tos_labels, SplitConfig(method="column", column="fold"))
    assert (splits["split"] == "cv").all()
    np.testing.assert_array_equal(splits["fold"], pd.factorize(prepared["fold"], sort=True)[0])


def test_label_without_training_positive_is_a_clear_error(prepared, tos_labels):
    df = prepared.copy()
    splits = make_splits(df, tos_labels, SplitConfig(seed=3))
    # keep 'arbitration' positives only outside the training split
    train = (splits["split"] == "train").to_numpy()
    df.loc[train, "arbitration"] = 0
    df["split_col"] = splits["split"].to_numpy()
    with pytest.raises(DataError, match="Label 'arbitration' has no positive .* training split"):
        make_splits(df, tos_labels, SplitConfig(method="column", column="split_col"))
