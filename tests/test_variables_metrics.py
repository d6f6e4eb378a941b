"""Figures of a categorical variable (lexcoder.evaluate.evaluate_variable), its report sections and console table.

Real data: the rhetorical roles of sentences in Indian Supreme Court judgments (7 classes), a TF-IDF softmax
model trained on two of the authors' document folds and scored on a third. Expected figures come from
scikit-learn and the reference ``krippendorff`` package on the class names, not from lexcoder.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import krippendorff
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score, log_loss

from lexcoder.cli.core import show_variables
from lexcoder.cli.common import console
from lexcoder.evaluate import SMALL_SUPPORT, evaluate_variable, fold_majorities
from lexcoder.models.tfidf import TfidfClassifier
from lexcoder.stats.bootstrap import class_count_metrics, confusion_counts

DESIGN_KEYS = {"accuracy", "macro_f1", "weighted_f1", "cohen_kappa", "classes", "confusion", "per_class"}
ADDED_KEYS = {"n", "krippendorff_alpha", "gwet_ac1", "ece", "brier", "log_loss", "baseline",
              "macro_f1_over_baseline", "small_support"}


@pytest.fixture(scope="module")
def roles(shared_data):
    """Test fold 2 (short sentences) with the model's class probabilities, and the training fold's majority."""
    df = pd.read_csv(shared_data("indian_sc_rhetorical_roles/texts.csv.gz"))
    df = df[df["text"].str.len() < 300]
    train, test = df[df["fold"].isin([0, 1])], df[df["fold"] == 2].reset_index(drop=True)
    model = TfidfClassifier(ngram_max=1).fit(train["text"].tolist(), train["label"].to_numpy())
    classes = list(model.classes_)
    return {"test": test, "P": model.predict_proba(test["text"].tolist()), "classes": classes,
            "y": np.array([classes.index(c) for c in test["label"]]),
            "train_majority": train["label"].value_counts().idxmax()}


@pytest.fixture(scope="module")
def block(roles):
    return evaluate_variable(roles["y"], roles["P"], roles["classes"], groups=roles["test"]["group"].to_numpy(),
                             bootstrap=300, seed=0)


def test_block_has_the_design_keys_and_a_consistent_confusion_matrix(roles, block):
    assert DESIGN_KEYS | ADDED_KEYS <= set(block)
    assert block["classes"] == roles["classes"] == sorted(roles["test"]["label"].unique())
    assert set(block["per_class"]) == set(roles["classes"])
    cm = np.array(block["confusion"])
    n = len(roles["test"])
    assert cm.shape == (7, 7) and cm.sum() == n == block["n"]
    assert np.trace(cm) / n == pytest.approx(block["accuracy"])
    # rows are the human codes, columns the model's
    human = roles["test"]["label"].value_counts()
    model = pd.Series(np.asarray(roles["classes"])[roles["P"].argmax(axis=1)]).value_counts()
    for i, c in enumerate(roles["classes"]):
        assert cm[i].sum() == human.get(c, 0) == block["per_class"][c]["support"]
        assert cm[:, i].sum() == model.get(c, 0)


def test_figures_equal_scikit_learn_and_the_reference_alpha(roles, block):
    human = roles["test"]["label"].to_numpy()
    pred = np.asarray(roles["classes"])[roles["P"].argmax(axis=1)]  # the decision: the most probable class
    assert block["accuracy"] == pytest.approx(accuracy_score(human, pred))
    assert block["macro_f1"] == pytest.approx(f1_score(human, pred, average="macro"))
    assert block["weighted_f1"] == pytest.approx(f1_score(human, pred, average="weighted"))
    assert block["cohen_kappa"] == pytest.approx(cohen_kappa_score(human, pred))
    per_class = f1_score(human, pred, average=None, labels=roles["classes"])
    assert [block["per_class"][c]["f1"] for c in roles["classes"]] == pytest.approx(per_class)
    codes = np.vstack([roles["y"], roles["P"].argmax(axis=1)]).astype(float)
    assert block["krippendorff_alpha"] == pytest.approx(
        krippendorff.alpha(reliability_data=codes, level_of_measurement="nominal"), abs=1e-12)
    assert block["log_loss"] == pytest.approx(log_loss(human, roles["P"], labels=roles["classes"]))
    assert block["macro_f1"] < block["weighted_f1"]  # the rare roles are the hard ones
    assert 0 < block["gwet_ac1"] < 1 and 0 < block["brier"] < 2
    # ECE is at least the gap between mean confidence and accuracy (the bins' gaps cannot cancel out)
    gap = abs(roles["P"].max(axis=1).mean() - block["accuracy"])
    assert gap - 1e-12 <= block["ece"] <= 1


def test_a_class_neither_side_uses_counts_zero_in_macro_f1(roles):
    # the rows of three roles only: the other four have no support; the model still predicts some of them
    keep = np.isin(roles["y"], [0, 1, 3])
    out = evaluate_variable(roles["y"][keep], roles["P"][keep], roles["classes"])
    human = roles["test"]["label"].to_numpy()[keep]
    pred = np.asarray(roles["classes"])[roles["P"][keep].argmax(axis=1)]
    assert out["macro_f1"] == pytest.approx(f1_score(human, pred, average="macro", labels=roles["classes"],
                                                     zero_division=0))
    assert out["per_class"][roles["classes"][2]]["support"] == 0


def test_baseline_is_a_constant_prediction_of_the_majority_class(roles, block):
    human = roles["test"]["label"].to_numpy()
    test_majority = roles["test"]["label"].value_counts().idxmax()
    for majority, out in [(test_majority, block),  # default: the evaluated split's most frequent class
                          (roles["train_majority"], evaluate_variable(
                              roles["y"], roles["P"], roles["classes"],
                              majority=roles["classes"].index(roles["train_majority"])))]:
        constant = np.full(len(human), majority)
        assert out["baseline"] == {
            "rule": "majority class", "class": majority, "accuracy": pytest.approx(accuracy_score(human, constant)),
            "macro_f1": pytest.approx(f1_score(human, constant, average="macro", labels=roles["classes"],
                                               zero_division=0))}
        assert out["macro_f1_over_baseline"] == pytest.approx(out["macro_f1"] - out["baseline"]["macro_f1"])
        assert out["beats_baseline"]
    with pytest.raises(ValueError, match="class indices in 0..6; got 7"):
        evaluate_variable(roles["y"], roles["P"], roles["classes"], majority=7)


def test_kfold_baseline_answers_each_rows_training_folds_majority(shared_data):
    """k-fold: every row's baseline is the most frequent class of the other folds, not of all rows."""
    df = pd.read_csv(shared_data("indian_sc_rhetorical_roles/texts.csv.gz"), usecols=["label", "fold"])
    # two of the authors' folds: fold 1's training rows (fold 3) are mostly "Ratio of the decision", fold 3's
    # (fold 1) mostly "Facts" — while the most frequent class of all rows is "Ratio of the decision"
    df = df[df["fold"].isin([1, 3])].reset_index(drop=True)
    classes = sorted(df["label"].unique())
    y = np.array([classes.index(c) for c in df["label"]])
    expected = df["fold"].map({f: df.loc[df["fold"] != f, "label"].value_counts().idxmax()
                               for f in df["fold"].unique()})
    got = fold_majorities(y, df["fold"].to_numpy(), len(classes))
    assert [classes[i] for i in got] == expected.tolist() and expected.nunique() == 2
    P = np.full((len(y), len(classes)), 1 / len(classes))
    baseline = evaluate_variable(y, P, classes, majority=got)["baseline"]
    assert baseline["accuracy"] == pytest.approx((df["label"] == expected).mean())
    assert baseline["class"] == " / ".join(pd.unique(expected))


