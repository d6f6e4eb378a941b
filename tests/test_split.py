"""Split invariants on real data: complete, whole groups and duplicates, requested fractions, clear errors.

Data: the bundled ToS sentences (group = ``doc_id``) and the Indian Supreme Court rhetorical-role sentences
(group = judgment), whose repeated boilerplate ("1.", "Appeal dismissed") links nearly all documents.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from lexcoder.clean import clean
from lexcoder.config import DataConfig, SplitConfig
from lexcoder.data import validate_table
from lexcoder.errors import DataError
from lexcoder.split import cv_partitions, make_splits, part_names, split_with_facts

ISC = "indian_sc_rhetorical_roles/texts.csv.gz"


def _prepare(raw: pd.DataFrame, labels: list[str], group: str | None) -> pd.DataFrame:
    df, _ = validate_table(raw, DataConfig(path="test", id_column="id", label_columns=labels, group_column=group))
    return clean(df, labels)[0]


@pytest.fixture(scope="module")
def prepared(tos_docs, tos_labels):
    return _prepare(tos_docs, tos_labels, "doc_id")


@pytest.fixture(scope="module")
def isc(shared_data):
    """Indian Supreme Court sentences, one 0/1 column per rhetorical role; returns (table, labels)."""
    raw = pd.read_csv(shared_data(ISC))
    roles = pd.get_dummies(raw["label"]).astype(int)
    roles.columns = [c.lower().replace(" ", "_") for c in roles.columns]
    labels = list(roles.columns)
    return _prepare(pd.concat([raw.drop(columns="label"), roles], axis=1), labels, "group"), labels


def _spread(key, splits) -> pd.Series:
    """Per key value: in how many splits (or folds) its rows are."""
    return pd.DataFrame({"k": np.asarray(key), "p": part_names(splits)}).groupby("k")["p"].nunique()


def _within_one_unit(splits, fractions: dict[str, float]) -> bool:
    """Each part's row count is within (less than) one largest unit of fraction × rows."""
    rows = pd.Series(part_names(splits)).value_counts()
    largest = splits["unit"].value_counts().max()
    return all(abs(rows.get(p, 0) - f * len(splits)) < largest for p, f in fractions.items())


def _shared_by_most_groups(df) -> str:
    return df.groupby("text")["group"].nunique().idxmax()


def test_keep_groups_invariants(prepared, tos_labels):
    splits, facts = split_with_facts(prepared, tos_labels, SplitConfig(seed=3, duplicates="keep_groups"))
    assert splits["id"].tolist() == prepared["id"].tolist()  # complete, same order
    assert set(splits["split"]) == {"train", "val", "test"}
    assert (_spread(prepared["group"], splits) == 1).all()  # no document straddles
    dup_spread = _spread(prepared["dup_group"], splits)
    assert facts.straddling_groups == 0 and facts.straddling_duplicates == int((dup_spread > 1).sum()) > 0
    train = splits["split"] == "train"
    assert (prepared.loc[train.to_numpy(), tos_labels].sum() > 0).all()
    assert _within_one_unit(splits, {"train": 0.6, "val": 0.2, "test": 0.2})
    assert facts.rows_per_split == splits["split"].value_counts().to_dict()


@pytest.mark.parametrize("data", ["tos", "isc"])
def test_link_refuses_when_shared_texts_join_most_groups(data, prepared, tos_labels, request):
    """Issue #10, defect 1: boilerplate shared by documents used to be moved afterwards, so documents straddled."""
    if data == "tos":
        df, labels, column = prepared, tos_labels, "doc_id"
    else:
        (df, labels), column = request.getfixturevalue("isc"), "group"
    with pytest.raises(DataError) as err:
        make_splits(df, labels, SplitConfig(), group_column=column)
    msg = str(err.value)
    assert f"group_column {column!r}" in msg and repr(_shared_by_most_groups(df)[:40]) in msg
    assert 'split.duplicates = "keep_groups"' in msg and '"keep_duplicates"' in msg and "split.val = 0.2" in msg


