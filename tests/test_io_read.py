"""Reading tables: what a researcher's file really is (delimiter, encoding, content vs extension), and one
clear DataError naming the file, line, sheet or column for every file lexcoder cannot read."""
from __future__ import annotations

import gzip
import json
import logging
import os
import zipfile

import pandas as pd
import pytest

import lexcoder.io.read as lio  # the reader module: the names its helpers look up are patched there
from lexcoder.errors import DataError
from lexcoder.io import count_rows, excel_sheet_columns, iter_table, read_table

LABELS = ["limitation_of_liability", "unilateral_termination"]


@pytest.fixture()
def table(tos_docs) -> pd.DataFrame:
    """60 real ToS sentences (with commas, semicolons and quotes in the texts), ids as text."""
    return tos_docs.head(60)[["id", "text", *LABELS]].astype({"id": str, LABELS[0]: str, LABELS[1]: str})


def same_table(df: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert df.columns.tolist() == expected.columns.tolist()
    assert df.astype(str).to_numpy().tolist() == expected.astype(str).to_numpy().tolist()


# -- delimiters -------------------------------------------------------------------------------------
@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_a_csv_with_another_delimiter_is_detected_and_logged(tmp_path, table, sep, caplog):
    assert table["text"].str.contains(",").any()  # commas inside the texts must not fool the detection
    table.to_csv(tmp_path / "d.csv", sep=sep, index=False)
    with caplog.at_level(logging.INFO, logger="lexcoder.io"):
        df = read_table(tmp_path / "d.csv")
    same_table(df, table)
    assert any("separated by" in r.getMessage() and lio._DELIMITERS[sep] in r.getMessage() for r in caplog.records)


def test_a_tsv_holding_commas_is_detected(tmp_path, table):
    table.to_csv(tmp_path / "d.tsv", index=False)  # comma-separated, saved as .tsv
    same_table(read_table(tmp_path / "d.tsv"), table)


def test_a_plain_comma_csv_logs_nothing(tmp_path, table, caplog):
    table.to_csv(tmp_path / "d.csv", index=False)
    with caplog.at_level(logging.INFO, logger="lexcoder.io"):
        same_table(read_table(tmp_path / "d.csv"), table)
    assert not [r for r in caplog.records if "separated by" in r.getMessage()]


def test_an_ambiguous_delimiter_is_reported(tmp_path):
    (tmp_path / "d.csv").write_text("a;b|c\n1;2|3\n4;5|6\n", encoding="utf-8")
    with pytest.raises(DataError, match="cannot tell which character separates") as err:
        read_table(tmp_path / "d.csv")
    assert "semicolons" in str(err.value) and "vertical bars" in str(err.value)


def test_a_row_with_an_unquoted_delimiter_names_the_row(tmp_path, table):
    lines = table.to_csv(index=False).splitlines()
    lines[3] = lines[3] + ",extra"  # data row 3 gets one field too many
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"data row 3 has 5 fields but the header has 4.*commas must be in "
                                        r"double quotes"):
        read_table(tmp_path / "d.csv")


# -- encodings and line endings ----------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_byte_order_marks_are_understood(tmp_path, table, encoding):
    table.to_csv(tmp_path / "d.csv", index=False, encoding=encoding)
    df = read_table(tmp_path / "d.csv")
    same_table(df, table)  # the first column is "id", not "\ufeffid"


def test_latin1_names_the_line_and_shows_it(tmp_path, table):
    text = table.to_csv(index=False).splitlines()
    text[5] = text[5].replace(text[5].split(",")[0], "caf\u00e9", 1)
    (tmp_path / "d.csv").write_bytes(("\n".join(text) + "\n").encode("latin-1", errors="replace"))
    with pytest.raises(DataError) as err:
        read_table(tmp_path / "d.csv")
    msg = str(err.value)
    assert "not UTF-8" in msg and "line 6" in msg and "0xE9" in msg and "café" in msg and "UTF-8" in msg


def test_windows_line_endings_leave_no_carriage_returns(tmp_path, table):
    (tmp_path / "d.csv").write_bytes(table.to_csv(index=False, lineterminator="\r\n").encode("utf-8"))
    df = read_table(tmp_path / "d.csv")
    same_table(df, table)
    assert not df["text"].str.contains("\r").any()