def test_classes_with_few_texts_are_flagged(roles):
    # one judgment: some roles occur only a few times in it
    rows = (roles["test"]["group"] == roles["test"]["group"].iloc[0]).to_numpy()
    out = evaluate_variable(roles["y"][rows], roles["P"][rows], roles["classes"])
    counts = roles["test"]["label"][rows].value_counts()
    expected = [c for c in roles["classes"] if counts.get(c, 0) < SMALL_SUPPORT]
    assert expected and len(expected) < 7  # the slice has both kinds
    assert out["small_support"] == expected
    assert [c for c, m in out["per_class"].items() if m["small_support"]] == expected


def test_intervals_contain_the_point_estimates(block):
    for key in ("accuracy", "macro_f1", "weighted_f1", "cohen_kappa"):
        low, high = block[f"{key}_ci"]
        assert low <= block[key] <= high and low < high
    for c, m in block["per_class"].items():
        for key in ("f1", "precision", "recall"):
            assert m[f"{key}_ci"][0] <= m[key] <= m[f"{key}_ci"][1], (c, key)
    assert block["bootstrap"] == {"resamples": 300, "seed": 0, "level": 0.95, "unit": "group", "n_units": 10}


def test_the_bootstrap_figures_are_scikit_learns_on_the_one_vs_rest_counts(roles):
    pred = roles["P"].argmax(axis=1)
    eye = np.eye(7, dtype=bool)
    figures = class_count_metrics(confusion_counts(eye[roles["y"]], eye[pred]).sum(axis=0))
    assert figures["accuracy"] == pytest.approx(accuracy_score(roles["y"], pred))
    assert figures["macro_f1"] == pytest.approx(f1_score(roles["y"], pred, average="macro"))
    assert figures["weighted_f1"] == pytest.approx(f1_score(roles["y"], pred, average="weighted"))
    assert figures["cohen_kappa"] == pytest.approx(cohen_kappa_score(roles["y"], pred))


