"""Bad input, from a hostile tester's chair: every problem gives ONE clear message naming the file, row,
column or key and the fix (a DataError/ConfigError in Python; "Error: ..." and exit code 2 on the command
line, with no traceback and nothing written)."""
from __future__ import annotations

import errno
import os

import numpy as np
import pandas as pd
import pytest
import tomli_w
from typer.testing import CliRunner

from lexcoder.clean import clean_text
from lexcoder.cli import app
from lexcoder.config import DataConfig, config_from_dict, example_config, load_config
from lexcoder.data import load_dataset
from lexcoder.errors import ConfigError, DataError
from lexcoder.models import build_model
from lexcoder.models.params import check_model_params
from lexcoder.models.tfidf import TfidfClassifier

LABELS = ["limitation_of_liability", "unilateral_termination"]
runner = CliRunner()


@pytest.fixture()
def coded(tos_docs) -> pd.DataFrame:
    """240 real ToS sentences, every positive of the two labels among them (so a model can be trained)."""
    pos = tos_docs[tos_docs[LABELS].sum(axis=1) > 0].head(40)
    neg = tos_docs[tos_docs[LABELS].sum(axis=1) == 0].head(200)
    return pd.concat([pos, neg]).sample(frac=1, random_state=0)[["id", "doc_id", "text", *LABELS]]


def write_project(tmp_path, frame: pd.DataFrame, name: str = "coded.csv", **toml) -> os.PathLike:
    """The table as ``name`` and a config ``my.toml`` pointing at it; returns the config path."""
    path = tmp_path / name
    if name.endswith(".csv"):
        frame.to_csv(path, index=False)
    elif name.endswith(".xlsx"):
        frame.to_excel(path, index=False)
    else:
        frame.to_parquet(path)
    cfg = {"data": {"path": name, "text_column": "text", "id_column": "id", "label_columns": LABELS}}
    for section, values in toml.items():
        cfg.setdefault(section, {}).update(values)
    (tmp_path / "my.toml").write_text(tomli_w.dumps(cfg), encoding="utf-8")
    return tmp_path / "my.toml"


def data_cfg(path, **extra) -> DataConfig:
    return DataConfig(**{"path": str(path), "text_column": "text", "id_column": "id", "label_columns": LABELS,
                         **extra})


def fails_cleanly(args: list[str], *expected: str) -> str:
    """Run the CLI; it must exit with 2, print one "Error:" and no traceback, and say ``expected``."""
    result = runner.invoke(app, args)
    out = result.output
    assert result.exit_code == 2, out
    assert "Error" in out and "Traceback" not in out, out
    assert not isinstance(result.exception, Exception), result.exception  # only typer's SystemExit
    flat = " ".join(out.split())  # rich wraps long lines
    for words in expected:
        assert words in flat, flat
    return flat


# -- 1. a header-only table ------------------------------------------------------------------------
def test_header_only_csv(tmp_path, coded, monkeypatch):
    config = write_project(tmp_path, coded.head(0))
    with pytest.raises(DataError, match=r"coded\.csv: the table has column names \(id, doc_id, text, .*\) but "
                                        "no data rows"):
        load_dataset(load_config(config).data)
    monkeypatch.chdir(tmp_path)
    fails_cleanly(["run", "my.toml", "--out", "runs/x"], "no data rows")
    assert not (tmp_path / "runs").exists()


# -- 2. texts TF-IDF cannot learn from ------------------------------------------------------------
def test_single_digit_texts_give_a_clear_error():
    Y = np.array([[i % 2] for i in range(60)])
    with pytest.raises(DataError, match=r"60 training texts give TF-IDF no words.*min_df = 1.*\['0', '1', "
                                        r"'2', '3', '4'\]. Check that text_column names the column with the texts"):
        TfidfClassifier(min_df=1).fit([str(i % 10) for i in range(60)], Y)


