"""`lexcoder next` → coders → `lexcoder add` → the next round's run, through the CLI on real ToS sentences."""
from __future__ import annotations

import hashlib
import shutil

import pandas as pd
import pytest
import tomli_w
from typer.testing import CliRunner

from lexcoder.active.provenance import BATCH_COLUMN, REASON_COLUMN, STRATEGY_COLUMN
from lexcoder.rundir import RunDir

LABELS = ["limitation_of_liability", "unilateral_termination", "unilateral_change"]
runner = CliRunner()


def _cli(*args, code: int = 0) -> str:
    from lexcoder.cli import app
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == code, res.output
    return " ".join(res.output.split())  # rich wraps long lines


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def trained(tos_full, tmp_path_factory):
    """A TF-IDF run on 8 Terms of Service; the corpus: 6 others without their codes; the truth for both."""
    root = tmp_path_factory.mktemp("rounds")
    sizes = tos_full["doc_id"].value_counts()
    docs = sorted(sizes.index[(sizes >= 150) & (sizes <= 350)])
    tos_full[tos_full["doc_id"].isin(docs[:8])][["id", "doc_id", "text", *LABELS]].to_csv(root / "tos.csv", index=False)
    corpus = tos_full[tos_full["doc_id"].isin(docs[8:14])]
    corpus[["id", "doc_id", "text"]].to_csv(root / "corpus.csv", index=False)
    (root / "my.toml").write_text(tomli_w.dumps({
        "data": {"path": "tos.csv", "text_column": "text", "id_column": "id", "label_columns": LABELS,
                 "group_column": "doc_id"},
        "split": {"duplicates": "keep_groups"}, "evaluate": {"bootstrap": 0}, "report": {"enabled": False}}),
        encoding="utf-8")
    _cli("run", root / "my.toml", "--out", root / "runs/exp1")
    return root, tos_full.set_index("id")[LABELS]


@pytest.fixture
def ws(trained, tmp_path, monkeypatch):
    """A fresh copy of the trained workspace (each test hands out its own batches)."""
    root, truth = trained
    shutil.copytree(root, tmp_path / "w")
    monkeypatch.chdir(tmp_path / "w")
    return tmp_path / "w", truth


def _code(path, truth, out=None) -> pd.DataFrame:
    """The coders: fill the label columns of a `next` file with the experts' codes."""
    table = pd.read_excel(path, dtype=str) if str(path).endswith(".xlsx") else pd.read_csv(path, dtype=str)
    table[LABELS] = truth.loc[table["id"], LABELS].to_numpy()
    if out is not None:
        table.to_csv(out, index=False)
    return table


def test_next_writes_a_batch_to_code_and_never_hands_a_text_out_twice(ws):
    root, truth = ws
    run = RunDir(root / "runs/exp1")
    out = _cli("next", "runs/exp1", "--corpus", "corpus.csv", "--n", 40, "--out", "to_code.xlsx", "--seed", 3)
    assert "Batch exp1-b1: 40 of" in out and "lexcoder add" in out
    batch = pd.read_excel("to_code.xlsx", dtype=str)
    assert list(batch.columns) == ["id", "text", *LABELS, BATCH_COLUMN, STRATEGY_COLUMN, REASON_COLUMN]
    assert batch[LABELS].isna().all().all() and batch["id"].is_unique and len(batch) == 40
    corpus, data = pd.read_csv("corpus.csv"), pd.read_csv("tos.csv")
    assert batch["id"].isin(corpus["id"]).all() and not batch["id"].isin(data["id"]).any()
    assert set(batch[STRATEGY_COLUMN]) == {"uncertainty", "rare", "diversity", "random"}
    assert batch[REASON_COLUMN].str.len().gt(10).all()
    record = pd.read_parquet(run.batches)
    assert record["id"].tolist() == batch["id"].tolist() and set(record["batch"]) == {"exp1-b1"}
    assert (record["strategy"] == "random").sum() == record["inclusion_probability"].notna().sum() > 0

    before = _sha(run.batches)
    out = _cli("next", "runs/exp1", "--corpus", "corpus.csv", "--n", 40, "--out", "to_code.xlsx", code=2)
    assert "exists" in out and "--overwrite" in out and _sha(run.batches) == before  # nothing recorded
    _cli("next", "runs/exp1", "--corpus", "corpus.csv", "--n", 40, "--out", "more.csv", "--strategy", "rare")
    more = pd.read_csv("more.csv", dtype=str)
    assert set(more[BATCH_COLUMN]) == {"exp1-b2"} and not set(more["id"]) & set(batch["id"])
    assert set(more[STRATEGY_COLUMN]) == {"rare"}
    # the rare-label strategy finds positives a random draw of the same size would mostly miss
    assert truth.loc[more["id"]].to_numpy().sum() > 4 * truth.loc[corpus["id"]].to_numpy().mean() * 40 * 3