def test_group_bootstrap_resamples_whole_groups(roles):
    y, P = roles["y"], roles["P"]
    rows = evaluate_variable(y, P, roles["classes"], bootstrap=200, seed=1)
    # every text three times, the copies in one group: resampling whole groups draws the same texts as
    # resampling the single texts (same seed, units in the same order), so the intervals are identical
    copies = np.repeat(np.arange(len(y)), 3)
    grouped = evaluate_variable(y[copies], P[copies], roles["classes"], groups=copies, bootstrap=200, seed=1)
    loose = evaluate_variable(y[copies], P[copies], roles["classes"], bootstrap=200, seed=1)
    for key in ("accuracy_ci", "macro_f1_ci", "cohen_kappa_ci"):
        assert grouped[key] == pytest.approx(rows[key])
        assert np.diff(loose[key])[0] < 0.8 * np.diff(rows[key])[0]  # copies resampled apart: too narrow
    assert grouped["bootstrap"]["n_units"] == len(y)
    # the model's errors cluster in judgments: resampling the 10 judgments gives a wider interval
    judgments = evaluate_variable(y, P, roles["classes"], groups=roles["test"]["group"].to_numpy(),
                                  bootstrap=200, seed=1)
    assert np.diff(judgments["accuracy_ci"])[0] > np.diff(rows["accuracy_ci"])[0]


def test_malformed_input_is_refused(roles):
    y, P, classes = roles["y"], roles["P"], roles["classes"]
    with pytest.raises(ValueError, match=r"P of shape \(n, 7\)"):
        evaluate_variable(y, P[:, :6], classes)
    with pytest.raises(ValueError, match="class indices 0..6"):
        evaluate_variable(y + 1, P, classes)
    with pytest.raises(ValueError, match="No rows"):
        evaluate_variable(y[:0], P[:0], classes)


# -- report and console ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def labels_run(tmp_path_factory, tos_docs):
    """A finished labels-only run on 6 Terms of Service (two labels)."""
    from lexcoder.config import config_from_dict
    from lexcoder.pipeline import run_pipeline
    tmp = tmp_path_factory.mktemp("variables_report")
    df = tos_docs[tos_docs["doc_id"].isin(sorted(tos_docs["doc_id"].unique())[:6])]
    df.to_csv(tmp / "tos.csv", index=False)
    cfg = config_from_dict({"data": {"path": str(tmp / "tos.csv"), "id_column": "id",
                                     "label_columns": ["arbitration", "limitation_of_liability"]},
                            "split": {"n_clusters": 4}, "model": {"params": {"ngram_max": 1}}})
    run_pipeline(cfg, tmp / "run")
    return tmp / "run"