def test_texts_that_share_no_word_suggest_a_lower_min_df():
    """text_column pointing at an id column: every "word" occurs once, fewer times than min_df."""
    texts, Y = [f"A-{100_000 + i}" for i in range(60)], np.array([[i % 2] for i in range(60)])
    with pytest.raises(DataError, match=r"no words to learn from.*min_df = 2.*or lower the model.s min_df setting"):
        TfidfClassifier().fit(texts, Y)
    assert TfidfClassifier(min_df=1).fit(texts, Y).predict_proba(texts[:2]).shape == (2, 1)  # the advice works


def test_identical_texts_still_fit():
    """All texts the same: nothing to learn, but no crash; every text gets the same probability."""
    model = TfidfClassifier().fit(["the same clause"] * 20, np.array([[i % 2] for i in range(20)]))
    P = model.predict_proba(["the same clause", "another clause"])
    assert P.shape == (2, 1) and np.isfinite(P).all()


def test_digit_texts_through_the_cli(tmp_path, coded, monkeypatch):
    coded = coded.assign(text=[str(i % 10) for i in range(len(coded))])
    write_project(tmp_path, coded)
    monkeypatch.chdir(tmp_path)
    fails_cleanly(["run", "my.toml", "--out", "runs/x"], "no words to learn from", "min_df")
    assert not (tmp_path / "runs" / "x" / "models").exists()


# -- 3. model parameters, checked before any data is read ------------------------------------------
@pytest.mark.parametrize("params, words", [
    ({"C": "lots"}, ["C = 'lots': expected a number > 0 or \"auto\""]),
    ({"min_df": -3}, ["min_df = -3: expected an integer >= 1"]),
    ({"ngram_mx": 3}, ["ngram_mx = 3: unknown key (did you mean 'ngram_max'?)", "Valid [model.params] keys"]),
    ({"C": 0, "char_ngrams": "maybe"}, ["C = 0: expected a number > 0", "char_ngrams = 'maybe': expected true or"]),
    ({"class_weight": "none", "max_features": 0}, ['class_weight = \'none\': expected "balanced"',
                                                   "max_features = 0: expected an integer >= 1"]),
])
def test_invalid_tfidf_params(params, words):
    with pytest.raises(ConfigError) as err:
        check_model_params("tfidf", None, params, source="my.toml")
    for w in ["my.toml", 'kind = "tfidf"', *words]:
        assert w in str(err.value)
    with pytest.raises(ConfigError, match=words[0].split(":")[0].replace("(", r"\(")):
        build_model("tfidf", params=params)  # the Python API says the same


def test_valid_params_pass_and_a_name_for_tfidf_is_refused():
    assert check_model_params("tfidf", None, {"C": "auto", "min_df": 1, "ngram_max": 3}) == \
        {"C": "auto", "min_df": 1, "ngram_max": 3}
    with pytest.raises(ConfigError, match=r'name = \'minilm\': kind = "tfidf" uses no pretrained model'):
        config_from_dict({"data": {"path": "x.csv", "label_columns": ["a"]}, "model": {"name": "minilm"}})


def test_encoder_params_are_checked_against_its_constructor():
    pytest.importorskip("torch")
    with pytest.raises(ConfigError) as err:
        check_model_params("encoder", "minilm", {"lr": "fast", "max_lenght": 64, "lora_r": 8})
    msg = str(err.value)
    assert "lr = 'fast': expected a number" in msg and "did you mean 'max_length'" in msg
    assert "lora_r = 8: unknown key" in msg  # an LLM setting is not an encoder setting


