"""A small audited TF-IDF run on the bundled ToS sentences, shared by the review desk's tests."""
from __future__ import annotations

import shutil
import uuid

import pandas as pd
import pytest
import tomli_w

LABELS = ["limitation_of_liability", "unilateral_termination", "unilateral_change"]


@pytest.fixture(scope="session")
def audited_run(tos_full, tmp_path_factory):
    """A run on 8 Terms of Service (3 labels) with its audit queue; never modified (copy it: ``run_dir``)."""
    return _run_and_audit(tmp_path_factory.mktemp("review_run"), _eight_documents(tos_full))


def _eight_documents(tos_full) -> pd.DataFrame:
    sizes = tos_full["doc_id"].value_counts()
    docs = sorted(sizes.index[(sizes >= 150) & (sizes <= 350)])[:8]
    return tos_full[tos_full["doc_id"].isin(docs)][["id", "doc_id", "text", *LABELS]]


def _run_and_audit(root, table: pd.DataFrame):
    """A TF-IDF run on ``table`` (documents kept whole) in ``root/run``, audited with 2 folds."""
    import lexcoder
    from lexcoder.audit import audit_run
    table.to_csv(root / "tos.csv", index=False)
    (root / "my.toml").write_text(tomli_w.dumps({
        "data": {"path": str(root / "tos.csv"), "text_column": "text", "id_column": "id", "label_columns": LABELS,
                 "group_column": "doc_id"},
        "split": {"duplicates": "keep_groups"}, "evaluate": {"bootstrap": 0}, "report": {"enabled": False}}),
        encoding="utf-8")
    lexcoder.run_pipeline(lexcoder.load_config(root / "my.toml"), root / "run")
    audit_run(root / "run", n_folds=2)
    return root / "run"


@pytest.fixture
def run_dir(audited_run, tmp_path):
    """A fresh copy of the audited run (the review store is written into it)."""
    return shutil.copytree(audited_run, tmp_path / "run")


@pytest.fixture(scope="session")
def new_texts(tos_full, tmp_path_factory):
    """A CSV of 40 ToS sentences from documents outside the run (``id``, ``text``), to code."""
    sizes = tos_full["doc_id"].value_counts()
    doc = sorted(sizes.index[sizes > 400])[0]
    path = tmp_path_factory.mktemp("texts") / "new.csv"
    tos_full[tos_full["doc_id"] == doc][["id", "text"]].head(40).to_csv(path, index=False)
    return path


def queue_of(run) -> pd.DataFrame:
    from lexcoder.rundir import RunDir
    return pd.read_parquet(RunDir(run).label_issues_table)


@pytest.fixture(scope="session")
def grouped_run(tos_full, tmp_path_factory):
    """The 8 Terms of Service of ``audited_run`` plus 6 copies of one of their liability clauses in other
    documents, 2 coded 1 and 4 left at 0 (one in upper case: a near-duplicate), as boilerplate is coded in
    practice, and one document's liability clauses all left at 0 (a cluster of flags); audited. Its queue
    opens with that conflicting-duplicate group. Never modified (copy it)."""
    table = _eight_documents(tos_full)
    clause = table[table[LABELS[0]] == 1].iloc[0]
    copies = pd.DataFrame([clause] * 6).reset_index(drop=True).assign(
        id=[f"copy_{k}" for k in range(1, 7)], doc_id=[f"other_{k}" for k in range(1, 7)],
        **{LABELS[0]: [1, 1, 0, 0, 0, 0]})
    copies.loc[copies.index[-1:], "text"] = str(clause["text"]).upper()
    # an annotation gap: the document with the most liability clauses (not the copied one's) left at 0
    positives = table[table[LABELS[0]].eq(1) & table["doc_id"].ne(clause["doc_id"])]["doc_id"].value_counts()
    table.loc[table["doc_id"].eq(positives.index[0]), LABELS[0]] = 0
    return _run_and_audit(tmp_path_factory.mktemp("grouped_run"), pd.concat([table, copies], ignore_index=True))


def play(store, coder: str, action: str, current: dict, *, undo_kind: str | None = "audit",
         adjudicator: str | None = None, resolution: str = "1") -> None:
    """One step of a simulated session (the property tests): ``coder`` takes the next audit item (``next``),
    decides the item they hold (keep, flip, flag, skip …), undoes their last decision, or resolves the next
    adjudication (``resolve``; only ``adjudicator``, when given, may; it also undoes as adjudicator).
    ``current`` holds each coder's item between steps."""
    if action == "next":
        current[coder] = store.next_item(coder, "audit")
    elif action == "undo":
        role = {} if adjudicator is None else {"role": "adjudicator" if coder == adjudicator else "coder"}
        store.undo(coder, undo_kind, action_id=uuid.uuid4().hex, **role)
    elif action == "resolve":
        case = store.next_adjudication(coder) if adjudicator in (None, coder) else None
        if case:
            store.record(coder, case["item_id"], "resolve", action_id=uuid.uuid4().hex,
                         values={case["label"]: resolution})
    elif current.get(coder):
        store.record(coder, current.pop(coder)["item_id"], action, action_id=uuid.uuid4().hex)