def _with_variables(run, roles, *, labels: bool):
    """Put a real ``role`` block into the run's metrics.json (test and val), optionally dropping the labels."""
    from lexcoder.report import build_report
    metrics = json.loads((run / "metrics.json").read_text())
    head = np.arange(len(roles["y"])) < 200  # the val block: the first 200 rows
    metrics["variables"] = {"role": evaluate_variable(roles["y"], roles["P"], roles["classes"], bootstrap=100,
                                                      groups=roles["test"]["group"].to_numpy())}
    metrics["val"]["variables"] = {"role": evaluate_variable(roles["y"][head], roles["P"][head], roles["classes"])}
    if not labels:
        for block in (metrics, metrics["val"]):
            block.update({"labels": {}, "macro": None, "micro": None})
    (run / "metrics.json").write_text(json.dumps(metrics))
    build_report(run)
    return metrics, (run / "report.html").read_text(encoding="utf-8"), (run / "report.md").read_text(encoding="utf-8")


def test_report_shows_a_variable_beside_the_labels(labels_run, roles):
    metrics, html, md = _with_variables(labels_run, roles, labels=True)
    role = metrics["variables"]["role"]
    assert 'id="variable-role"' in html and 'id="label-arbitration"' in html
    images = re.findall(r'<img[^>]*src="([^"]+)"', html)
    assert len(images) == 2 + 1 + 1  # two labels' panels, the F1 overview, the role's heat map
    assert f"majority: always “{role['baseline']['class']}”" in html
    lo, hi = role["macro_f1_ci"]
    assert f"{role['macro_f1']:.3f}<br><small>[{lo:.3f}, {hi:.3f}]</small>" in html
    for c, m in role["per_class"].items():
        row = next(line for line in md.splitlines() if line.startswith(f"| {c} |"))
        assert f"| {m['support']} |" in row and f"{m['f1']:.3f} [" in row
    assert "| arbitration |" in md and "### role (7 classes, " in md


def test_report_of_a_run_with_variables_only(labels_run, roles):
    metrics, html, md = _with_variables(labels_run, roles, labels=False)
    assert 'id="variable-role"' in html and 'id="labels"' not in html and "F1 per label" not in html
    assert len(re.findall(r'<img[^>]*src="data:image/png;base64,', html)) == 1
    assert "| label | positives |" not in md and "### role (7 classes, " in md
    # one judgment's rows: small classes flagged in the report
    rows = (roles["test"]["group"] == roles["test"]["group"].iloc[0]).to_numpy()
    small = evaluate_variable(roles["y"][rows], roles["P"][rows], roles["classes"])
    metrics["variables"]["role"] = small
    (labels_run / "metrics.json").write_text(json.dumps(metrics))
    from lexcoder.report import build_report
    build_report(labels_run)
    html = (labels_run / "report.html").read_text(encoding="utf-8")
    assert f"Fewer than {SMALL_SUPPORT} texts in the test split: {', '.join(small['small_support'])}" in html
    if shutil.which("chromium"):  # a look by hand: /tmp/variables_report.png
        subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--disable-background-networking", f"--user-data-dir={labels_run.parent / 'profile'}",
                        "--screenshot=/tmp/variables_report.png", "--window-size=1400,2400",
                        (labels_run / "report.html").as_uri()], capture_output=True, timeout=120)


def test_console_table_of_a_variable(roles, block):
    with console.capture() as out:
        show_variables({"split": "test", "labels": {}, "variables": {"role": block}})
    text = out.get()
    lo, hi = block["macro_f1_ci"]
    assert "role" in text and f"{block['macro_f1']:.3f}" in text and f"[{lo:.3f}, {hi:.3f}]" in text
    assert f"{block['baseline']['accuracy']:.3f}" in text and f"{block['cohen_kappa']:.3f}" in text
    with console.capture() as out:
        show_variables({"split": "test", "labels": {"a": {}}})
    assert out.get() == ""


def test_heat_map_draws_any_class_name():
    from lexcoder.report.plots import CLASS_NAME_WIDTH, class_confusion, class_name_label
    long = "Ruling by the court below " * 5
    label = class_name_label(long)
    assert len(label.split("\n")) == 2 and label.endswith("…")
    assert all(len(line) <= CLASS_NAME_WIDTH for line in label.split("\n"))
    # names are data: "$" is no mathtext, a newline no line break
    uri = class_confusion([[3, 1, 0], [0, 2, 1], [1, 0, 4]], ["a$b$_c", "x\ny", long], title="v$a$r: confusion")
    assert uri.startswith("data:image/png;base64,")
