"""Out of the desk: the corrections ledger, decision and coded tables, agreement figures; new texts in."""
from __future__ import annotations

import json
import uuid

import numpy as np
import pandas as pd
import pytest

from lexcoder.errors import DataError
from lexcoder.ledger import LEDGER_COLUMNS, append_ledger, apply_ledger, read_ledger
from lexcoder.review import (agreement_table, coded_table, decisions_table, export_ledger, load_texts, open_run_store,
                             write_table_safely)
from lexcoder.review.agreement import coded_pairs
from lexcoder.rundir import RunDir
from lexcoder.stats import agreement


def aid() -> str:
    return uuid.uuid4().hex


def decide(store, coder, kind, action, **kw):
    item = store.next_item(coder, kind)
    store.record(coder, item["item_id"], action, action_id=aid(), **kw)
    return item


def test_final_decisions_go_to_the_ledger_once_credited_to_who_decided(run_dir, tmp_path):
    store = open_run_store(run_dir, settings={"owner": "Pi"})
    flipped = decide(store, "Ann", "audit", "flip", note="=cap on damages")  # a note Excel would run
    kept = decide(store, "Ann", "audit", "keep")
    store.update_settings(double_share=1.0)
    both = store.next_item("Ann", "audit")
    assert store.next_item("Bob", "audit")["item_id"] == both["item_id"]
    store.record("Ann", both["item_id"], "flip", action_id=aid())
    store.record("Bob", both["item_id"], "keep", action_id=aid())
    case = store.next_adjudication("Pi")
    store.record("Pi", case["item_id"], "resolve", action_id=aid(), values={case["label"]: case["human_value"]})
    open_one = store.next_item("Cleo", "audit")  # leased but undecided: not exported
    ledger = tmp_path / "corrections.csv"

    result = export_ledger(store, run_dir, ledger)
    assert (result.added, result.flipped, result.already, result.stale) == (3, 1, 0, [])
    entries = read_ledger(ledger).set_index("id")
    assert list(read_ledger(ledger).columns) == LEDGER_COLUMNS
    assert entries.loc[flipped["id"], ["old_value", "new_value", "reviewer"]].tolist() == [
        int(flipped["human_value"]), 1 - int(flipped["human_value"]), "Ann"]
    assert entries.loc[flipped["id"], "note"] == "Ann: =cap on damages"
    assert entries.loc[kept["id"], "old_value"] == entries.loc[kept["id"], "new_value"]
    assert entries.loc[case["id"], "reviewer"] == "Pi (adjudicated Ann, Bob)"
    assert open_one["id"] not in entries.index
    summary = json.loads(RunDir(run_dir).audit_summary.read_text())
    assert sum(block["reviewed"] for block in summary["labels"].values()) == 3

    again = export_ledger(store, run_dir, ledger)
    assert (again.added, again.already) == (0, 3) and len(read_ledger(ledger)) == 3  # idempotent
    data = pd.read_parquet(RunDir(run_dir).data)
    corrected = apply_ledger(data, read_ledger(ledger), [f.name for f in store.fields])
    row = corrected.set_index("id").loc[flipped["id"], flipped["label"]]
    assert int(row) == 1 - int(flipped["human_value"])


def test_a_decision_changed_after_an_export_is_exported_again(run_dir, tmp_path):
    store = open_run_store(run_dir)
    item = decide(store, "Ann", "audit", "flip")
    ledger = tmp_path / "corrections.csv"
    export_ledger(store, run_dir, ledger)
    store.undo("Ann", "audit", action_id=aid())
    store.record("Ann", item["item_id"], "keep", action_id=aid())
    result = export_ledger(store, run_dir, ledger)
    assert result.added == 1 and result.stale == []
    entries = read_ledger(ledger)
    human = int(item["human_value"])
    assert entries[["old_value", "new_value"]].values.tolist() == [[human, 1 - human], [1 - human, human]]