def test_bad_params_stop_the_run_before_the_data_is_read(tmp_path, monkeypatch):
    """The data file does not even exist: the params error comes first, and nothing is written."""
    (tmp_path / "my.toml").write_text(tomli_w.dumps({
        "data": {"path": "missing.csv", "label_columns": LABELS},
        "model": {"params": {"C": "lots", "min_df": -3, "ngram_mx": 3}}}), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    out = fails_cleanly(["run", "my.toml", "--out", "runs/x"], "C = 'lots'", "min_df = -3", "ngram_max")
    assert "missing.csv" not in out and not (tmp_path / "runs").exists()


# -- 4. config files in other encodings --------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_config_with_a_byte_order_mark(tmp_path, coded, encoding):
    config = write_project(tmp_path, coded)
    text = config.read_text(encoding="utf-8") + "# Kündigung, café\n"
    config.write_bytes(text.encode(encoding))
    assert load_config(config).data.label_columns == LABELS


def test_latin1_config_names_the_line(tmp_path, coded, monkeypatch):
    config = write_project(tmp_path, coded)
    config.write_bytes(config.read_bytes() + "# Kündigung\n".encode("latin-1"))
    n = len(config.read_bytes().splitlines())
    with pytest.raises(ConfigError, match=rf"my\.toml is not UTF-8 text: line {n} has the byte 0xFC.*Kündigung"):
        load_config(config)
    monkeypatch.chdir(tmp_path)
    fails_cleanly(["run", "my.toml", "--out", "runs/x"], "not UTF-8", "Re-save the config file as UTF-8")
    assert not (tmp_path / "runs").exists()


def test_config_that_is_a_folder_or_has_a_data_value(tmp_path):
    with pytest.raises(ConfigError, match="is a folder, not a config file"):
        load_config(tmp_path)
    (tmp_path / "c.toml").write_text('data = "coded.csv"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"data = 'coded\.csv': Input should be a valid dictionary"):
        load_config(tmp_path / "c.toml")
    (tmp_path / "c.toml").write_text('[data]\npth = "coded.csv"\nlabel_columns = ["a"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"data\.pth: unknown key \(did you mean 'path'\?\)"):
        load_config(tmp_path / "c.toml")


# -- 5. lexcoder init --------------------------------------------------------------------------------
def test_init_creates_missing_folders_and_refuses_to_overwrite(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["init", "projects/new/my.toml"])
    assert result.exit_code == 0 and "Created the folder projects/new" in result.output
    assert (tmp_path / "projects/new/my.toml").read_text(encoding="utf-8") == example_config()
    (tmp_path / "projects/new/my.toml").write_text("# mine\n", encoding="utf-8")
    fails_cleanly(["init", "projects/new/my.toml"], "exists; pass --force")
    assert (tmp_path / "projects/new/my.toml").read_text(encoding="utf-8") == "# mine\n"
    fails_cleanly(["init", "projects"], "is a folder; give a file name")
    fails_cleanly(["init", "projects/new/my.toml/x.toml"], "is a file, so it cannot hold")


def test_init_writes_atomically(tmp_path, monkeypatch):
    """A write that fails at the last step (disk full) leaves the old file as it was, and no debris."""
    (tmp_path / "my.toml").write_text("# mine\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "replace", disk_full)
    fails_cleanly(["init", "my.toml", "--force"], "No space left on device")
    assert (tmp_path / "my.toml").read_text(encoding="utf-8") == "# mine\n"
    assert [p.name for p in tmp_path.iterdir()] == ["my.toml"]


# -- 6. --set -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("item, words", [
    ("foo", "expected section.key=value"),
    (".x=1", "expected section.key=value"),
    ("data..path=x", "expected section.key=value"),
    ("model.params=3", "model.params is a table; set one key inside it"),
    ("nosuchsection.key=1", "there is no section 'nosuchsection'"),
    ("data.pth=x", "[data] has no key 'pth' (did you mean 'path'?)"),
    ("data.path.x=1", "data.path is a single value, not a table"),
    ("split=3", "expected section.key=value"),
    ("data.label_columns=[a, b]", "the value is not valid TOML; put strings in quotes"),
    ("model.params.ngram_mx=3", "ngram_mx = 3: unknown key (did you mean 'ngram_max'?)"),
])
def test_malformed_overrides(tmp_path, coded, item, words):
    config = write_project(tmp_path, coded)
    with pytest.raises(ConfigError) as err:
        load_config(config, [item])
    assert words in str(err.value)


def test_malformed_override_on_the_command_line(tmp_path, coded, monkeypatch):
    write_project(tmp_path, coded)
    monkeypatch.chdir(tmp_path)
    fails_cleanly(["run", "my.toml", "--out", "runs/x", "--set", "model.params=3"], "--set 'model.params=3'")
    fails_cleanly(["demo", "--out", "runs/d", "--set", "nosuchsection.key=1"], "no section 'nosuchsection'")
    assert not (tmp_path / "runs").exists()


# -- 8. Excel: the table on another sheet ---------------------------------------------------------------
def test_table_on_the_second_sheet(tmp_path, coded):
    with pd.ExcelWriter(tmp_path / "coded.xlsx") as w:
        pd.DataFrame().to_excel(w, sheet_name="Notes", index=False)  # an empty first sheet
        coded.to_excel(w, sheet_name="Coded", index=False)
    with pytest.raises(DataError) as err:
        load_dataset(data_cfg(tmp_path / "coded.xlsx"))
    msg = str(err.value)
    assert "table is empty" in msg and "on the sheet 'Coded'" in msg and 'set sheet = "Coded" in [data]' in msg
    with pd.ExcelWriter(tmp_path / "coded.xlsx") as w:
        pd.DataFrame({"Instructions": ["code 1 for yes"]}).to_excel(w, sheet_name="Notes", index=False)
        coded.to_excel(w, sheet_name="Coded", index=False)
    with pytest.raises(DataError) as err:
        load_dataset(data_cfg(tmp_path / "coded.xlsx"))
    msg = str(err.value)
    assert "column(s) not found" in msg and "on the sheet 'Coded'" in msg and 'sheet = "Coded"' in msg
    df, _ = load_dataset(data_cfg(tmp_path / "coded.xlsx", sheet="Coded"))
    assert len(df) == len(coded)


def test_columns_on_no_sheet_list_the_sheets(tmp_path, coded):
    with pd.ExcelWriter(tmp_path / "coded.xlsx") as w:
        coded.rename(columns={"text": "sentence"}).to_excel(w, sheet_name="A", index=False)
        coded.head(3).to_excel(w, sheet_name="B", index=False)
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(path=str(tmp_path / "coded.xlsx"), text_column="txt", label_columns=LABELS))
    msg = str(err.value)
    assert "text_column = 'txt'" in msg and "the workbook's sheets are: 'A' (5 columns), 'B' (5 columns)" in msg


def test_title_rows_above_the_header(tmp_path, coded):
    with pd.ExcelWriter(tmp_path / "coded.xlsx") as w:
        coded.to_excel(w, index=False, startrow=2)  # two title rows above the column names
    with pytest.raises(DataError, match="the column names must be in the first row"):
        load_dataset(data_cfg(tmp_path / "coded.xlsx"))


# -- 10. cells and columns ------------------------------------------------------------------------------
def test_labels_outside_zero_one(tmp_path, coded):
    coded = coded.astype({LABELS[0]: object})
    coded.iloc[[2, 9], coded.columns.get_loc(LABELS[0])] = ["2", "-1"]
    coded.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError, match=rf"'{LABELS[0]}' must hold 0/1.*rows 3, 10 hold \['-1', '2'\]"):
        load_dataset(data_cfg(tmp_path / "d.csv"))


