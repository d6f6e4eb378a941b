"""The review desk's store on a real audited run: leases, idempotent retries, undo, double coding,
adjudication, and the derived state (a cache of the append-only events)."""
from __future__ import annotations

import sqlite3
import uuid

import pandas as pd
import pytest
from conftest import play
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lexcoder.review import Field, Filters, ReviewError, ReviewStore, open_run_store
from lexcoder.rundir import RunDir


def aid() -> str:
    return uuid.uuid4().hex


def test_the_store_is_a_wal_sqlite_file_in_the_run_folder_holding_the_audit_queue(run_dir):
    store = open_run_store(run_dir)
    run = RunDir(run_dir)
    assert store.path == run.review_store and run.review_store.is_file()
    assert sqlite3.connect(run.review_store).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    queue = pd.read_parquet(run.label_issues_table)
    items = store.items_table("audit")
    assert len(items) == len(queue) and items["text_id"].tolist() == queue["id"].astype(str).tolist()
    assert run.foreign_entries() == []  # review.sqlite and its -wal/-shm are lexcoder's own files
    assert open_run_store(run_dir).load_items(queue, "audit") == 0  # reopening adds nothing


def test_two_coders_never_get_the_same_item_and_a_reload_gets_the_same_one(run_dir):
    store = open_run_store(run_dir)
    ann, bob = store.next_item("Ann", "audit"), store.next_item("Bob", "audit")
    assert ann["item_id"] != bob["item_id"]
    assert store.next_item("Ann", "audit")["item_id"] == ann["item_id"]  # her lease: the same item again
    assert sorted(store.leases()) == sorted([(ann["item_id"], "Ann"), (bob["item_id"], "Bob")])


def test_a_lease_lapses_when_a_coder_leaves(run_dir):
    store = open_run_store(run_dir, settings={"lease_minutes": 5})
    start = store.clock()
    ann = store.next_item("Ann", "audit")
    store.clock = lambda: start + 4 * 60
    assert store.next_item("Bob", "audit")["item_id"] != ann["item_id"]
    store.clock = lambda: start + 6 * 60  # Ann's lease lapsed: her item is the first open one again
    assert store.next_item("Cleo", "audit")["item_id"] == ann["item_id"]


def test_a_retried_action_is_recorded_once_and_an_action_id_is_one_coders(run_dir):
    store = open_run_store(run_dir)
    item = store.next_item("Ann", "audit")
    action = aid()
    first = store.record("Ann", item["item_id"], "flip", action_id=action, note="looks like a limitation")
    again = store.record("Ann", item["item_id"], "flip", action_id=action, note="looks like a limitation")
    assert not first.duplicate and again.duplicate and again.item_id == first.item_id
    assert len(store.events_table()) == 1
    with pytest.raises(ReviewError, match="another coder") as err:
        store.record("Bob", item["item_id"], "keep", action_id=action)
    assert err.value.status == 409


def test_a_decision_sets_the_code_and_undo_takes_it_back(run_dir):
    store = open_run_store(run_dir)
    item = store.next_item("Ann", "audit")
    human = item["human_value"]
    store.record("Ann", item["item_id"], "flip", action_id=aid())
    assert store.decided_values()["value"].tolist() == [str(1 - int(human))]
    nxt = store.next_item("Ann", "audit")
    assert nxt["item_id"] != item["item_id"]
    ack = store.undo("Ann", "audit", action_id=aid())
    assert ack.undone == [item["item_id"]] and ack.status == "open"
    assert store.decided_values().empty
    assert store.next_item("Ann", "audit")["item_id"] == item["item_id"]  # the undone item comes back
    events = store.events_table()
    assert events["action"].tolist() == ["flip", "undo"] and events["supersedes"].iloc[1] == events["event_id"].iloc[0]
    assert store.undo("Ann", "audit", action_id=aid()) is None  # nothing left to undo