def test_next_keeps_spreadsheet_formulas_inert(ws, tos_full):
    root, _ = ws
    small = tos_full[tos_full["doc_id"] == tos_full["doc_id"].iloc[-1]].head(12)[["id", "text"]]
    small = pd.concat([small, pd.DataFrame({"id": ["evil"], "text": ['=HYPERLINK("http://x","click")']})])
    small.to_csv("small.csv", index=False)
    _cli("next", "runs/exp1", "--corpus", "small.csv", "--n", 13, "--strategy", "random", "--out", "small_out.csv")
    cells = pd.read_csv("small_out.csv", dtype=str).set_index("id")["text"]
    assert cells["evil"] == "'" + '=HYPERLINK("http://x","click")'


@pytest.mark.slow  # a second run on the new training table: several seconds
def test_add_records_the_batch_and_the_next_run_trains_on_it(ws):
    root, truth = ws
    data_hash = _sha(root / "tos.csv")
    _cli("next", "runs/exp1", "--corpus", "corpus.csv", "--n", 30, "--out", "to_code.xlsx")
    _code("to_code.xlsx", truth, "coded.csv")
    out = _cli("add", "runs/exp1", "coded.csv", "--out", "round2.csv")
    assert "Added 30 coded texts of batch exp1-b1" in out and "data.path=" in out
    run = RunDir(root / "runs/exp1")
    added = pd.read_parquet(run.coded_batches)
    assert len(added) == 30 and set(added["batch"]) == {"exp1-b1"} and added["strategy"].notna().all()
    assert (added[LABELS].to_numpy() == truth.loc[added["id"], LABELS].to_numpy()).all()
    table = pd.read_csv("round2.csv", dtype=str)
    original = pd.read_csv("tos.csv", dtype=str)
    assert len(table) == len(original) + 30 and table["id"].head(len(original)).tolist() == original["id"].tolist()
    assert table[BATCH_COLUMN].tail(30).eq("exp1-b1").all() and table[BATCH_COLUMN].head(len(original)).isna().all()
    assert _sha(root / "tos.csv") == data_hash  # the user's data file is never modified
    _cli("add", "runs/exp1", "--out", "again.csv")  # the table alone, from the batches added so far
    pd.testing.assert_frame_equal(pd.read_csv("again.csv", dtype=str), table)

    _cli("run", "my.toml", "--set", f"data.path={root / 'round2.csv'}", "--out", "runs/exp2")
    exp2 = RunDir(root / "runs/exp2")
    assert len(pd.read_parquet(exp2.data)) == len(original) + 30
    assert exp2.read_manifest()["inputs"]["data_sha256"] == _sha(root / "round2.csv")  # part of its identity
    _cli("add", "runs/exp1", "coded.csv", code=2)  # the same batch twice: refused