def test_na_written_by_r_or_stata_counts_as_a_missing_label(tmp_path, coded):
    coded = coded.astype({LABELS[1]: object})
    coded.iloc[[0, 4, 7], coded.columns.get_loc(LABELS[1])] = ["NA", ".", "n/a"]
    coded.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError, match=rf"3 row\(s\) have a missing label; column '{LABELS[1]}' is empty in "
                                        r"rows 1, 5, 8.*drop_missing_labels"):
        load_dataset(data_cfg(tmp_path / "d.csv"))
    df, report = load_dataset(data_cfg(tmp_path / "d.csv", drop_missing_labels=True))
    assert report.dropped_missing_labels == 3 and len(df) == len(coded) - 3


def test_missing_texts_in_a_parquet_file(tmp_path, coded):
    coded = coded.astype({"text": object})
    coded.iloc[[1, 6], coded.columns.get_loc("text")] = [None, np.nan]
    coded.to_parquet(tmp_path / "d.parquet")
    with pytest.raises(DataError, match=r"'text' \(text_column\) is empty in rows 2, 7"):
        load_dataset(data_cfg(tmp_path / "d.parquet"))


def test_a_one_megabyte_text_loads_and_cleans(tmp_path, coded):
    coded = coded.copy()
    coded.iloc[0, coded.columns.get_loc("text")] = ("The provider may terminate the account. " * 26_000)[:1_000_000]
    coded.to_csv(tmp_path / "d.csv", index=False)
    df, _ = load_dataset(data_cfg(tmp_path / "d.csv"))
    assert len(df.loc[0, "text"]) == 1_000_000 and len(clean_text(df.loc[0, "text"])) > 990_000


