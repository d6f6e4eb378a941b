"""Clusters of flags: a document left at the default code is shown as a block; random flags make none."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lexcoder import config_from_dict, run_pipeline
from lexcoder.audit.blocks import find_blocks
from lexcoder.cli import app

LABELS = ["limitation_of_liability", "unilateral_termination", "unilateral_change", "content_removal"]


@pytest.fixture(scope="module")
def gap_run(tos_slice, tmp_path_factory):
    """16 documents; in the one with most limitation-of-liability sentences they were all left at 0 (an
    annotation gap); a random coder per sentence; one near-duplicate (case, spaces, numbers) coded the
    other way. Audited through the CLI. Returns ``(run, gap document, CLI output, near-duplicate ids)``."""
    root = tmp_path_factory.mktemp("gap_run")
    sizes = tos_slice["doc_id"].value_counts()
    docs = sorted(sizes.index[sizes <= 650])  # a model of ~5k sentences knows the clause when it sees it
    part = tos_slice[tos_slice["doc_id"].isin(docs)].reset_index(drop=True)
    gap = part.groupby("doc_id")[LABELS[0]].sum().idxmax()
    assert part.loc[part["doc_id"] == gap, LABELS[0]].sum() >= 20
    part.loc[part["doc_id"] == gap, LABELS[0]] = 0
    part["coder"] = np.random.default_rng(3).choice(["A", "B", "C"], len(part))
    source = part[part["text"].str.contains(r"\d") & (part[LABELS[2]] == 0)].iloc[0]
    near = source.copy()
    near["id"], near[LABELS[2]], near["doc_id"] = "near_copy", 1, min(docs, key=lambda d: sizes[d])
    near["text"] = pd.Series([source["text"].upper().replace(" ", "   ")]).str.replace(r"\d+", "99", regex=True)[0]
    pd.concat([part, near.to_frame().T], ignore_index=True).to_csv(root / "tos.csv", index=False)
    cfg = config_from_dict({"data": {"path": str(root / "tos.csv"), "text_column": "text", "id_column": "id",
                                     "label_columns": LABELS, "group_column": "doc_id"},
                            "split": {"duplicates": "keep_groups"}, "report": {"enabled": False}})
    run_pipeline(cfg, root / "run")
    res = CliRunner().invoke(app, ["audit", str(root / "run"), "--folds", "4", "--block-columns", "doc_id,coder"],
                             terminal_width=300)
    assert res.exit_code == 0, res.output
    return root / "run", gap, " ".join(res.output.split()), {source["id"], "near_copy"}


def test_a_document_left_at_the_default_code_is_one_block(gap_run):
    run, gap, output, _ = gap_run
    summary = json.loads((run / "audit_summary.json").read_text())
    assert summary["settings"]["block_columns"] == ["doc_id", "coder"]
    found = [b for b in summary["blocks"] if b["column"] == "doc_id" and b["value"] == gap]
    assert len(found) == 1 and found[0]["label"] == LABELS[0]
    block = found[0]
    assert block["codes"] == {"0": block["flags"]} and block["flags"] > 3 * block["expected"]
    assert block["p_value"] < 0.01
    assert block["description"].startswith(f"doc_id '{gap}': {block['flags']} texts left at the default code 0 "
                                           f"on {LABELS[0]}")
    assert not [b for b in summary["blocks"] if b["column"] == "coder"]  # coders were assigned at random
    queue = pd.read_parquet(run / "label_issues.parquet")
    rows = queue[queue["block"].str.contains(f"doc_id={gap}", regex=False)]
    assert len(rows) == block["flags"] and (rows["label"] == LABELS[0]).all()
    assert rows["reason"].str.contains(block["description"], regex=False).all()
    assert f"Cluster of flags: {block['description']}" in output


def test_near_duplicate_opens_the_queue_grouped(gap_run):
    run, _, _, ids = gap_run
    queue = pd.read_parquet(run / "label_issues.parquet")
    near = queue[queue["reason"].str.contains("conflicting near-duplicate")]
    assert set(near["id"]) == ids and (near["label"] == LABELS[2]).all()
    assert near["group"].nunique() == 1 and np.ptp(near["rank"]) == 1
    assert near["rank"].max() <= (queue["group"] != "").sum()  # among the certain problems at the top
    assert near["reason"].str.contains("near-identical text coded 1 in 1, 0 in 1 copies").all()


@pytest.mark.parametrize("seed", range(5))
def test_random_flags_make_no_block_but_a_planted_cluster_does(tos_full, seed):
    """Flags at random over the 50 real ToS documents (3 % of the rows per label): no block. The same flags
    plus 20 in one small document: that document, and only it."""
    rng = np.random.default_rng(seed)
    table = tos_full[["id", "doc_id"]]
    flags = []
    for label in LABELS[:3]:
        rows = rng.choice(len(table), int(0.03 * len(table)), replace=False)
        flags.append(pd.DataFrame({"id": table["id"].to_numpy()[rows], "label": label, "human_value": 0,
                                   "group": ""}))
    queue = pd.concat(flags, ignore_index=True)
    assert find_blocks(table, queue, ["doc_id"]) == []
    doc = table["doc_id"].value_counts().index[-10]  # about 150 sentences: ~5 random flags expected
    planted = rng.choice(table.index[(table["doc_id"] == doc).to_numpy()], 20, replace=False)
    extra = pd.DataFrame({"id": table["id"].to_numpy()[planted], "label": LABELS[0], "human_value": 0, "group": ""})
    blocks = find_blocks(table, pd.concat([queue, extra], ignore_index=True), ["doc_id"])
    assert [(b["value"], b["label"]) for b in blocks] == [(doc, LABELS[0])]


def test_flags_on_a_documents_positives_at_the_usual_rate_are_no_block(tos_full):
    """A document holding many of a label's 1s gets many code-1 flags at the usual code-1 rate: chance, not a
    cluster. Testing each human code apart says so; pooling the codes (the rule before) reports it. A gap of
    code-0 flags in the same document is found either way, and the codes may be ints, floats or strings."""
    table = tos_full[["id", "doc_id", LABELS[0]]].reset_index(drop=True)
    rng = np.random.default_rng(0)
    y = table[LABELS[0]].to_numpy()
    # flags that follow the codes, not the documents: every 1 (a rare label the model keeps doubting) and
    # 0.3% of the 0s, at random
    ones, zeros = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    rows = np.r_[ones, rng.choice(zeros, int(0.003 * len(zeros)), replace=False)]
    queue = pd.DataFrame({"id": table["id"].to_numpy()[rows], "label": LABELS[0], "human_value": y[rows],
                          "group": ""})
    assert find_blocks(table, queue, ["doc_id"]) == []
    pooled = find_blocks(table, queue, ["doc_id"], by_code=False, correction="bonferroni", alpha=0.01)
    richest = table.groupby("doc_id")[LABELS[0]].mean().idxmax()  # the largest share of 1s
    assert richest in {b["value"] for b in pooled}  # the rule before: a "block" of ordinary positives
    doc = table["doc_id"].value_counts().index[20]
    gap = rng.choice(np.flatnonzero((table["doc_id"] == doc).to_numpy() & (y == 0)), 12, replace=False)
    extra = pd.DataFrame({"id": table["id"].to_numpy()[gap], "label": LABELS[0], "human_value": 0, "group": ""})
    flags = pd.concat([queue, extra], ignore_index=True).drop_duplicates(["id", "label"])
    for codes in (lambda v: v.astype(int), lambda v: v.astype(float), lambda v: v.astype(str)):
        blocks = find_blocks(table.assign(**{LABELS[0]: codes(table[LABELS[0]])}),
                             flags.assign(human_value=codes(flags["human_value"])), ["doc_id"])
        assert [(b["value"], b["code"]) for b in blocks] == [(doc, "0")]
        assert blocks[0]["description"].startswith(f"doc_id {doc!r}: {blocks[0]['flags']} texts left at the "
                                                   "default code 0")
