"""Decisions of a categorical variable (lexcoder.decide): temperature scaling and a per-class bias fitted on
validation, through a run, predict and an old run without a decision file.

Real data: rhetorical roles of sentences in Indian Supreme Court judgments (7 roles), a TF-IDF softmax model
trained on two of the authors' document folds, validated on a third and tested on a fourth. Expected figures
come from scikit-learn, not from lexcoder.
"""
from __future__ import annotations

import json
import logging
import shutil
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import tomli_w
from sklearn.metrics import f1_score, log_loss
from typer.testing import CliRunner

from lexcoder.clean import clean_text
from lexcoder.cli import app
from lexcoder.config import load_config
from lexcoder.decide import (ClassDecision, DecidedModel, fit_class_bias, fit_temperature, scale_probabilities,
                             temperature_log_loss, with_saved_decision)
from lexcoder.errors import LexcoderError
from lexcoder.models import load_model
from lexcoder.models.tfidf import TfidfClassifier
from lexcoder.pipeline import run_pipeline
from lexcoder.rundir import RunDir

runner = CliRunner()


@pytest.fixture(scope="module")
def roles(shared_data):
    """Short sentences; a model fitted on folds 0-1, its probabilities on fold 2 (validation) and 3 (test)."""
    df = pd.read_csv(shared_data("indian_sc_rhetorical_roles/texts.csv.gz"))
    df = df[df["text"].str.len() < 300]
    train = df[df["fold"].isin([0, 1])]
    model = TfidfClassifier(ngram_max=1).fit(train["text"].tolist(), train["label"].to_numpy())
    classes = list(model.classes_)
    out = {"classes": classes}
    for name, fold in (("val", 2), ("test", 3)):
        part = df[df["fold"] == fold].reset_index(drop=True)
        out[name] = {"y": np.array([classes.index(c) for c in part["label"]]),
                     "P": model.predict_proba(part["text"].tolist()), "group": part["group"].to_numpy()}
    return out


def _macro_f1(y, pred, k):
    return f1_score(y, pred, labels=list(range(k)), average="macro", zero_division=0)


# -- temperature -----------------------------------------------------------------------------------------------


def test_temperature_keeps_every_decision_and_lowers_the_validation_log_loss(roles):
    val, test, k = roles["val"], roles["test"], len(roles["classes"])
    T = fit_temperature(val["y"], val["P"])
    assert T != 1.0  # TF-IDF's softmax is not calibrated as it is on these folds
    for part in (val, test):
        scaled = scale_probabilities(part["P"], T)
        assert np.allclose(scaled.sum(axis=1), 1)
        assert (scaled.argmax(axis=1) == part["P"].argmax(axis=1)).all()
    labels = list(range(k))
    assert log_loss(val["y"], scale_probabilities(val["P"], T), labels=labels) < log_loss(val["y"], val["P"],
                                                                                          labels=labels)
    # a minimum: a step either side is worse
    for step in (0.95, 1.05):
        assert temperature_log_loss(val["y"], val["P"], T * step) > temperature_log_loss(val["y"], val["P"], T)


def test_temperature_undoes_a_known_sharpening_and_is_one_on_calibrated_probabilities(roles):
    val = roles["val"]
    T = fit_temperature(val["y"], val["P"])
    # probabilities sharpened by 1/3 need three times the temperature
    assert fit_temperature(val["y"], scale_probabilities(val["P"], 1 / 3)) == pytest.approx(3 * T, rel=1e-3)
    # once rescaled, no other temperature lowers the log-loss (T = 1 is optimal, up to the search's tolerance)
    assert fit_temperature(val["y"], scale_probabilities(val["P"], T)) == pytest.approx(1.0, abs=1e-3)


def test_a_validation_split_without_a_class_still_fits(roles, caplog):
    val, classes = roles["val"], roles["classes"]
    rare = int(np.argmin(np.bincount(val["y"], minlength=len(classes))))
    keep = val["y"] != rare
    T = fit_temperature(val["y"][keep], val["P"][keep])
    assert 0.05 <= T <= 20
    with caplog.at_level(logging.WARNING):
        rule = ClassDecision(class_bias="macro_f1", name="role").fit(val["y"][keep], val["P"][keep], classes)
    assert rule.temperature_ == pytest.approx(T)
    assert classes[rare] in rule.not_tuned_ and rule.bias_[rare] == 0
    assert classes[rare] in caplog.text and "fewer than 10 validation rows" in caplog.text