def test_a_code_someone_else_corrected_meanwhile_is_reported_not_overwritten(run_dir, tmp_path):
    store = open_run_store(run_dir)
    item = decide(store, "Ann", "audit", "keep")
    ledger = tmp_path / "corrections.csv"
    human = int(item["human_value"])
    append_ledger(pd.DataFrame([{"id": item["id"], "label": item["label"], "old_value": human, "new_value": 1 - human,
                                 "reviewer": "Spreadsheet", "timestamp": "2025-01-01T00:00:00+00:00", "note": "",
                                 "source_run": "elsewhere"}]), ledger)
    result = export_ledger(store, run_dir, ledger)
    assert result.added == 0 and result.stale == [{"id": item["id"], "label": item["label"],
                                                   "shown": str(human), "now": str(1 - human)}]
    assert len(read_ledger(ledger)) == 1


def test_new_texts_are_coded_into_a_table_with_both_coders_codes(run_dir, new_texts, tmp_path):
    store = open_run_store(run_dir, settings={"double_share": 0.5, "seed": 3})
    assert load_texts(store, run_dir, new_texts) == 40
    labels = [f.name for f in store.fields]
    rng = np.random.default_rng(0)
    for _ in range(60):
        coder = ["Ann", "Bob"][int(rng.integers(2))]
        item = store.next_item(coder, "code")
        if item is None:
            continue
        values = {lab: int(rng.random() < 0.3) for lab in labels}
        store.record(coder, item["item_id"], "code", action_id=aid(), values=values)
    table = coded_table(store)
    texts = pd.read_csv(new_texts)
    assert set(table["id"]) == set(texts["id"]) and len(table) == 40
    finished = table[table["status"] == "done"]
    assert len(finished) and finished[labels].isin(["0", "1"]).all().all()
    double = table[table[f"{labels[0]}_coder2"].notna()]
    assert len(double) and (double["coders"].str.count(",") == 1).all()
    agree = double[(double[[f"{lab}_coder1" for lab in labels]].to_numpy()
                    == double[[f"{lab}_coder2" for lab in labels]].to_numpy()).all(axis=1)]
    assert set(agree["status"]) <= {"done"}

    decided = store.decided_values()
    a, b = coded_pairs(decided[decided["kind"] == "code"], store.fields[0])
    assert len(a) == len(double)
    row = next(r for r in agreement_table(decided, store.fields, n_boot=200) if r["label"] == labels[0])
    point = agreement(a, b)
    assert row["n"] == point["n"] and row["percent_agreement"] == point["percent_agreement"]
    assert row["cohen_kappa"] == point["cohen_kappa"] and row["gwet_ac1"] == point["gwet_ac1"]
    low, high = row["percent_agreement_ci"]
    assert low <= point["percent_agreement"] <= high


def test_export_tables_neutralise_formulas_and_stay_out_of_the_run_folder(run_dir, tmp_path):
    store = open_run_store(run_dir)
    texts = tmp_path / "texts.csv"
    pd.DataFrame({"id": ["=1+1", "b"], "text": ['=HYPERLINK("http://x.example","click")', "plain"]}).to_csv(
        texts, index=False)
    load_texts(store, run_dir, texts)
    item = store.next_item("Ann", "code")
    store.record("Ann", item["item_id"], "code", action_id=aid(), values={f.name: 0 for f in store.fields})
    out = write_table_safely(coded_table(store), tmp_path / "coded.csv")
    text = out.read_text(encoding="utf-8")
    assert "'=HYPERLINK" in text and "'=1+1" in text
    assert decisions_table(store)["text"].str.startswith("=HYPERLINK").any()  # the table itself is unchanged
    with pytest.raises(DataError, match="inside the run folder"):
        write_table_safely(coded_table(store), RunDir(run_dir).root / "coded.csv")
    with pytest.raises(DataError, match="exists"):
        write_table_safely(coded_table(store), out)