def test_the_event_log_is_append_only(run_dir):
    store = open_run_store(run_dir)
    item = store.next_item("Ann", "audit")
    store.record("Ann", item["item_id"], "keep", action_id=aid())
    db = sqlite3.connect(store.path)
    for sql in ("UPDATE events SET value = '0'", "DELETE FROM events"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute(sql)


def test_skipped_items_come_back_last(run_dir):
    store = open_run_store(run_dir)
    first = store.next_item("Ann", "audit")
    store.record("Ann", first["item_id"], "skip", action_id=aid())
    n = len(store.items_table("audit"))
    served = []
    for _ in range(n - 1):
        item = store.next_item("Ann", "audit")
        served.append(item["item_id"])
        store.record("Ann", item["item_id"], "keep", action_id=aid())
    assert first["item_id"] not in served
    assert store.next_item("Ann", "audit")["item_id"] == first["item_id"]


def test_filters_serve_one_label_and_a_score_range(run_dir):
    store = open_run_store(run_dir)
    items = store.items_table("audit")
    label = items["label"].value_counts().index[0]
    assert store.next_item("Ann", "audit", Filters(label=label))["label"] == label
    high = float(items["score"].median())
    assert store.next_item("Bob", "audit", Filters(score_min=high))["score"] >= high
    assert store.next_item("Cleo", "audit", Filters(score_min=2.0)) is None


def test_double_coded_items_go_to_two_coders_and_disagreements_to_the_adjudicator(run_dir):
    store = open_run_store(run_dir, settings={"double_share": 1.0, "owner": "Pi"})
    ann = store.next_item("Ann", "audit")
    bob = store.next_item("Bob", "audit")
    assert bob["item_id"] == ann["item_id"]  # double-coded: leased to two coders at once
    assert store.next_item("Cleo", "audit")["item_id"] != ann["item_id"]  # but never to a third
    assert "coders" not in bob  # coders do not see each other's codes
    store.record("Ann", ann["item_id"], "keep", action_id=aid())
    assert store.item(ann["item_id"])["status"] == "open"  # one of two coders
    store.record("Bob", ann["item_id"], "flip", action_id=aid())
    assert store.item(ann["item_id"])["status"] == "conflict"
    with pytest.raises(ReviewError, match="not an adjudicator"):
        store.next_adjudication("Ann")
    case = store.next_adjudication("Pi")
    assert case["item_id"] == ann["item_id"]
    assert {c["coder"]: c["values"][ann["label"]] for c in case["coders"]} == {
        "Ann": ann["human_value"], "Bob": str(1 - int(ann["human_value"]))}
    store.record("Pi", ann["item_id"], "resolve", action_id=aid(), values={ann["label"]: ann["human_value"]})
    assert store.item(ann["item_id"])["status"] == "resolved" and store.next_adjudication("Pi") is None


def test_two_coders_who_agree_finish_a_double_coded_item(run_dir):
    store = open_run_store(run_dir, settings={"double_share": 1.0})
    item = store.next_item("Ann", "audit")
    store.next_item("Bob", "audit")
    store.record("Ann", item["item_id"], "flip", action_id=aid())
    store.record("Bob", item["item_id"], "flip", action_id=aid())
    assert store.item(item["item_id"])["status"] == "done"


def test_a_late_decision_on_a_decided_item_is_a_conflict_not_an_overwrite(run_dir):
    store = open_run_store(run_dir)
    item = store.next_item("Ann", "audit")
    store.record("Ann", item["item_id"], "keep", action_id=aid())
    store.open_item(item["item_id"], "Bob")  # Bob reopens it from the list of items and disagrees
    store.record("Bob", item["item_id"], "flip", action_id=aid())
    assert store.item(item["item_id"])["status"] == "conflict"
    assert sorted(store.decided_values()["coder"]) == ["Ann", "Bob"]


def test_a_flag_sends_the_item_to_discussion_with_its_note(run_dir):
    store = open_run_store(run_dir)
    item = store.next_item("Ann", "audit")
    store.record("Ann", item["item_id"], "flag", action_id=aid(), note="is a cap on damages a limitation?")
    case = store.next_adjudication("Ann")  # no owner or adjudicator named: anyone adjudicates
    assert case["status"] == "flagged" and case["notes"][0]["note"] == "is a cap on damages a limitation?"


def test_a_share_of_items_is_double_coded(run_dir):
    store = open_run_store(run_dir)
    store.update_settings(double_share=0.5)
    required = store.items_table("audit")["required"]
    assert set(required) <= {1, 2} and 0 < (required == 2).sum() < len(required)
    store.update_settings(double_share=0.0)
    assert (store.items_table("audit")["required"] == 1).all()
    with pytest.raises(Exception, match="between 0 and 1"):
        store.update_settings(double_share=1.5)


def test_bad_actions_are_refused_with_a_clear_message(run_dir):
    store = open_run_store(run_dir)
    item = store.next_item("Ann", "audit")
    with pytest.raises(ReviewError, match="Unknown action"):
        store.record("Ann", item["item_id"], "delete", action_id=aid())
    with pytest.raises(ReviewError, match="does not apply"):
        store.record("Ann", item["item_id"], "code", action_id=aid(), values={})
    with pytest.raises(ReviewError, match="There is no item"):
        store.record("Ann", 10 ** 6, "keep", action_id=aid())
    with pytest.raises(ReviewError, match="action_id"):
        store.record("Ann", item["item_id"], "keep", action_id="x")
    with pytest.raises(ReviewError, match="coder name"):
        store.record("  ", item["item_id"], "keep", action_id=aid())
    assert store.events_table().empty


# ------------------------------------------------------------------------------------------------------
# categorical variables and new texts
# ------------------------------------------------------------------------------------------------------

def test_a_variable_is_changed_to_a_class_and_a_new_text_gets_every_code(tmp_path, tos_full):
    fields = [Field("limitation_of_liability"), Field("role", ("Facts", "Law", "Other"))]
    store = ReviewStore(tmp_path / "review.sqlite", fields=fields)
    rows = tos_full.head(3)
    store.load_items(pd.DataFrame({"id": rows["id"], "label": "role", "text": rows["text"], "human_value": "Facts",
                                   "suggested_value": "Law", "rank": [1, 2, 3]}), "audit")
    store.load_items(pd.DataFrame({"id": ["n1"], "text": [tos_full["text"].iloc[5]], "rank": [0]}), "code")
    item = store.next_item("Ann", "audit")
    assert item["fields"] == [{"name": "role", "kind": "variable", "values": ["Facts", "Law", "Other"]}]
    with pytest.raises(ReviewError, match="categorical variable"):
        store.record("Ann", item["item_id"], "flip", action_id=aid())
    with pytest.raises(ReviewError, match="not a value"):
        store.record("Ann", item["item_id"], "change", action_id=aid(), values={"role": "Procedure"})
    store.record("Ann", item["item_id"], "change", action_id=aid())  # the suggested class
    second = store.next_item("Ann", "audit")
    store.record("Ann", second["item_id"], "change", action_id=aid(), values={"role": "Other"})
    new = store.next_item("Ann", "code")
    with pytest.raises(ReviewError, match="No value for 'role'"):
        store.record("Ann", new["item_id"], "code", action_id=aid(), values={"limitation_of_liability": 1})
    store.record("Ann", new["item_id"], "code", action_id=aid(), values={"limitation_of_liability": 1, "role": "Law"})
    values = store.decided_values().set_index(["item_id", "label"])["value"].to_dict()
    assert values == {(item["item_id"], "role"): "Law", (second["item_id"], "role"): "Other",
                      (new["item_id"], "limitation_of_liability"): "1", (new["item_id"], "role"): "Law"}


# ------------------------------------------------------------------------------------------------------
# the cache is the events' derivation
# ------------------------------------------------------------------------------------------------------

ACTIONS = st.lists(st.tuples(st.sampled_from(["Ann", "Bob", "Cleo"]),
                             st.sampled_from(["next", "keep", "flip", "skip", "flag", "undo", "resolve"])),
                   min_size=1, max_size=20)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=ACTIONS, share=st.sampled_from([0.0, 0.5, 1.0]))