def test_no_validation_rows_leaves_the_softmax_and_the_argmax(roles, caplog):
    test, classes = roles["test"], roles["classes"]
    with caplog.at_level(logging.WARNING):
        rule = ClassDecision(class_bias="macro_f1", name="role").fit(np.zeros(0, int), np.zeros((0, 7)), classes)
    assert "no validation rows" in caplog.text
    assert rule.temperature_ == 1.0 and rule.bias_ is None
    assert np.array_equal(rule.transform(test["P"]), test["P"])
    assert (rule.decide(test["P"]) == test["P"].argmax(axis=1)).all()


# -- class bias ------------------------------------------------------------------------------------------------


def test_class_bias_never_lowers_the_validation_macro_f1(roles):
    val, k = roles["val"], len(roles["classes"])
    rule = ClassDecision(class_bias="macro_f1").fit(val["y"], val["P"], roles["classes"])
    scaled = rule.transform(val["P"])
    plain, decided = _macro_f1(val["y"], scaled.argmax(axis=1), k), _macro_f1(val["y"], rule.decide(scaled), k)
    assert decided >= plain
    assert rule.validation_["macro_f1"] == {"argmax": pytest.approx(plain), "decided": pytest.approx(decided)}
    if decided > plain:  # it moved some decisions, through a bias on at least one class
        assert np.abs(rule.bias_).max() > 0 and (rule.decide(scaled) != scaled.argmax(axis=1)).any()


def test_a_bias_that_cannot_help_stays_zero(roles):
    val = roles["val"]
    # codes equal to the model's argmax: macro-F1 is 1 already, every bias ties with 0 and 0 is kept
    bias, not_tuned = fit_class_bias(val["P"].argmax(axis=1), val["P"])
    assert not np.any(bias) and not_tuned == [c for c in range(7) if (val["P"].argmax(axis=1) == c).sum() < 10]


def test_too_few_rows_per_class_skips_the_bias(roles, caplog):
    val = roles["val"]
    with caplog.at_level(logging.WARNING):
        rule = ClassDecision(class_bias="macro_f1", min_rows=10 ** 6, name="role").fit(val["y"], val["P"],
                                                                                       roles["classes"])
    assert rule.bias_ is None and rule.summary()["class_bias"] is None
    assert "no class bias is tuned" in caplog.text


# -- the saved rule --------------------------------------------------------------------------------------------


def test_the_rule_round_trips_through_json(roles, tmp_path):
    val, test = roles["val"], roles["test"]
    rule = ClassDecision(class_bias="macro_f1").fit(val["y"], val["P"], roles["classes"])
    path = rule.save(tmp_path / "decision.json")
    saved = json.loads(path.read_text())
    assert saved["temperature"] == rule.temperature_ and saved["tuned_on"] == "val"
    assert saved["n_rows"] == len(val["y"]) and set(saved["bias"]) == set(roles["classes"])
    loaded = ClassDecision.load(path)
    assert np.array_equal(loaded.transform(test["P"]), rule.transform(test["P"]))
    assert np.array_equal(loaded.decide(rule.transform(test["P"])), rule.decide(rule.transform(test["P"])))
    path.write_text(json.dumps({**saved, "temperature": "hot"}))
    with pytest.raises(LexcoderError, match="not a lexcoder class decision"):
        ClassDecision.load(path)


def test_a_rule_for_other_classes_is_refused(roles, tmp_path):
    val = roles["val"]
    other = [f"x{c}" for c in roles["classes"]]
    ClassDecision().fit(val["y"], val["P"], other).save(tmp_path / "decision.json")
    model = SimpleNamespace(classes_=np.asarray(roles["classes"]))  # all the check reads of a model
    with pytest.raises(LexcoderError, match="lists the classes"):
        with_saved_decision(model, tmp_path / "decision.json")
    assert with_saved_decision(model, tmp_path / "absent.json") is model