def test_link_keeps_groups_and_repeated_texts_together(tos_docs, tos_labels):
    """Without the short boilerplate, shared texts link some documents into units that fit."""
    df = _prepare(tos_docs[tos_docs["text"].str.split().str.len() > 3], tos_labels, "doc_id")
    splits, facts = split_with_facts(df, tos_labels, SplitConfig(seed=1))
    assert (_spread(df["group"], splits) == 1).all() and (_spread(df["dup_group"], splits) == 1).all()
    shared = df.groupby("dup_group")["group"].nunique() > 1
    assert facts.linked_groups == df.loc[df["dup_group"].isin(shared[shared].index), "group"].nunique() > 0
    assert facts.units < facts.groups and facts.straddling_groups == facts.straddling_duplicates == 0
    assert _within_one_unit(splits, facts.requested)


def test_keep_duplicates_lets_groups_straddle_and_counts_them(isc):
    df, labels = isc
    splits, facts = split_with_facts(df, labels, SplitConfig(seed=0, duplicates="keep_duplicates"))
    assert (_spread(df["dup_group"], splits) == 1).all()
    groups = _spread(df["group"], splits)
    assert facts.straddling_groups == int((groups > 1).sum()) > 0 and facts.straddling_duplicates == 0
    assert facts.linked_groups > 0 and facts.shared_texts > 0


def test_empty_group_cells_are_groups_of_their_own(tos_docs, tos_labels, caplog):
    """Issue #10, defect 2: rows with an empty group cell used to be pooled into one giant group ""."""
    raw = tos_docs.copy()
    blank = raw["doc_id"].isin(sorted(raw["doc_id"].unique())[:3])
    raw.loc[blank, "doc_id"] = None
    df = _prepare(raw, tos_labels, "doc_id")
    with caplog.at_level(logging.WARNING, logger="lexcoder.split"):
        splits, facts = split_with_facts(df, tos_labels, SplitConfig(duplicates="keep_groups"),
                                         group_column="doc_id")
    assert facts.empty_group_rows == int(blank.sum())
    assert splits.loc[blank.to_numpy(), "unit"].nunique() == blank.sum()  # one unit per row
    assert splits.loc[blank.to_numpy(), "split"].nunique() == 3
    assert f"{blank.sum()} row(s) have an empty group_column 'doc_id' cell" in caplog.text


def test_requested_fractions_are_honoured(tos_docs, tos_labels):
    """Issue #10, defect 3: 0.98/0.01/0.01 used to become 0.90/0.05/0.05 (at most 20 folds)."""
    df = _prepare(tos_docs, tos_labels, None)
    cfg = SplitConfig(train=0.98, val=0.01, test=0.01, seed=0)
    splits, facts = split_with_facts(df, tos_labels, cfg)
    assert facts.requested == {"train": 0.98, "val": 0.01, "test": 0.01}
    assert _within_one_unit(splits, facts.requested)
    assert facts.realised == (splits["split"].value_counts() / len(df)).round(6).to_dict()


def test_too_small_a_share_for_the_largest_group_is_explained_in_the_users_terms(prepared, tos_labels):
    cfg = SplitConfig(train=0.98, val=0.01, test=0.01, duplicates="keep_groups")
    with pytest.raises(DataError) as err:
        make_splits(prepared, tos_labels, cfg, group_column="doc_id")
    msg = str(err.value)
    biggest = prepared["group"].value_counts()
    assert "split.val = 0.01" in msg
    assert f"{biggest.index[0]!r} (group_column 'doc_id'), holds {biggest.iloc[0]:,} rows" in msg
    assert "fold" not in msg  # no internal fold counts the user never asked for


def test_kfold_partitions_cover_every_row_once(prepared, tos_labels):
    splits = make_splits(prepared, tos_labels, SplitConfig(method="kfold", n_folds=5, seed=0,
                                                            duplicates="keep_groups"))
    parts = cv_partitions(splits)
    assert len(parts) == 5
    tested = np.sum([p["test"] for p in parts], axis=0)
    assert (tested == 1).all()
    for p in parts:
        assert not (p["train"] & (p["val"] | p["test"])).any()
    assert _within_one_unit(splits, {f"fold {i}": 0.2 for i in range(5)})
    assert splits.attrs["split_facts"]["straddling_groups"] == 0