def test_the_cached_state_is_always_the_state_derived_from_the_events(tmp_path_factory, audited_run, actions, share):
    queue = pd.read_parquet(RunDir(audited_run).label_issues_table).head(6)
    store = ReviewStore(tmp_path_factory.mktemp("prop") / "review.sqlite",
                        fields=[Field(label) for label in queue["label"].unique()], settings={"double_share": share})
    store.load_items(queue, "audit")
    current: dict[str, dict | None] = {}
    for coder, action in actions:
        play(store, coder, action, current)
        leased = pd.DataFrame(store.leases(), columns=["item_id", "coder"]).groupby("item_id")["coder"].nunique()
        items = store.items_table("audit").set_index("item_id")
        open_items = items[items["status"] == "open"]
        held = open_items["n_coders"] + leased.reindex(open_items.index, fill_value=0)
        assert (held <= open_items["required"]).all()  # never more coders on an item than it needs
    table = store.items_table()
    counted = store.kind_counts("audit")
    assert {k: v for k, v in counted.items() if v and k != "total"} == table["status"].value_counts().to_dict()
    cached = table[["item_id", "status", "n_coders"]]
    states = pd.read_sql("SELECT * FROM coder_state ORDER BY coder, item_id", sqlite3.connect(store.path))
    store.rebuild()
    assert cached.equals(store.items_table()[["item_id", "status", "n_coders"]])
    assert states.equals(pd.read_sql("SELECT * FROM coder_state ORDER BY coder, item_id", sqlite3.connect(store.path)))
    store.close()
