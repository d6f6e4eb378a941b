"""Categorical variables (`[data] class_columns`) through a whole run: config, validation, split, model,
decisions, metrics, predictions, predict — on the Indian Supreme Court rhetorical roles (one role per
sentence, whole judgments as groups)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tomli_w
from typer.testing import CliRunner

from lexcoder.cli import app
from lexcoder.config import load_config
from lexcoder.errors import ConfigError, DataError
from lexcoder.pipeline import run_pipeline

runner = CliRunner()


@pytest.fixture(scope="module")
def roles(shared_data) -> pd.DataFrame:
    """The 20 shortest judgments (about 2,000 sentences), with the role as `role` and a 0/1 label recoded
    from it."""
    df = pd.read_csv(shared_data("indian_sc_rhetorical_roles/texts.csv.gz"))
    df = df[df["group"].isin(df["group"].value_counts().sort_values().index[:20]) & (df["text"].str.len() < 300)]
    return df.rename(columns={"label": "role"}).assign(facts=lambda d: (d["role"] == "Facts").astype(int))


def _config(tmp_path, data: pd.DataFrame, **data_keys) -> "Path":
    data.to_csv(tmp_path / "roles.csv", index=False)
    raw = {"data": {"path": "roles.csv", "id_column": "id", "group_column": "group", **data_keys},
           "split": {"n_clusters": 8, "duplicates": "keep_groups"}, "evaluate": {"bootstrap": 20}, "report": {"enabled": False}}
    (tmp_path / "roles.toml").write_text(tomli_w.dumps(raw))
    return tmp_path / "roles.toml"


@pytest.mark.slow  # several seconds on 2 cores: CI runs it (make test); the quick suite (-m 'not slow') does not
def test_a_run_with_a_categorical_variable_codes_every_class(roles, tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", str(_config(tmp_path, roles, class_columns=["role"])), "--out", str(out)])
    assert res.exit_code == 0, res.output
    classes = sorted(roles["role"].unique())
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["data"]["classes"] == {"role": classes}
    splits = pd.read_parquet(out / "splits.parquet")
    assert splits.merge(roles[["id", "group"]].astype(str)).groupby("group")["split"].nunique().max() == 1
    train_roles = set(roles.set_index(roles["id"].astype(str)).loc[splits.loc[splits["split"] == "train", "id"],
                                                                   "role"])
    assert train_roles == set(classes)  # stratified by class: every role is learnt
    metrics = json.loads((out / "metrics.json").read_text())
    block = metrics["variables"]["role"]
    assert block["classes"] == classes and metrics["labels"] == {}
    preds = pd.read_parquet(out / "predictions.parquet")
    probs = preds[[f"role_prob_{c}" for c in classes]].to_numpy()
    assert np.allclose(probs.sum(axis=1), 1)
    assert (preds["role_pred"] == np.asarray(classes)[probs.argmax(axis=1)]).all()
    test = preds[preds["split"] == "test"].merge(roles[["id", "role"]].astype({"id": str}))
    assert block["accuracy"] == pytest.approx((test["role_pred"] == test["role"]).mean())
    assert np.asarray(block["confusion"]).sum() == len(test)
    # real words: clearly better than always answering the training split's most frequent role
    assert block["macro_f1"] > block["baseline"]["macro_f1"] + 0.1
    # the console says how the decisions were made: the temperature (default on) and the ECE it changed
    said = " ".join(res.output.split())
    assert (f"role: probabilities rescaled by temperature T = {block['temperature']:.2f} "
            f"(ECE {block['before_temperature']['ece']:.3f} → {block['ece']:.3f})") in said


@pytest.mark.slow  # several seconds on 2 cores: CI runs it (make test); the quick suite (-m 'not slow') does not
def test_labels_and_variables_together_and_predict(roles, tmp_path):
    out = tmp_path / "run"
    cfg = _config(tmp_path, roles, class_columns=["role"], label_columns=["facts"])
    run_pipeline(load_config(cfg), out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["labels"]) == {"facts"} and set(metrics["variables"]) == {"role"}
    assert set(metrics["val"]["variables"]) == {"role"}
    new = roles.drop(columns=["role", "facts"]).head(30)
    new.to_csv(tmp_path / "new.csv", index=False)
    res = runner.invoke(app, ["predict", str(out), str(tmp_path / "new.csv"), "--out", str(tmp_path / "coded.csv")])
    assert res.exit_code == 0, res.output
    coded = pd.read_csv(tmp_path / "coded.csv")
    classes = sorted(roles["role"].unique())
    assert {"facts_prob", "facts_pred", "role_pred", *(f"role_prob_{c}" for c in classes)} <= set(coded.columns)
    assert set(coded["role_pred"]) <= set(classes) and len(coded) == 30
    preds = pd.read_parquet(out / "predictions.parquet").set_index("id")
    same = preds.loc[new["id"].astype(str), "role_pred"].to_numpy()
    assert (coded["role_pred"].to_numpy() == same).all()  # predict gives the run's own decisions


@pytest.mark.slow  # several seconds on 2 cores: CI runs it (make test); the quick suite (-m 'not slow') does not
def test_kfold_gives_out_of_fold_class_figures(roles, tmp_path):
    out = tmp_path / "run"
    small = roles[roles["group"].isin(roles["group"].unique()[:12])]
    cfg = _config(tmp_path, small, class_columns=["role"])
    run_pipeline(load_config(cfg, ["split.method=kfold", "split.n_folds=3", "evaluate.bootstrap=0"]), out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "cv" and "role" in metrics["variables"]
    preds = pd.read_parquet(out / "predictions.parquet")
    assert preds["role_pred"].notna().all()


@pytest.mark.parametrize("edit,message", [
    (lambda d: d.assign(role=d["role"].where(d.index != d.index[3], "")), "missing class; column 'role' is empty"),
    (lambda d: d.assign(role="Facts"), "needs at least two classes"),
])
def test_bad_class_columns_are_refused_before_anything_is_written(roles, tmp_path, edit, message):
    cfg = _config(tmp_path, edit(roles.copy()), class_columns=["role"])
    with pytest.raises(DataError, match=message):
        run_pipeline(load_config(cfg), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_column_cannot_be_both_kinds_and_one_kind_is_needed(roles, tmp_path):
    with pytest.raises(ConfigError, match="listed in both label_columns and class_columns"):
        load_config(_config(tmp_path, roles, class_columns=["facts"], label_columns=["facts"]))
    with pytest.raises(ConfigError, match="name the coded columns"):
        load_config(_config(tmp_path, roles))
    # two variables whose model folders would be one on a case-insensitive file system (macOS, Windows)
    with pytest.raises(ConfigError, match=r"\['role', 'Role'\] differ only in case"):
        load_config(_config(tmp_path, roles.assign(Role=roles["role"]), class_columns=["role", "Role"]))


@pytest.mark.slow  # several seconds on 2 cores: CI runs it (make test); the quick suite (-m 'not slow') does not
def test_stages_that_cover_labels_only_say_so_for_a_variables_only_run(roles, tmp_path):
    out = tmp_path / "run"
    run_pipeline(load_config(_config(tmp_path, roles, class_columns=["role"])), out)
    # (the audit covers categorical variables: tests/audit/test_variables_audit.py)
    from lexcoder.estimate import estimate_run  # estimates cover variables (tests/test_estimate_variables.py) ...
    with pytest.raises(DataError, match=r"missing column\(s\) \['role_prob_"):  # ... of a coded corpus
        estimate_run(out, tmp_path / "roles.csv", tmp_path / "roles.csv")


@pytest.mark.slow  # several seconds on 2 cores: CI runs it (make test); the quick suite (-m 'not slow') does not
def test_a_class_missing_from_training_stops_the_run_and_empty_cells_can_be_dropped(roles, tmp_path):
    groups = sorted(roles["group"].unique())
    data = roles.assign(split=np.where(roles["group"].isin(groups[:12]), "train",
                                       np.where(roles["group"].isin(groups[12:16]), "val", "test")))
    rare = data.index[data["split"] == "test"][:3]
    data.loc[rare, "role"] = "Dissent"  # a class only the test rows have
    cfg = _config(tmp_path, data, class_columns=["role"])
    with pytest.raises(DataError, match=r"'role = Dissent' has no positive \(1\) example in the training split"):
        run_pipeline(load_config(cfg, ["split.method=column", "split.column=split"]), tmp_path / "run")
    assert not (tmp_path / "run").exists()
    blank = roles.index[:4]
    cfg = _config(tmp_path, roles.assign(role=roles["role"].where(~roles.index.isin(blank), "")),
                  class_columns=["role"], drop_missing_labels=True)
    run_pipeline(load_config(cfg, ["evaluate.bootstrap=0"]), tmp_path / "dropped")
    manifest = json.loads((tmp_path / "dropped" / "manifest.json").read_text())
    assert manifest["data"]["dropped_missing_labels"] == 4


def test_class_values_are_read_as_text_and_numbers_written_alike_are_one_class():
    """README: values are read as text (`1` and `1.0` are the same class); odd cells are refused by row."""
    from lexcoder.data import normalize_classes
    values = pd.Series([1, 1.0, "1", " Facts ", "n/a", None, 2.5, "Argument"])
    out = normalize_classes(values, column="role", source="t.csv")
    assert out.tolist()[:5] == ["1", "1", "1", "Facts", pd.NA] and out.isna().tolist()[5]
    assert out.tolist()[6:] == ["2.5", "Argument"]
    with pytest.raises(DataError, match=r"column 'role' \(class_columns\) must hold text or numbers, but rows 2"):
        normalize_classes(pd.Series(["a", pd.Timestamp("2020-01-01")]), column="role", source="t.csv")