@pytest.mark.parametrize("damage, message", [
    (lambda t: t.assign(**{LABELS[1]: t[LABELS[1]].where(t.index != 2)}), f"column '{LABELS[1]}' is empty in rows 3"),
    (lambda t: t.assign(**{LABELS[0]: t[LABELS[0]].mask(t.index == 4, "2")}), "rows 5 hold ['2']"),
    (lambda t: t.assign(id=t["id"].mask(t.index == 1, "not-an-id")), "rows 2 name texts that no batch"),
    (lambda t: pd.concat([t, t.head(1)]), "rows 1, 21 give the same ids"),
    (lambda t: t.drop(columns=[LABELS[2]]), f"missing column(s) ['{LABELS[2]}']"),
])
def test_add_refuses_a_bad_file_naming_rows_and_records_nothing(ws, damage, message):
    root, truth = ws
    _cli("next", "runs/exp1", "--corpus", "corpus.csv", "--n", 20, "--out", "to_code.xlsx")
    damage(_code("to_code.xlsx", truth)).to_csv("coded.csv", index=False)
    out = _cli("add", "runs/exp1", "coded.csv", "--out", "round2.csv", code=2)
    assert out.startswith("Error: coded.csv") and message in out
    assert not RunDir(root / "runs/exp1").coded_batches.exists() and not (root / "round2.csv").exists()


def test_a_batch_chosen_by_next_is_never_a_gold_sample(ws):
    root, truth = ws
    _cli("next", "runs/exp1", "--corpus", "corpus.csv", "--n", 30, "--out", "to_code.xlsx")
    _code("to_code.xlsx", truth, "coded.csv")
    _cli("predict", "runs/exp1", "corpus.csv", "--out", "corpus_coded.csv")
    out = _cli("estimate", "runs/exp1", "--corpus", "corpus_coded.csv", "--gold", "coded.csv", code=2)
    assert "were chosen by `lexcoder next`" in out and "lexcoder sample" in out and "rows 1, 2, 3" in out
    # without its provenance columns the batch is still recognised: the run recorded what it handed out
    coded = pd.read_csv("coded.csv", dtype=str)
    coded.drop(columns=[c for c in coded.columns if c.startswith("lexcoder_")]).to_csv("stripped.csv", index=False)
    out = _cli("estimate", "runs/exp1", "--corpus", "corpus_coded.csv", "--gold", "stripped.csv", code=2)
    assert "handed out for coding (batch exp1-b1)" in out and "rows 1, 2, 3" in out


def test_sample_plans_draws_and_the_estimate_corrects_for_unequal_probabilities(ws):
    from lexcoder.estimate import estimate_prevalence
    root, truth = ws
    out = _cli("sample", "runs/exp1", "--width", "0.04")
    assert "Gold sample size" in out and LABELS[0] in out
    _cli("predict", "runs/exp1", "corpus.csv", "--out", "corpus_coded.csv")
    out = _cli("sample", "runs/exp1", "--corpus", "corpus_coded.csv", "--n", 300, "--design", "oversample",
               "--out", "gold.xlsx", "--seed", 5)
    assert "--weights inclusion_probability" in out
    gold = _code("gold.xlsx", truth)
    corpus = pd.read_csv("corpus_coded.csv")
    p = gold["inclusion_probability"].astype(float)
    assert (1 / p).sum() == pytest.approx(len(corpus))  # each stratum's weights add up to its size
    positive = (gold["lexcoder_stratum"] == "positive").to_numpy()
    assert positive.sum() == min(150, round((1 / p[positive]).sum()))  # half the sample, or the whole stratum
    auto = estimate_prevalence(corpus, gold, LABELS)
    assert auto["method"].str.startswith("PPI++ (design-based: stratified").all()  # its strata, said
    explicit = estimate_prevalence(corpus, gold.drop(columns="lexcoder_design"), LABELS,
                                   weight_column="inclusion_probability")
    ignored = estimate_prevalence(corpus, gold.drop(columns="lexcoder_design"), LABELS)
    pd.testing.assert_frame_equal(auto, explicit)
    # half the sample from the texts the model codes positive: unweighted, the shares come out far too high
    true = truth.loc[corpus["id"], LABELS].mean().to_numpy()
    assert (ignored["classical"].to_numpy() > 2 * true).all()
    assert (abs(auto["classical"].to_numpy() - true) < abs(ignored["classical"].to_numpy() - true)).all()
