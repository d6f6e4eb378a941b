"""Why each audit row is in the queue, in the review store: the audit's explanations stored with the item
(through a schema migration for stores an earlier lexcoder wrote), and a conflicting-duplicate group as one
review item whose decision codes every copy, each with its own id in the ledger."""
from __future__ import annotations

import shutil
import sqlite3
import uuid
from pathlib import Path

import pandas as pd
import pytest
from conftest import play, queue_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lexcoder.errors import ConfigError
from lexcoder.ledger import read_ledger
from lexcoder.review import Field, ReviewStore, decisions_table, export_ledger, open_run_store
from lexcoder.review.store import SCHEMA_VERSION
from lexcoder.review.why import explain_row
from lexcoder.rundir import RunDir

V1_DUMP = Path(__file__).parent / "data" / "review_v1.sql"


def aid() -> str:
    return uuid.uuid4().hex


def old_store(path: Path) -> Path:
    """``path`` holding the store version 1 wrote (tests/review/data/review_v1.sql)."""
    db = sqlite3.connect(path)
    db.executescript(V1_DUMP.read_text(encoding="utf-8"))
    db.close()
    return path


def schema(path: Path) -> tuple[set, set]:
    """The columns of ``items`` and the names of every table, index, trigger and view of a store file."""
    db = sqlite3.connect(path)
    try:
        columns = {(r[1], r[2], r[3], r[4]) for r in db.execute("PRAGMA table_info(items)")}
        objects = {(r[0], r[1], r[2] if r[0] != "table" else "")  # (ALTER TABLE rewrites a table's SQL)
                   for r in db.execute("SELECT type, name, sql FROM sqlite_master")}
        return columns, objects
    finally:
        db.close()


@pytest.fixture
def grouped_dir(grouped_run, tmp_path) -> Path:
    return shutil.copytree(grouped_run, tmp_path / "run")


def test_a_store_of_the_previous_version_opens_upgraded_with_every_decision_kept(tmp_path):
    path = old_store(tmp_path / "review.sqlite")
    db = sqlite3.connect(path)
    events_before = db.execute("SELECT * FROM events ORDER BY event_id").fetchall()
    assert db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone() == ("1",)
    assert "evidence" not in {r[1] for r in db.execute("PRAGMA table_info(items)")}
    db.close()

    store = ReviewStore(path)
    assert store.meta("audit_queue_sha256") == "0" * 64  # the desk's bookkeeping survived
    decided = store.decided_values()
    assert decided[["coder", "value"]].values.tolist() == [["Ann", "1"], ["Ann", "0"]]  # the undone keep is not
    assert store.codebook()["limitation_of_liability"]["definition"] == "Limits the provider's liability."
    items = store.items_table("audit")
    assert (items[["evidence", "nearest_other", "dup_group", "copies", "block"]] == "").all().all()
    assert items["member_of"].isna().all()
    store.close()

    fresh = ReviewStore(tmp_path / "new.sqlite", fields=store.fields)
    fresh.close()
    assert schema(path) == schema(fresh.path)  # the same tables, columns and indexes as a new store
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone() == (str(SCHEMA_VERSION),)
    assert db.execute("SELECT * FROM events ORDER BY event_id").fetchall() == events_before
    db.close()
    again = ReviewStore(path)  # opening an upgraded store again changes nothing
    assert again.decided_values().equals(decided)
    assert again.next_item("Bob", "audit") is not None  # and it serves items


def test_an_upgraded_store_takes_a_queue_with_explanations(tmp_path, run_dir):
    """An existing review.sqlite of the run, from before explanations: the run's queue loads into it."""
    run = RunDir(run_dir)
    old_store(run.review_store)
    store = open_run_store(run_dir)
    queue = queue_of(run_dir)
    items = store.items_table("audit").query("active == 1")
    assert items["text_id"].tolist() == queue["id"].astype(str).tolist()
    assert items["evidence"].tolist() == queue["evidence"].tolist()
    assert items["nearest_other"].tolist() == queue["nearest_other"].tolist()


def test_a_newer_store_is_refused_with_a_clear_message(tmp_path):
    path = old_store(tmp_path / "review.sqlite")
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = ? WHERE key = 'version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(ConfigError, match="newer lexcoder"):
        ReviewStore(path)