def test_a_one_megabyte_cell_is_read_whole(tmp_path, table):
    big = table.copy()
    big.loc[0, "text"] = ("The provider may terminate, at any time; " * 30_000)[:1_000_000]
    for name in ("d.csv", "d.jsonl"):
        path = tmp_path / name
        big.to_csv(path, index=False) if name.endswith("csv") else big.to_json(path, orient="records", lines=True)
        df = read_table(path)
        assert len(df) == len(big) and len(df.loc[0, "text"]) == 1_000_000
        assert df.loc[1:, "text"].tolist() == big.loc[1:, "text"].tolist()


def test_ids_like_007_stay_text(tmp_path):
    frame = pd.DataFrame({"id": ["007", "7", "0.50"], "text": ["a", "b", "c"], "x": ["1", "0", "1"]})
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_json(tmp_path / "d.jsonl", orient="records", lines=True)
    for name in ("d.csv", "d.jsonl"):
        assert read_table(tmp_path / name)["id"].tolist() == ["007", "7", "0.50"]


# -- files that are not what they claim -------------------------------------------------------------
def test_a_zero_byte_file(tmp_path):
    (tmp_path / "d.csv").write_bytes(b"")
    with pytest.raises(DataError, match=r"d\.csv: the file is empty \(0 bytes\)"):
        read_table(tmp_path / "d.csv")


def test_blank_lines_only(tmp_path):
    (tmp_path / "d.csv").write_text("\n\n  \n", encoding="utf-8")
    with pytest.raises(DataError, match="only blank lines"):
        read_table(tmp_path / "d.csv")


def test_a_folder_instead_of_a_file_lists_its_tables(tmp_path, table):
    (tmp_path / "coded").mkdir()
    table.to_csv(tmp_path / "coded" / "letters.csv", index=False)
    with pytest.raises(DataError, match=r"is a folder, not a file.*letters\.csv"):
        read_table(tmp_path / "coded")


def test_a_missing_file_suggests_a_near_name(tmp_path, table):
    table.to_csv(tmp_path / "letters.csv", index=False)
    with pytest.raises(DataError, match=r"file not found \(did you mean 'letters\.csv'\?\)"):
        read_table(tmp_path / "leters.csv")
    with pytest.raises(DataError, match="does not exist either"):
        read_table(tmp_path / "nofolder" / "letters.csv")


def test_no_read_permission_is_reported(tmp_path, table, monkeypatch):
    path = tmp_path / "d.csv"
    table.to_csv(path, index=False)
    monkeypatch.setattr(lio.os, "access", lambda p, mode: os.fspath(p) != os.fspath(path))
    with pytest.raises(DataError, match="no permission to read"):
        read_table(path)
    monkeypatch.undo()

    def refuse(file, *args, **kwargs):  # what open() does for a file of another user
        raise PermissionError(13, "Permission denied", str(file))
    monkeypatch.setattr(lio, "open", refuse, raising=False)
    with pytest.raises(DataError, match="no permission to read"):
        read_table(path)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads every file")
def test_no_read_permission_for_real(tmp_path, table):
    path = tmp_path / "d.csv"
    table.to_csv(path, index=False)
    path.chmod(0)
    with pytest.raises(DataError, match="no permission to read"):
        read_table(path)


def test_binary_garbage_named_csv(tmp_path):
    (tmp_path / "d.csv").write_bytes(bytes(range(256)) * 16)
    with pytest.raises(DataError, match=r"d\.csv: could not be read as CSV: the file is binary data"):
        read_table(tmp_path / "d.csv")


def test_a_csv_named_xlsx(tmp_path, table):
    table.to_csv(tmp_path / "d.xlsx", index=False)
    with pytest.raises(DataError, match=r"could not be read as XLSX: the file is plain text.*rename it to end in "
                                        r"\.csv"):
        read_table(tmp_path / "d.xlsx")


def test_a_workbook_named_csv(tmp_path, table):
    table.to_excel(tmp_path / "d.csv", index=False, engine="openpyxl")
    with pytest.raises(DataError, match=r"zip archive.*Rename it to end in \.xlsx"):
        read_table(tmp_path / "d.csv")


def test_a_text_file_named_dta_and_a_parquet_named_dta(tmp_path, table):
    table.to_csv(tmp_path / "d.dta", index=False)
    with pytest.raises(DataError, match="could not be read as DTA: the file is plain text"):
        read_table(tmp_path / "d.dta")
    table.to_parquet(tmp_path / "e.dta")
    with pytest.raises(DataError, match=r"a Parquet file.*Rename it to end in \.parquet"):
        read_table(tmp_path / "e.dta")