# -- through a run, predict, an old run ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run(shared_data, tmp_path_factory):
    """A run (temperature + class bias) on the 20 shortest judgments, whole judgments as groups."""
    tmp = tmp_path_factory.mktemp("decide_run")
    df = pd.read_csv(shared_data("indian_sc_rhetorical_roles/texts.csv.gz"))
    df = df[df["group"].isin(df["group"].value_counts().sort_values().index[:20]) & (df["text"].str.len() < 300)]
    df.rename(columns={"label": "role"}).to_csv(tmp / "roles.csv", index=False)
    raw = {"data": {"path": "roles.csv", "id_column": "id", "group_column": "group", "class_columns": ["role"]},
           "split": {"n_clusters": 8, "duplicates": "keep_groups"}, "thresholds": {"class_bias": "macro_f1"},
           "evaluate": {"bootstrap": 0}, "report": {"enabled": False}}
    (tmp / "roles.toml").write_text(tomli_w.dumps(raw))
    run_pipeline(load_config(tmp / "roles.toml"), tmp / "run")
    return tmp / "run", df.rename(columns={"label": "role"})


@pytest.mark.slow  # a whole run: several seconds on 2 cores
def test_a_run_writes_scaled_probabilities_and_evaluates_the_decisions_made(run):
    out, df = run
    folder = out / "models" / "tfidf-class-role"
    rule = ClassDecision.load(folder / "decision.json")
    metrics = json.loads((out / "metrics.json").read_text())
    test, val = metrics["variables"]["role"], metrics["val"]["variables"]["role"]
    assert test["temperature"] == rule.temperature_ and test["class_bias"] == rule.summary()["class_bias"]
    assert not test["decision_in_sample"] and val["decision_in_sample"]
    assert {"accuracy", "macro_f1", "weighted_f1", "cohen_kappa", "classes", "confusion", "per_class"} <= set(test)
    classes = test["classes"]
    preds = pd.read_parquet(out / "predictions.parquet").merge(df[["id", "role"]].astype({"id": str}))
    P = preds[[f"role_prob_{c}" for c in classes]].to_numpy()
    # the written decisions are the rule's on the written probabilities (val: the model that did not see it)
    assert (preds["role_pred"] == np.asarray(classes)[rule.decide(P)]).all()
    rows = preds["split"] == "test"
    human, decided = preds.loc[rows, "role"], preds.loc[rows, "role_pred"]
    assert test["accuracy"] == pytest.approx((human == decided).mean())
    assert test["macro_f1"] == pytest.approx(f1_score(human, decided, average="macro", labels=classes,
                                                      zero_division=0))
    assert np.array_equal(test["confusion"], pd.crosstab(human, decided).reindex(
        index=classes, columns=classes, fill_value=0).to_numpy())
    assert test["before_temperature"]["log_loss"] != test["log_loss"] or rule.temperature_ == 1.0


@pytest.mark.slow  # a whole run (shared with the test above) and two predicts
def test_predict_reproduces_the_run_and_an_old_run_without_a_rule_still_predicts(run, tmp_path):
    out, df = run
    preds = pd.read_parquet(out / "predictions.parquet").set_index("id")
    new = df[df["id"].astype(str).isin(preds.index[preds["split"] == "test"])].drop(columns=["role"])
    new.to_csv(tmp_path / "new.csv", index=False)
    res = runner.invoke(app, ["predict", str(out), str(tmp_path / "new.csv"), "--out", str(tmp_path / "coded.csv")])
    assert res.exit_code == 0, res.output
    coded = pd.read_csv(tmp_path / "coded.csv")
    same = preds.loc[coded["id"].astype(str)]
    prob_columns = [c for c in coded.columns if c.startswith("role_prob_")]
    assert (coded["role_pred"].to_numpy() == same["role_pred"].to_numpy()).all()
    assert np.allclose(coded[prob_columns].to_numpy(), same[prob_columns].to_numpy())
    # an old run: the same folder without decision.json gives the model's own softmax and argmax
    old = tmp_path / "old"
    shutil.copytree(out, old)
    folder = old / "models" / "tfidf-class-role"
    (folder / "decision.json").unlink()
    res = runner.invoke(app, ["predict", str(old), str(tmp_path / "new.csv"), "--out", str(tmp_path / "old.csv")])
    assert res.exit_code == 0, res.output
    plain = pd.read_csv(tmp_path / "old.csv")
    model = load_model(folder)
    assert not isinstance(model, DecidedModel)
    cleaning = RunDir(old).load_config().clean
    P = model.predict_proba([clean_text(t, cleaning) for t in new["text"]])  # cleaned as predict cleans
    assert np.allclose(plain[[f"role_prob_{c}" for c in model.classes_]].to_numpy(), P)
    assert (plain["role_pred"].to_numpy() == np.asarray(model.classes_)[P.argmax(axis=1)]).all()