def test_each_item_shows_the_ngrams_of_its_text_and_the_nearest_texts_coded_the_other_way(run_dir):
    store = open_run_store(run_dir)
    data = pd.read_parquet(RunDir(run_dir).data).set_index("id")
    queue = queue_of(run_dir)
    assert (queue["evidence"] != "").all()
    for item_id in store.items_table("audit")["item_id"]:
        item = store.item(int(item_id))
        why = item["why"]
        assert why["terms"] and why["evidence_text"] == ""  # every cell read, nothing left over
        for term in why["terms"]:  # n-grams present in the text
            assert all(word in item["text"].lower() for word in term["term"].split())
        assert why["nearest_other"] and why["nearest_text"] == ""
        for near in why["nearest_other"]:  # coded the other way, and their text as shown
            assert str(data.loc[near["id"], item["label"]]) == str(1 - int(item["human_value"]))
            assert " ".join(str(data.loc[near["id"], "text"]).split()).startswith(near["text"].rstrip("…"))
        assert [s["similarity"] for s in why["nearest_other"]] == sorted(
            (s["similarity"] for s in why["nearest_other"]), reverse=True)


def test_an_explanation_in_an_unexpected_form_is_shown_whole():
    row = {"reason": "model confident positive (p=0.91), coded 0; block: doc_id 'A': 6 texts left at the default "
                     "code 0", "evidence": "the model liked this text", "nearest_other": "id 7 (high) “x”",
           "dup_group": "", "copies": "", "block": "doc_id=A"}
    why = explain_row(row)
    assert why["terms"] is None and why["evidence_text"] == "the model liked this text"
    assert why["nearest_other"] is None and why["nearest_text"] == "id 7 (high) “x”"
    assert why["reason"] == "model confident positive (p=0.91), coded 0"
    assert why["blocks"] == ["doc_id 'A': 6 texts left at the default code 0"] and why["block"] == "doc_id=A"


def test_a_conflicting_duplicate_group_is_one_item_whose_decision_codes_every_copy(grouped_dir, tmp_path):
    store = open_run_store(grouped_dir, settings={"owner": "Pi"})
    queue = queue_of(grouped_dir)
    group = queue[queue["group"] == "G1"]
    assert len(group) == 7 and group["label"].nunique() == 1 and group["human_value"].nunique() == 2
    lead = store.next_item("Ann", "audit")
    assert lead["id"] == str(group["id"].iloc[0]) and lead["why"]["group"] == "G1"
    assert [(c["id"], c["human_value"]) for c in lead["copies"]] == list(
        zip(group["id"].astype(str), group["human_value"].astype(str)))
    assert {c["text"] for c in lead["copies"]} == set(group["text"])  # the upper-case near-duplicate too

    served = {lead["item_id"]}
    for _ in range(len(queue)):  # Bob works through the whole queue: no copy of the group comes on its own
        item = store.next_item("Bob", "audit")
        if item is None:
            break
        served.add(item["item_id"])
        store.record("Bob", item["item_id"], "skip", action_id=aid())
    assert len(served) == len(queue) - 6
    assert not set(store.items_table("audit").query("member_of.notna()")["item_id"]) & served

    decision = store.record("Ann", lead["item_id"], "keep", action_id=aid(), note="a liability cap")
    events = store.events_table().query("coder == 'Ann'")
    assert len(events) == 7 and events["action_id"].nunique() == 1 and events["item_id"].nunique() == 7
    by_copy = events.merge(store.items_table()[["item_id", "text_id", "human_value"]], on="item_id")
    assert (by_copy["value"] == lead["human_value"]).all()
    same = by_copy["human_value"].eq(lead["human_value"])
    assert (by_copy["action"] == same.map({True: "keep", False: "flip"})).all()  # each copy by its own code
    assert decision.status == "done" and set(store.items_table().query("text_id in @group.id")["status"]) == {"done"}
    table = decisions_table(store).query("group == 'G1'")  # the project's record: one row per copy
    assert sorted(table["id"]) == sorted(group["id"].astype(str)) and set(table["final_value"]) == {lead["human_value"]}
    recent = store.recent("Ann", "audit")
    assert [r["item_id"] for r in recent] == [lead["item_id"]]  # one decision, listed once

    ledger = tmp_path / "corrections.csv"
    result = export_ledger(store, grouped_dir, ledger)
    entries = read_ledger(ledger)
    assert sorted(entries["id"].astype(str)) == sorted(group["id"].astype(str))  # one entry per copy, by id
    assert (entries["new_value"].astype(str) == lead["human_value"]).all()
    assert result.flipped == int((group["human_value"].astype(str) != lead["human_value"]).sum())
    assert (entries["note"] == "Ann: a liability cap").all()

    store.undo("Ann", "audit", action_id=aid())  # takes back every copy's code
    assert store.decided_values().query("coder == 'Ann'").empty
    assert set(store.items_table().query("text_id in @group.id")["status"]) == {"open"}
    assert store.next_item("Ann", "audit")["item_id"] == lead["item_id"]