def test_column_mode_uses_the_authors_folds(prepared, tos_labels):
    splits = make_splits(prepared, tos_labels, SplitConfig(method="column", column="fold"))
    assert (splits["split"] == "cv").all()
    np.testing.assert_array_equal(splits["fold"], pd.factorize(prepared["fold"], sort=True)[0])


@pytest.mark.parametrize("train_name", ["train", "Training"])
def test_column_with_train_and_test_only_carves_validation_out_of_train(prepared, tos_labels, train_name, caplog):
    """Issue #10, defect 4: a train/test column used to end in a traceback and a half-written run."""
    df = prepared.assign(part=np.where(prepared["fold"] == 0, "test", train_name))
    cfg = SplitConfig(method="column", column="part", train=0.6, val=0.2, test=0.2, duplicates="keep_groups")
    with caplog.at_level(logging.INFO, logger="lexcoder.split"):
        splits, facts = split_with_facts(df, tos_labels, cfg)
    was_train = (df["part"] == train_name).to_numpy()
    assert (splits["split"].to_numpy()[~was_train] == "test").all()
    carved = splits[was_train]
    assert set(carved["split"]) == {"train", "val"} and facts.val_from_train == 0.25
    assert _within_one_unit(carved, {"train": 0.75, "val": 0.25})
    assert (_spread(df["group"], splits) == 1).all()
    assert "no validation rows" in caplog.text and "0.25" in caplog.text


@pytest.mark.parametrize("val_name", ["validation", "dev", "valid"])
def test_column_accepts_validation_aliases(prepared, tos_labels, val_name):
    names = np.array(["train", val_name, "test", "train", "train"], dtype=object)
    df = prepared.assign(part=names[prepared["fold"].to_numpy() % 5])
    splits = make_splits(df, tos_labels, SplitConfig(method="column", column="part"))
    assert (splits["split"].to_numpy()[(df["part"] == val_name).to_numpy()] == "val").all()


@pytest.mark.parametrize("values, missing", [(["train"], "['test']"), (["val", "test"], "['train']")])
def test_column_without_train_or_test_rows_is_a_clear_error(prepared, tos_labels, values, missing):
    df = prepared.assign(part=np.array(values, dtype=object)[np.arange(len(prepared)) % len(values)])
    with pytest.raises(DataError) as err:
        make_splits(df, tos_labels, SplitConfig(method="column", column="part"))
    assert f"split column 'part' holds only {values} rows; it needs train and test rows" in str(err.value)
    assert f"missing: {missing}" in str(err.value)


def test_split_is_seeded(prepared, tos_labels):
    cfg = dict(duplicates="keep_groups")
    a = make_splits(prepared, tos_labels, SplitConfig(seed=1, **cfg))
    b = make_splits(prepared, tos_labels, SplitConfig(seed=1, **cfg))
    c = make_splits(prepared, tos_labels, SplitConfig(seed=2, **cfg))
    pd.testing.assert_frame_equal(a, b)
    assert a.attrs == b.attrs
    assert not a["split"].equals(c["split"])


def test_without_groups_strata_balance_label_prevalence(tos_full, tos_labels):
    df = _prepare(tos_full, tos_labels, None)
    splits = make_splits(df, tos_labels, SplitConfig(seed=0))
    prev = df[tos_labels].groupby(splits["split"].to_numpy()).mean()
    # stratification keeps each label's prevalence within 30% (relative) of the overall prevalence
    overall = df[tos_labels].mean()
    assert ((prev - overall).abs() / overall).max().max() < 0.3


def test_label_without_training_positive_is_a_clear_error(prepared, tos_labels):
    df = prepared.copy()
    splits = make_splits(df, tos_labels, SplitConfig(seed=3, duplicates="keep_groups"))
    # keep 'arbitration' positives only outside the training split
    train = (splits["split"] == "train").to_numpy()
    df.loc[train, "arbitration"] = 0
    df["split_col"] = splits["split"].to_numpy()
    with pytest.raises(DataError, match="Label 'arbitration' has no positive .* training split"):
        make_splits(df, tos_labels, SplitConfig(method="column", column="split_col"))