def test_texts_are_ordered_randomly_or_by_predicted_codes_with_suggestions_shown_only_if_enabled(run_dir, new_texts):
    store = open_run_store(run_dir)
    load_texts(store, run_dir, new_texts, order="stratified", seed=1)
    items = store.items_table("code")
    suggestions = [json.loads(s) for s in items["suggestion"]]
    labels = [f.name for f in store.fields]
    assert all(0 <= s[lab] <= 1 for s in suggestions for lab in labels)
    strata = ["|".join(str(s[f"{lab}_decision"]) for lab in labels) for s in suggestions]
    k = len(set(strata))
    assert len(set(strata[:k])) == k  # the first k texts already cover all k predicted combinations
    first = store.next_item("Ann", "code")
    assert "suggestion" not in first  # pre-annotation biases coders: off unless the project enables it
    store.update_settings(suggestions=True)
    assert set(store.item(first["item_id"])["suggestion"]) >= set(labels)


def test_a_table_of_texts_without_the_text_column_is_refused(run_dir, tmp_path):
    store = open_run_store(run_dir)
    path = tmp_path / "bad.csv"
    pd.DataFrame({"sentence": ["a"]}).to_csv(path, index=False)
    with pytest.raises(DataError, match="no text column 'text'"):
        load_texts(store, run_dir, path)


@pytest.fixture(scope="module")
def categorical_run(tos_full, tmp_path_factory):
    """A run with two 0/1 labels and a categorical variable made from the ToS codes, audited."""
    import tomli_w

    import lexcoder
    from lexcoder.audit import audit_run
    root = tmp_path_factory.mktemp("categorical")
    sizes = tos_full["doc_id"].value_counts()
    data = tos_full[tos_full["doc_id"].isin(sorted(sizes.index[(sizes >= 150) & (sizes <= 350)])[:8])].copy()
    data["topic"] = "other"  # the kind of clause, where one of three applies
    for label, topic in (("unilateral_change", "change"), ("content_removal", "removal"), ("jurisdiction", "court")):
        data.loc[data[label] == 1, "topic"] = topic
    labels = ["limitation_of_liability", "unilateral_termination"]
    data[["id", "doc_id", "text", *labels, "topic"]].to_csv(root / "data.csv", index=False)
    (root / "my.toml").write_text(tomli_w.dumps({
        "data": {"path": str(root / "data.csv"), "label_columns": labels, "class_columns": ["topic"], "id_column": "id",
                 "group_column": "doc_id"},
        "split": {"duplicates": "keep_groups"}, "evaluate": {"bootstrap": 0}, "report": {"enabled": False}}))
    lexcoder.run_pipeline(lexcoder.load_config(root / "my.toml"), root / "run")
    audit_run(root / "run", n_folds=2)
    return root / "run"


@pytest.mark.slow  # a run and an audit of their own (about 20 s on 2 cores)
def test_a_categorical_variable_is_reviewed_by_class_and_exported_to_the_ledger(categorical_run, tmp_path):
    from lexcoder.review import Filters
    store = open_run_store(categorical_run)
    topic = store.field("topic")
    assert topic.classes == ("change", "court", "other", "removal")
    item = store.next_item("Ann", "audit", Filters(label="topic"))
    assert item["suggested_value"] in topic.classes and item["suggested_value"] != item["human_value"]
    store.record("Ann", item["item_id"], "change", action_id=aid())  # to the model's suggestion
    result = export_ledger(store, categorical_run, tmp_path / "corrections.csv")
    entry = read_ledger(tmp_path / "corrections.csv", ["topic"]).iloc[0]
    assert result.added == 1 and (entry["id"], entry["label"]) == (item["id"], "topic")
    assert (entry["old_value"], entry["new_value"]) == (item["human_value"], item["suggested_value"])
    table = decisions_table(store).set_index("item_id").loc[item["item_id"]]
    assert (table["decision"], table["final_value"]) == ("change", item["suggested_value"])