def test_a_double_coded_group_disagreement_is_adjudicated_once_for_every_copy(grouped_dir):
    store = open_run_store(grouped_dir, settings={"owner": "Pi", "double_share": 1.0})
    lead = store.next_item("Ann", "audit")
    assert store.next_item("Bob", "audit")["item_id"] == lead["item_id"]
    store.record("Ann", lead["item_id"], "keep", action_id=aid())
    store.record("Bob", lead["item_id"], "flip", action_id=aid())
    copies = store.items_table().query("member_of == @lead['item_id'] or item_id == @lead['item_id']")
    assert len(copies) == 7 and set(copies["status"]) == {"conflict"}
    case = store.next_adjudication("Pi")
    assert case["item_id"] == lead["item_id"] and len(case["copies"]) == 7
    store.record("Pi", case["item_id"], "resolve", action_id=aid(), values={case["label"]: "1"})
    resolved = store.decided_values(role=None).query("role == 'adjudicator'")
    assert sorted(resolved["item_id"]) == sorted(copies["item_id"]) and set(resolved["value"]) == {"1"}
    assert store.next_adjudication("Pi") is None or store.next_adjudication("Pi")["item_id"] not in set(
        copies["item_id"])


def test_a_copy_opened_from_the_items_list_is_decided_on_its_own(grouped_dir):
    store = open_run_store(grouped_dir)
    members = store.items_table("audit").query("member_of.notna()")
    copy = store.open_item(int(members["item_id"].iloc[0]), "Ann")
    assert copy["copies"] == [] and copy["member_of"] == int(members["member_of"].iloc[0])
    assert copy["why"]["group"] == "G1" and copy["why"]["copies"]  # the group's copies cell, for reference
    store.record("Ann", copy["item_id"], "flip", action_id=aid())
    decided = store.decided_values()
    assert decided["item_id"].tolist() == [copy["item_id"]]
    assert store.item(copy["member_of"])["status"] == "open"  # the group is still to be decided


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=st.lists(st.tuples(st.sampled_from(["Ann", "Bob"]),
                                  st.sampled_from(["next", "keep", "flip", "flag", "undo", "resolve"])),
                        min_size=1, max_size=16),
       share=st.sampled_from([0.0, 1.0]))
def test_every_copy_of_a_group_always_has_its_leads_state(tmp_path_factory, grouped_run, actions, share):
    """Whatever coders and the adjudicator do on the queue, a group's copies share their lead's status, and the
    cached state is what the events say."""
    queue = queue_of(grouped_run).head(9)  # the group's 7 copies and two other rows
    store = ReviewStore(tmp_path_factory.mktemp("prop") / "review.sqlite",
                        fields=[Field(label) for label in queue["label"].unique()],
                        settings={"double_share": share, "owner": "Ann"})
    store.load_items(queue, "audit")
    current: dict[str, dict | None] = {}
    for coder, action in actions:
        play(store, coder, action, current, undo_kind=None, adjudicator="Ann", resolution="0")
        items = store.items_table("audit")
        copies = items[items["member_of"].notna()]
        leads = items.set_index("item_id").loc[copies["member_of"].astype(int)]
        assert copies["status"].tolist() == leads["status"].tolist()
    cached = store.items_table()[["item_id", "status", "n_coders"]]
    store.rebuild()
    assert cached.equals(store.items_table()[["item_id", "status", "n_coders"]])
    store.close()
