"""Property-based tests of the loaders: whatever a researcher's table holds, every format lexcoder reads gives
back the same ids, texts and codes, and a bad cell is a DataError, never another exception."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lexcoder.config import DataConfig
from lexcoder.data import load_dataset
from lexcoder.errors import DataError
from lexcoder.io import write_table

# printable text incl. accents, quotes, delimiters, formula starters and line breaks (XLSX forbids control
# characters, so none of those)
CHARS = st.characters(blacklist_categories=("Cs", "Cc"), whitelist_characters="\n\t")
TEXT = st.text(CHARS, min_size=1, max_size=40).filter(lambda t: t.strip() != "")
ID = st.text(st.characters(whitelist_categories=("Lu", "Ll", "Nd"), whitelist_characters="-_./"),
             min_size=1, max_size=8)
CODE = st.sampled_from(["0", "1", "yes", "no", "TRUE", "false", "1.0", "0.0"])
FORMATS = ["csv", "tsv", "jsonl", "parquet", "xlsx", "csv.gz"]
SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def tables(draw):
    n = draw(st.integers(1, 12))
    ids = draw(st.lists(ID, min_size=n, max_size=n, unique_by=lambda i: i.strip()))
    texts = draw(st.lists(TEXT, min_size=n, max_size=n))
    return pd.DataFrame({"id": ids, "text": texts, "a": draw(st.lists(CODE, min_size=n, max_size=n)),
                         "b": draw(st.lists(CODE, min_size=n, max_size=n))})


def _load(table: pd.DataFrame, fmt: str) -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"data.{fmt}"
        write_table(table, path)
        df, _ = load_dataset(DataConfig(path=str(path), id_column="id", label_columns=["a", "b"]))
    return df


@pytest.mark.parametrize("fmt", FORMATS)
@SETTINGS
@given(table=tables())
def test_every_format_reads_back_ids_texts_and_codes(fmt, table):
    df = _load(table, fmt)
    assert df["id"].tolist() == [i.strip() for i in table["id"]]
    expected_texts = table["text"].tolist()
    if fmt in ("csv", "tsv", "csv.gz", "xlsx"):  # text formats and Excel store line breaks as \n
        expected_texts = [t.replace("\r\n", "\n").replace("\r", "\n") for t in expected_texts]
    assert df["text"].tolist() == expected_texts
    truth = {"0": 0, "1": 1, "yes": 1, "no": 0, "true": 1, "false": 0, "1.0": 1, "0.0": 0}
    for col in ("a", "b"):
        assert df[col].tolist() == [truth[v.lower()] for v in table[col]]


@SETTINGS
@given(table=tables(), bad=st.one_of(TEXT, st.integers(-5, 5).map(str)), row=st.integers(0, 11),
       fmt=st.sampled_from(["csv", "jsonl", "xlsx"]))
def test_a_bad_code_is_a_data_error_naming_the_column(table, bad, row, fmt):
    row %= len(table)
    table.loc[row, "b"] = bad
    try:
        df = _load(table, fmt)
    except DataError as err:
        assert "'b'" in str(err)
    else:  # the cell was a valid spelling of 0/1 after all
        assert df["b"].isin([0, 1]).all()
