"""Loading and validation: every supported format, label normalisation, and each bad-input error."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lexcoder.config import DataConfig
from lexcoder.data import load_dataset
from lexcoder.errors import DataError
from lexcoder.io import read_table


@pytest.fixture()
def small(tos_docs, tos_labels) -> pd.DataFrame:
    """200 real ToS sentences with their 9 labels."""
    return tos_docs.head(200)[["id", "doc_id", "text", *tos_labels]].copy()


def cfg_for(path, labels, **extra) -> DataConfig:
    return DataConfig(path=str(path), text_column="text", id_column="id", label_columns=labels, **extra)


@pytest.mark.parametrize("ext", [".csv", ".tsv", ".parquet", ".jsonl", ".xlsx", ".dta", ".csv.gz"])
def test_every_format_loads_the_same_table(tmp_path, small, tos_labels, ext):
    path = tmp_path / f"data{ext}"
    if ext in (".csv", ".csv.gz"):
        small.to_csv(path, index=False)
    elif ext == ".tsv":
        small.to_csv(path, sep="\t", index=False)
    elif ext == ".parquet":
        small.to_parquet(path)
    elif ext == ".jsonl":
        small.to_json(path, orient="records", lines=True)
    elif ext == ".xlsx":
        small.to_excel(path, index=False)
    else:
        small.to_stata(path, write_index=False, version=118)
    df, report = load_dataset(cfg_for(path, tos_labels, group_column="doc_id"))
    assert report.rows_kept == len(small)
    assert df["id"].tolist() == small["id"].astype(str).tolist()
    assert df["text"].tolist() == small["text"].tolist()
    assert df["group"].tolist() == small["doc_id"].astype(str).tolist()
    np.testing.assert_array_equal(df[tos_labels].to_numpy(), small[tos_labels].to_numpy())


def test_true_false_yes_no_labels_are_normalised(tmp_path, small):
    small = small.head(6).copy()
    small["remorse"] = ["yes", "No", "TRUE", "false", "1", "0"]
    small.to_csv(tmp_path / "d.csv", index=False)
    df, _ = load_dataset(cfg_for(tmp_path / "d.csv", ["remorse"]))
    assert df["remorse"].tolist() == [1, 0, 1, 0, 1, 0]
    assert str(df["remorse"].dtype) == "int8"


def test_invalid_label_names_rows_and_column(tmp_path, small, tos_labels):
    small = small.copy()
    small["arbitration"] = small["arbitration"].astype(object)
    small.loc[[3, 7], "arbitration"] = ["maybe", "2"]
    small.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError) as err:
        load_dataset(cfg_for(tmp_path / "d.csv", tos_labels))
    msg = str(err.value)
    assert "d.csv" in msg and "'arbitration'" in msg and "4, 8" in msg and "maybe" in msg


def test_missing_label_is_an_error_unless_dropped(tmp_path, small, tos_labels):
    small = small.copy()
    small["jurisdiction"] = small["jurisdiction"].astype(object)
    small.loc[[0, 5, 9], "jurisdiction"] = None
    small.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError, match=r"(?s)'jurisdiction' is empty in rows 1, 6, 10.*drop_missing_labels"):
        load_dataset(cfg_for(tmp_path / "d.csv", tos_labels))
    df, report = load_dataset(cfg_for(tmp_path / "d.csv", tos_labels, drop_missing_labels=True))
    assert report.dropped_missing_labels == 3 and len(df) == len(small) - 3


def test_a_class_written_as_a_missing_value_mark_is_named_as_such(tmp_path, small):
    """A codebook class called "none" (nobody argues) reads as missing: the message says why and how to rename."""
    small = small.assign(speaker=["court", "none", "state"] * (len(small) // 3) + ["court"] * (len(small) % 3))
    small.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError, match=r"(?s)'speaker' is empty in rows 2, 5, 8.*missing-value mark.*'none'.*renamed"):
        load_dataset(cfg_for(tmp_path / "d.csv", [], class_columns=["speaker"]))
    small.assign(speaker=small["speaker"].replace("none", "no_one")).to_csv(tmp_path / "d.csv", index=False)
    df, _ = load_dataset(cfg_for(tmp_path / "d.csv", [], class_columns=["speaker"]))
    assert set(df["speaker"]) == {"court", "no_one", "state"}


def test_missing_column_suggests_the_right_name(tmp_path, small):
    small.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError) as err:
        load_dataset(cfg_for(tmp_path / "d.csv", ["arbitraton"]))
    assert "arbitraton" in str(err.value) and "did you mean 'arbitration'" in str(err.value)


def test_duplicate_ids_name_the_rows(tmp_path, small, tos_labels):
    small = small.copy()
    small.loc[10, "id"] = small.loc[2, "id"]
    small.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError, match=r"must be unique.*rows 3, 11"):
        load_dataset(cfg_for(tmp_path / "d.csv", tos_labels))


def test_generated_ids_when_no_id_column(tmp_path, small, tos_labels):
    small.drop(columns="id").to_csv(tmp_path / "d.csv", index=False)
    df, report = load_dataset(DataConfig(path=str(tmp_path / "d.csv"), label_columns=tos_labels))
    assert report.generated_ids and df["id"].iloc[0] == "row_1" and df["id"].is_unique


def test_empty_texts_are_an_error_unless_dropped(tmp_path, small, tos_labels):
    small = small.copy()
    small.loc[[4, 12], "text"] = ["", "   "]
    small.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError, match=r"'text' \(text_column\) is empty in rows 5, 13"):
        load_dataset(cfg_for(tmp_path / "d.csv", tos_labels))
    df, report = load_dataset(cfg_for(tmp_path / "d.csv", tos_labels, drop_empty_texts=True))
    assert report.dropped_empty_texts == 2 and len(df) == len(small) - 2


@pytest.mark.parametrize("name, content, expected", [
    ("d.parquet", b"this is not parquet", "could not be read as PARQUET"),
    ("d.csv", "text,arbitration\n\"unclosed,1\n".encode(), "could not be read as CSV"),
    ("d.csv", "text,arbitration\ncaf\xe9,1\n".encode("latin-1"), "not UTF-8"),
    ("d.xlsx", b"PK\x03\x04 truncated zip", "could not be read as XLSX"),
    ("d.docx", b"whatever", "unsupported file type"),
])
def test_unreadable_files_give_a_clear_error(tmp_path, name, content, expected):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match=expected) as err:
        read_table(tmp_path / name)
    assert name in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_table(tmp_path / "nope.csv")


def test_numeric_ids_are_canonical_text(tmp_path, small, tos_labels):
    """Excel stores numeric ids as numbers (123 or 123.0); they must match the same id written as text."""
    from lexcoder.data import id_to_str
    assert [id_to_str(v) for v in (123, 123.0, " 123", "A-7", np.int64(5))] == ["123", "123", "123", "A-7", "5"]
    small = small.assign(id=np.arange(1000, 1000 + len(small)))
    small.to_excel(tmp_path / "d.xlsx", index=False)
    df, _ = load_dataset(cfg_for(tmp_path / "d.xlsx", tos_labels))
    assert df["id"].iloc[0] == "1000"
