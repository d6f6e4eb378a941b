"""Honest figures: each label beside its trivial baseline ("always 1"), and labels with few positives flagged.

Real data throughout: the bundled ToS sentences, a TF-IDF model trained on some Terms of Service and scored on
others; the expected baselines are computed here from the human codes (share of 1s), not by lexcoder.
"""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score
from typer.testing import CliRunner

from lexcoder.cli import app
from lexcoder.evaluate import SMALL_SUPPORT, always_one_baseline, evaluate_predictions
from lexcoder.models.tfidf import TfidfClassifier

LABELS = ["limitation_of_liability", "unilateral_change", "arbitration"]
runner = CliRunner()


def always_one_f1(codes) -> float:
    """F1 of coding every text 1, from the share p of texts the humans coded 1: 2p / (1 + p)."""
    p = float(np.mean(np.asarray(codes) == 1))
    return 2 * p / (1 + p)


@pytest.fixture(scope="module")
def docs(tos_full) -> list:
    return sorted(tos_full["doc_id"].unique())


@pytest.fixture(scope="module")
def model(tos_full, docs) -> TfidfClassifier:
    """TF-IDF trained on the first 15 Terms of Service."""
    train = tos_full[tos_full["doc_id"].isin(docs[:15])]
    return TfidfClassifier(ngram_max=1).fit(train["text"].tolist(), train[LABELS].to_numpy(), label_names=LABELS)


@pytest.fixture(scope="module")
def held_out(tos_full, docs) -> pd.DataFrame:
    """Sentences of 15 other Terms of Service, never seen by ``model``."""
    return tos_full[tos_full["doc_id"].isin(docs[30:45])].reset_index(drop=True)


def test_baseline_is_the_always_one_rule(model, held_out):
    Y = held_out[LABELS].to_numpy()
    assert (Y.sum(axis=0) > 0).all()  # the split has positives of every label
    m = evaluate_predictions(Y, model.predict_proba(held_out["text"].tolist()), [0.5] * 3, LABELS)
    expected = {}
    for lab in LABELS:
        p = float((held_out[lab] == 1).mean())
        expected[lab] = always_one_f1(held_out[lab])
        fig = m["labels"][lab]
        assert fig["baseline"]["rule"] == "always 1"
        assert fig["baseline"]["f1"] == pytest.approx(expected[lab], abs=1e-12)
        assert fig["baseline"]["precision"] == pytest.approx(p, abs=1e-12)
        assert fig["baseline"]["accuracy"] == pytest.approx(p, abs=1e-12)
        assert fig["baseline"]["recall"] == 1.0
        assert fig["f1_over_baseline"] == pytest.approx(fig["f1"] - expected[lab], abs=1e-12)
        assert fig["beats_baseline"] == (fig["f1"] > expected[lab])
        assert 0 < expected[lab] < fig["f1"]  # TF-IDF codes these labels far better than the trivial rule
    assert m["macro"]["baseline_f1"] == pytest.approx(np.mean(list(expected.values())), abs=1e-12)
    assert m["micro"]["baseline_f1"] == pytest.approx(always_one_f1(Y.ravel()), abs=1e-12)
    assert m["macro"]["labels_not_above_baseline"] == 0 and m["macro"]["beats_baseline"]
    for key in ("f1", "precision", "recall", "accuracy", "support", "tp", "fp", "tn", "fn", "threshold"):
        assert key in m["labels"][LABELS[0]]  # the fixed metrics.json keys stay


def test_a_model_that_codes_every_text_1_does_not_beat_its_baseline(held_out):
    """The tie case: the model's F1 (sklearn) and the baseline's (closed form) must compare as equal."""
    Y = held_out[LABELS].to_numpy()
    m = evaluate_predictions(Y, np.ones(Y.shape), [0.5] * 3, LABELS)
    for lab in LABELS:
        fig = m["labels"][lab]
        assert fig["f1"] == pytest.approx(fig["baseline"]["f1"]) and fig["recall"] == 1.0
        assert not fig["beats_baseline"] and fig["f1_over_baseline"] <= 1e-12
    assert m["macro"]["labels_not_above_baseline"] == len(LABELS) and not m["macro"]["beats_baseline"]