def test_ids_keep_their_leading_zeros_and_spaces_do_not_make_them_unique(tmp_path, coded):
    coded = coded.head(4).assign(id=["007", "7", "07", "x"])
    coded.to_csv(tmp_path / "d.csv", index=False)
    df, _ = load_dataset(data_cfg(tmp_path / "d.csv"))
    assert df["id"].tolist() == ["007", "7", "07", "x"]  # three different ids, not three 7s
    coded.assign(id=["7", " 7", "8", "9"]).to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError, match=r"must be unique.*'7' in rows 1, 2"):
        load_dataset(data_cfg(tmp_path / "d.csv"))


def test_spaces_around_a_column_name(tmp_path, coded):
    coded.rename(columns={"text": " text "}).to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError, match=r"text_column = 'text' \(did you mean ' text '\? It has spaces around the "
                                        r"name\.\)"):
        load_dataset(data_cfg(tmp_path / "d.csv"))


@pytest.mark.parametrize("label", ["$cost", "a/b", "with space", "ünïcödé → ok", "..", "x" * 200, "con"])
def test_label_names_that_are_unsafe_file_names_still_load(tmp_path, coded, label):
    coded = coded.rename(columns={LABELS[0]: label})
    coded.to_csv(tmp_path / "d.csv", index=False)
    df, _ = load_dataset(DataConfig(path=str(tmp_path / "d.csv"), label_columns=[label, LABELS[1]]))
    assert df[label].tolist() == coded[label].tolist()


def test_reserved_and_doubly_used_column_names(tmp_path, coded):
    coded.rename(columns={LABELS[0]: "group"}).to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError, match=r"label column\(s\) \['group'\] use a name lexcoder reserves"):
        load_dataset(DataConfig(path=str(tmp_path / "d.csv"), label_columns=["group"]))
    coded.to_csv(tmp_path / "e.csv", index=False)
    with pytest.raises(DataError, match=f"column '{LABELS[0]}' is named both as group_column and as label_columns"):
        load_dataset(data_cfg(tmp_path / "e.csv", group_column=LABELS[0]))


def test_nothing_left_after_dropping_says_why(tmp_path, coded):
    coded = coded.head(5).assign(**{LABELS[0]: ""})
    coded.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError, match=r"no rows left after validation \(dropped 5 row\(s\) with a missing label"):
        load_dataset(data_cfg(tmp_path / "d.csv", drop_missing_labels=True))


def test_pdf_extraction_debris_is_cleaned():
    """Soft hyphens, zero-width spaces, NUL and BOM split words for TF-IDF; cleaning removes them."""
    assert clean_text("arbi\u00adtration\u200b clause\x00 \ufeffhere") == "arbitration clause here"
    assert clean_text(None) == "" and clean_text(float("nan")) == ""


def test_semicolon_csv_runs_end_to_end(tmp_path, coded, monkeypatch):
    """A German Excel's CSV (semicolons, BOM, Windows line endings) is read as the researcher meant it."""
    write_project(tmp_path, coded)
    (tmp_path / "coded.csv").write_bytes(coded.to_csv(index=False, sep=";", lineterminator="\r\n").encode("utf-8-sig"))
    df, _ = load_dataset(load_config(tmp_path / "my.toml").data)
    assert df["id"].tolist() == coded["id"].astype(str).tolist()
    assert df["text"].tolist() == coded["text"].tolist()


@pytest.mark.parametrize("name", ["a\x00b", "tab\there", " ", "bell\x07"])
def test_label_names_with_control_characters_are_refused_in_the_config(name):
    from lexcoder.config import config_from_dict
    from lexcoder.errors import ConfigError
    with pytest.raises(ConfigError, match="control characters"):
        config_from_dict({"data": {"path": "x.csv", "label_columns": ["ok", name]}})