def test_old_excel_files(tmp_path):
    (tmp_path / "d.xls").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504))
    with pytest.raises(DataError, match=r"unsupported file type \.xls \(an Excel 97-2003 workbook: .*\.xlsx"):
        read_table(tmp_path / "d.xls")
    (tmp_path / "d.xlsx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504))  # or password-protected
    with pytest.raises(DataError, match="password-protected.*save it as Excel Workbook"):
        read_table(tmp_path / "d.xlsx")


def test_compression_that_the_name_does_not_say(tmp_path, table):
    (tmp_path / "d.csv").write_bytes(gzip.compress(table.to_csv(index=False).encode()))
    with pytest.raises(DataError, match=r"gzip-compressed.*Rename it to d\.csv\.gz"):
        read_table(tmp_path / "d.csv")
    table.to_csv(tmp_path / "e.csv.gz", index=False, compression=None)
    with pytest.raises(DataError, match=r"not gzip-compressed \(it is plain text\)\. Rename it to e\.csv"):
        read_table(tmp_path / "e.csv.gz")


def test_compressed_text_tables_are_read_and_sniffed(tmp_path, table):
    (tmp_path / "d.csv.gz").write_bytes(gzip.compress(table.to_csv(index=False, sep=";").encode()))
    same_table(read_table(tmp_path / "d.csv.gz"), table)
    with zipfile.ZipFile(tmp_path / "two.csv.zip", "w") as z:
        z.writestr("a.csv", "x,y\n1,2\n")
        z.writestr("b.csv", "x,y\n1,2\n")
    with pytest.raises(DataError, match="exactly one table file; this one holds 2"):
        read_table(tmp_path / "two.csv.zip")


# -- column names ------------------------------------------------------------------------------------
def test_duplicate_column_names_in_a_csv(tmp_path, table):
    body = table.to_csv(index=False).replace(f"{LABELS[1]}\n", f"{LABELS[0]}\n", 1)
    (tmp_path / "d.csv").write_text(body, encoding="utf-8")
    with pytest.raises(DataError, match=rf"names the column '{LABELS[0]}' 2 times \(columns 3, 4\)"):
        read_table(tmp_path / "d.csv")
    with pytest.raises(DataError, match="2 times"):
        next(iter_table(tmp_path / "d.csv"))


def test_duplicate_column_names_in_a_workbook(tmp_path, table):
    table.set_axis(["id", "text", "code", "code"], axis=1).to_excel(tmp_path / "d.xlsx", index=False)
    with pytest.raises(DataError, match=r"\(sheet 'Sheet1'\): the header names the column 'code' 2 times"):
        read_table(tmp_path / "d.xlsx")


def test_numeric_header_cells_become_text_names(tmp_path):
    pd.DataFrame([[1, "a"], [2, "b"]], columns=[2020, "text"]).to_excel(tmp_path / "d.xlsx", index=False)
    df = read_table(tmp_path / "d.xlsx")
    assert df.columns.tolist() == ["2020", "text"] and df["2020"].tolist() == [1, 2]


# -- Excel sheets --------------------------------------------------------------------------------------
def test_sheets_unknown_name_and_number(tmp_path, table):
    with pd.ExcelWriter(tmp_path / "d.xlsx") as w:
        pd.DataFrame({"note": ["read me"]}).to_excel(w, sheet_name="Info", index=False)
        table.to_excel(w, sheet_name="Coded", index=False)
    same_table(read_table(tmp_path / "d.xlsx", sheet="Coded"), table)
    same_table(read_table(tmp_path / "d.xlsx", sheet=1), table)
    with pytest.raises(DataError, match=r"no sheet named 'coded' \(did you mean 'Coded'\?\).*'Info', 'Coded'"):
        read_table(tmp_path / "d.xlsx", sheet="coded")
    with pytest.raises(DataError, match=r"sheet = 5, but the workbook has 2 sheet\(s\)"):
        read_table(tmp_path / "d.xlsx", sheet=5)
    assert excel_sheet_columns(tmp_path / "d.xlsx") == {"Info": ["note"], "Coded": table.columns.tolist()}


# -- JSON lines -------------------------------------------------------------------------------------
def test_a_broken_jsonl_line_names_the_line_not_a_byte_offset(tmp_path, table):
    lines = table.to_json(orient="records", lines=True).splitlines()
    lines[41] = lines[41][:-15]  # cut off the end of record 42
    (tmp_path / "d.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_table(tmp_path / "d.jsonl")
    assert "line 42 is not valid JSON" in str(err.value) and repr(lines[41][:40])[:-1] in str(err.value)
    with pytest.raises(DataError, match="line 42"):  # streaming in chunks: the same line number
        list(iter_table(tmp_path / "d.jsonl", chunksize=10))


def test_jsonl_lines_must_be_objects(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"id": 1, "text": "a"}\n[2, "b"]\n', encoding="utf-8")
    with pytest.raises(DataError, match="line 2 holds a JSON list, not an object"):
        read_table(tmp_path / "d.jsonl")
    (tmp_path / "p.json").write_text('{\n  "id": 1,\n  "text": "a"\n}\n', encoding="utf-8")
    with pytest.raises(DataError, match="line 1 .*pretty-printed JSON file is not JSON lines"):
        read_table(tmp_path / "p.json")


def test_a_json_array_and_a_bom_are_read(tmp_path, table):
    (tmp_path / "d.json").write_text(table.to_json(orient="records"), encoding="utf-8")
    same_table(read_table(tmp_path / "d.json"), table)
    (tmp_path / "b.jsonl").write_text(table.to_json(orient="records", lines=True), encoding="utf-8-sig")
    same_table(read_table(tmp_path / "b.jsonl"), table)


# -- streaming and counting ------------------------------------------------------------------------
def test_iter_table_streams_detected_delimiters_and_keeps_the_columns_of_an_empty_table(tmp_path, table):
    table.to_csv(tmp_path / "d.csv", sep=";", index=False)
    chunks = list(iter_table(tmp_path / "d.csv", chunksize=25))
    assert [len(c) for c in chunks] == [25, 25, 10]
    same_table(pd.concat(chunks, ignore_index=True), table)
    table.head(0).to_csv(tmp_path / "h.csv", index=False)
    table.head(0).to_parquet(tmp_path / "h.parquet")
    for name in ("h.csv", "h.parquet"):
        chunks = list(iter_table(tmp_path / name))
        assert len(chunks) == 1 and chunks[0].empty and chunks[0].columns.tolist() == table.columns.tolist()


def test_count_rows_never_raises(tmp_path, table):
    table.to_parquet(tmp_path / "d.parquet")
    assert count_rows(tmp_path / "d.parquet") == len(table)
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 but then nothing")
    assert count_rows(tmp_path / "bad.parquet") is None and count_rows(tmp_path / "none.parquet") is None
    with pytest.raises(DataError, match="could not be read as PARQUET"):  # the reader says what is wrong
        next(iter_table(tmp_path / "bad.parquet"))


def test_stata_value_labels_arrive_as_their_labels(tmp_path):
    frame = pd.DataFrame({"id": ["a", "b", "c"], "text": ["x y", "y z", "z x"],
                          "remorse": pd.Categorical(["yes", "no", "yes"])})
    frame.to_stata(tmp_path / "d.dta", write_index=False, version=118)
    assert read_table(tmp_path / "d.dta")["remorse"].astype(str).tolist() == ["yes", "no", "yes"]


def test_json_lines_written_by_pandas_read_back_the_same(tmp_path, table):
    """Our own JSON-lines reader (for line numbers) reads what pandas writes, keys in their order."""
    table.to_json(tmp_path / "d.jsonl", orient="records", lines=True)
    df = read_table(tmp_path / "d.jsonl")
    assert df.columns.tolist() == table.columns.tolist()
    assert [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()][0]["id"] == df["id"][0]


def test_random_bytes_named_csv_and_a_stray_control_character_in_a_cell(tmp_path):
    import random
    (tmp_path / "noise.csv").write_bytes(random.Random(0).randbytes(20_000))
    with pytest.raises(DataError, match="the file is binary data"):
        read_table(tmp_path / "noise.csv")
    (tmp_path / "d.csv").write_bytes(b'id,text,x\n1,"arbi\x00tration clause",1\n2,plain,0\n')
    assert read_table(tmp_path / "d.csv")["text"].tolist() == ["arbi\x00tration clause", "plain"]  # cleaned later