def test_a_split_without_positives_has_a_zero_baseline(model, held_out):
    none = held_out[held_out["arbitration"] == 0].head(300)
    m = evaluate_predictions(none[LABELS].to_numpy(), model.predict_proba(none["text"].tolist()), [0.5] * 3,
                             LABELS)
    base = m["labels"]["arbitration"]["baseline"]
    assert base == {"rule": "always 1", "f1": 0.0, "precision": 0.0, "recall": 0.0, "accuracy": 0.0}
    assert m["labels"]["arbitration"]["small_support"] and m["labels"]["arbitration"]["support"] == 0


def test_fewer_than_ten_positives_are_flagged(tos_full, docs, model):
    """A table built to hold exactly 9 arbitration and exactly 10 limitation-of-liability clauses."""
    pool = tos_full[~tos_full["doc_id"].isin(docs[:15])]  # texts the model did not see
    only = lambda lab: pool[(pool[lab] == 1) & (pool[LABELS].sum(axis=1) == 1)]  # noqa: E731
    table = pd.concat([only("arbitration").head(9), only("limitation_of_liability").head(10),
                       only("unilateral_change").head(3), pool[pool[LABELS].sum(axis=1) == 0].head(400)])
    counts = {lab: int((table[lab] == 1).sum()) for lab in LABELS}
    assert counts == {"arbitration": 9, "limitation_of_liability": 10, "unilateral_change": 3}
    m = evaluate_predictions(table[LABELS].to_numpy(), model.predict_proba(table["text"].tolist()), [0.5] * 3,
                             LABELS)
    assert SMALL_SUPPORT == 10 and m["small_support_threshold"] == 10
    assert {lab: m["labels"][lab]["small_support"] for lab in LABELS} == {
        "arbitration": True, "limitation_of_liability": False, "unilateral_change": True}
    assert m["macro"]["small_support_labels"] == 2


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 1), min_size=1, max_size=60))
def test_baseline_equals_sklearn_scoring_the_all_1_prediction(codes):
    y, ones = np.array(codes), np.ones(len(codes), dtype=int)
    base = always_one_baseline(y)
    # sklearn leaves recall undefined without positives (0 with zero_division=0, as for the model's figures)
    assert base["f1"] == f1_score(y, ones, zero_division=0)
    assert base["precision"] == pytest.approx(precision_score(y, ones, zero_division=0))
    assert base["recall"] == recall_score(y, ones, zero_division=0)
    assert base["accuracy"] == pytest.approx(accuracy_score(y, ones))


# -- a real run through the CLI: console table, metrics.json, report -------------------------------------

@pytest.fixture(scope="module")
def data_csv(tmp_path_factory, tos_full, docs):
    """12 Terms of Service: arbitration is rare (a few test positives), limitation of liability is not."""
    tmp = tmp_path_factory.mktemp("honest")
    tos_full[tos_full["doc_id"].isin(docs[:12])].to_csv(tmp / "tos.csv", index=False)
    return tmp / "tos.csv"


def cli_run(data_csv, make_config, out, *overrides: str):
    cfg = make_config(out.parent, data_csv, LABELS, group_column="doc_id")
    res = runner.invoke(app, ["run", str(cfg), "--out", str(out), "--set", "evaluate.bootstrap=0",
                              *[a for o in overrides for a in ("--set", o)]])
    assert res.exit_code == 0, res.output
    return res.output


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_csv, make_config):
    """(run directory, console output, test-split positives per label counted from the data file)."""
    out = tmp_path_factory.mktemp("run") / "run"
    output = cli_run(data_csv, make_config, out)
    splits = pd.read_parquet(out / "splits.parquet")
    data = pd.read_csv(data_csv)
    test = data[data["id"].astype(str).isin(splits.loc[splits["split"] == "test", "id"].astype(str))]
    return out, output, test


def test_cli_table_shows_the_baseline_and_flags_small_labels(run):
    out, output, test = run
    positives = {lab: int((test[lab] == 1).sum()) for lab in LABELS}
    assert positives["arbitration"] < SMALL_SUPPORT <= positives["limitation_of_liability"]  # both cases occur
    assert 'always 1: F1 of the trivial rule "code every text 1"' in output
    for lab in LABELS:
        line = next(ln for ln in output.splitlines() if re.match(rf"\s*{lab}\b", ln) and "%" not in ln)
        cells = [c for c in line.split() if c not in ("!", "≤")]
        assert cells[1] == str(positives[lab])  # n pos
        assert cells[5] == f"{always_one_f1(test[lab]):.3f}"  # the "always 1" column, right of F1
        assert (f"{lab} !" in line) == (positives[lab] < SMALL_SUPPORT)
    flat = " ".join(output.split())  # rich wraps long lines at the terminal width
    assert "! fewer than 10 positive texts in the test split: its figures can swing widely" in flat
    n_small = sum(v < SMALL_SUPPORT for v in positives.values())
    assert f"({n_small} of {len(LABELS)} labels; the macro figures average them in)" in flat
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["macro"]["small_support_labels"] == n_small
    assert ("≤" in output) == (metrics["macro"]["labels_not_above_baseline"] > 0)


def test_report_shows_the_baseline_and_the_small_sample_note(run):
    out, _, test = run
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "<th>always 1<br><small>F1</small></th>" in html
    for lab in LABELS:
        row = next(r for r in html.split("<tr") if f"<td>{lab}" in r)
        assert f'<td class="baseline">{always_one_f1(test[lab]):.3f}</td>' in row
        assert ('class="flag"' in row) == (int((test[lab] == 1).sum()) < SMALL_SUPPORT)
    note = re.search(r'<p class="flags">(.*?)</p>', html, re.S).group(1)
    assert "Fewer than 10 positive texts in the test split" in note and "arbitration" in note
    assert "limitation_of_liability" not in note
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "| F1 | always 1 |" in md and "! Fewer than 10 positive texts in the test split" in md


def test_a_model_no_better_than_always_1_is_marked(tmp_path, data_csv, make_config):
    """A threshold near 0 codes every text 1: the model ties its baseline, and every table says so."""
    out = tmp_path / "run"
    output = cli_run(data_csv, make_config, out, "thresholds.method=fixed", "thresholds.fixed=1e-9")
    flat = " ".join(output.split())
    assert "≤ the model's F1 does not beat its baseline (coding every text 1) on" in flat
    for lab in LABELS:
        line = next(ln for ln in output.splitlines() if re.match(rf"\s*{lab}\b", ln) and "%" not in ln)
        assert "≤" in line
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.count('<span class="warn">≤ baseline</span>') >= len(LABELS)
    assert "the model's F1 does not beat coding every text 1 on" in html
    assert "≤ baseline" in (out / "report.md").read_text(encoding="utf-8")


def test_one_label_averages_like_several(tos_full):
    """A run with one label reports that label's F1 as its macro F1 (scikit-learn alone would read a
    one-column matrix as a binary target and average the F1 of the 0s and of the 1s)."""
    from sklearn.metrics import f1_score, precision_score, recall_score

    from lexcoder.evaluate import evaluate_predictions
    from lexcoder.models.tfidf import TfidfClassifier
    docs = sorted(tos_full["doc_id"].unique())
    train, test = tos_full[tos_full["doc_id"].isin(docs[:30])], tos_full[tos_full["doc_id"].isin(docs[30:])]
    label = "limitation_of_liability"
    model = TfidfClassifier().fit(train["text"], train[[label]].to_numpy())
    Y, P = test[[label]].to_numpy(), model.predict_proba(test["text"])
    block = evaluate_predictions(Y, P, [0.5], [label])
    pred = (P[:, 0] >= 0.5).astype(int)
    assert block["macro"]["f1"] == pytest.approx(f1_score(Y[:, 0], pred)) == block["labels"][label]["f1"]
    assert block["micro"]["precision"] == pytest.approx(precision_score(Y[:, 0], pred))
    assert block["macro"]["recall"] == pytest.approx(recall_score(Y[:, 0], pred))
    assert block["macro"]["f1"] < 0.9  # a real, imperfect model: the old bug inflated this towards 1
