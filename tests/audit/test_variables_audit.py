"""Audit and corrections of categorical variables (class_columns) on the Indian Supreme Court rhetorical roles.

Ten short judgments (about 1.1k sentences, 7 roles). A seeded 5 % of the sentences get another role; the
audit must rank them above the rest, name a suggested role, and the review → ledger → retrain loop must
carry class values. One role is renamed ``=Statute`` so that a class value a spreadsheet would run as a
formula goes through the CSV view, the review file and the ledger.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lexcoder import config_from_dict, run_pipeline
from lexcoder.audit import CLASS_QUEUE_COLUMNS, apply_review, audit_run, compare_runs
from lexcoder.report import build_report
from lexcoder.cli import app
from lexcoder.errors import DataError
from lexcoder.ledger import check_corrections, read_ledger, training_table

FORMULA_ROLE = "=Statute"  # a user's class value that starts like a spreadsheet formula
SWAP_RATE = 0.05


@pytest.fixture(scope="module")
def roles(shared_data, tmp_path_factory):
    """The ten smallest judgments with 5 % of the roles swapped (seed 11).

    Returns ``(data file, config, true roles by id, ids of the swapped rows)``.
    """
    df = pd.read_csv(shared_data("indian_sc_rhetorical_roles/texts.csv.gz"))
    small = df["group"].value_counts().sort_values().index[:10]
    part = df[df["group"].isin(small)].reset_index(drop=True).rename(columns={"label": "role"})
    part["role"] = part["role"].replace({"Statute": FORMULA_ROLE})
    rng = np.random.default_rng(11)
    classes = sorted(part["role"].unique())
    swapped = rng.choice(len(part), int(round(SWAP_RATE * len(part))), replace=False)
    noisy = part.copy()
    noisy.loc[swapped, "role"] = [rng.choice([c for c in classes if c != part["role"][i]]) for i in swapped]
    root = tmp_path_factory.mktemp("roles")
    data = root / "roles.csv"
    noisy[["id", "group", "text", "role"]].to_csv(data, index=False)
    cfg = config_from_dict({"data": {"path": str(data), "text_column": "text", "id_column": "id",
                                     "class_columns": ["role"], "group_column": "group"},
                            "split": {"duplicates": "keep_groups"}, "report": {"enabled": False}})
    return data, cfg, part.set_index("id")["role"], set(part["id"][swapped])


@pytest.fixture(scope="module")
def roles_run(roles, tmp_path_factory):
    """A finished run on the noisy roles (no 0/1 labels), audited once (4 folds) so that later audits reuse
    the out-of-fold probabilities."""
    _, cfg, _, _ = roles
    run_dir = tmp_path_factory.mktemp("roles_run") / "run"
    run_pipeline(cfg, run_dir)
    audit_run(run_dir, n_folds=4)
    return run_dir


def _percentile_of_swapped(run_dir, swapped: set[str]) -> float:
    """Mean rank percentile (0 = most suspect) of the swapped rows by the out-of-fold p(given role)."""
    oof = pd.read_parquet(run_dir / "audit_oof.parquet")
    given = pd.read_parquet(run_dir / "data.parquet").set_index("id").loc[oof["id"], "role"].astype(str)
    columns = [c for c in oof.columns if c.startswith("role_prob_")]
    p_given = oof[columns].to_numpy()[np.arange(len(oof)), [columns.index(f"role_prob_{c}") for c in given]]
    percentile = pd.Series(p_given).rank(pct=True).to_numpy()
    return float(percentile[oof["id"].isin(swapped).to_numpy()].mean())


@pytest.mark.parametrize("method", ["loss", "cleanlab"])
def test_swapped_roles_are_ranked_on_top(roles, roles_run, method):
    _, _, truth, swapped = roles
    result = audit_run(roles_run, n_folds=4, method=method)
    queue = result.queue
    assert list(queue.columns) == CLASS_QUEUE_COLUMNS and set(queue["label"]) == {"role"}
    base_rate = len(swapped) / len(truth)
    hits = queue["id"].isin(swapped)
    # a weak model (sentences without context) flags many rows, but the swapped ones come first
    assert hits.sum() >= 0.6 * len(swapped) and hits.mean() > 1.5 * base_rate
    assert queue.head(len(swapped))["id"].isin(swapped).mean() >= 3 * base_rate
    assert _percentile_of_swapped(roles_run, swapped) < 0.3  # random order: 0.5
    # the suggestion is another known role, and for a swapped row often the true one (chance: 1 in 6)
    classes = set(truth.unique())
    assert set(queue["suggested_value"]) <= classes and (queue["suggested_value"] != queue["human_value"]).all()
    sw = queue[hits]
    assert (sw["suggested_value"].to_numpy() == truth.loc[sw["id"]].to_numpy()).mean() > 0.3
    assert (queue["score"] == queue["model_probability"]).all()
    flagged = queue[queue["group"] == ""]  # after the conflicting (near-)duplicates, which open the queue
    assert (queue["suggested_probability"] >= 0).all() and (flagged["score"].diff().dropna() >= 0).all()


def test_summary_per_variable(roles, roles_run):
    _, _, truth, _ = roles
    result = audit_run(roles_run, n_folds=4)
    summary = json.loads((roles_run / "audit_summary.json").read_text())
    block = summary["variables"]["role"]
    assert summary["labels"] == {} and summary["out_of_fold"]["before"] is None
    assert block["rows"] == len(truth) == sum(block["counts"].values())
    assert block["classes"] == sorted(truth.unique())
    assert block["in_queue"] == len(result.queue) >= block["flagged"] > 0
    assert 0 < block["estimated_noise_rate"] < 1
    assert block["reviewed"] == block["changed"] == 0
    before = block["out_of_fold"]["before"]
    assert before["accuracy"] > max(block["counts"].values()) / block["rows"]  # beats the majority class


def test_formula_like_class_is_neutralised_in_the_csv(roles_run):
    result = audit_run(roles_run, n_folds=4, label="role")
    sheet = pd.read_csv(result.csv_path, dtype=str, keep_default_na=False)
    formula = result.view["human_value"] == FORMULA_ROLE
    assert formula.any()
    assert (sheet.loc[formula.to_numpy(), "human_value"] == "'" + FORMULA_ROLE).all()
    assert not sheet["suggested_value"].str.startswith("=").any()


def _review(run_dir, tmp_path, decisions: dict[int, tuple[str, str]], name="reviewed.csv"):
    """The CSV view as a reviewer saves it: ``decisions`` maps view positions to (decision, new_value)."""
    sheet = pd.read_csv(run_dir / "label_issues.csv", dtype=str, keep_default_na=False)
    for pos, (decision, new_value) in decisions.items():
        sheet.loc[pos, ["decision", "new_value"]] = [decision, new_value]
    path = tmp_path / name
    sheet.to_csv(path, index=False, encoding="utf-8-sig")
    return path, sheet


def _table_row(markdown: str, header: str, first_cell: str) -> list[str]:
    """The cells of the row starting with ``first_cell`` in the Markdown table whose header starts with ``header``."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} in the table {header!r}")


@pytest.mark.slow  # retrains the run (several seconds on 2 cores)
def test_review_ledger_and_retrain_on_corrected_roles(roles, roles_run, tmp_path):
    _, cfg, truth, swapped = roles
    queue = audit_run(roles_run, n_folds=4).queue
    fixes = np.flatnonzero(queue["id"].isin(swapped).to_numpy() & (queue["human_value"] != FORMULA_ROLE).to_numpy())
    first, second = fixes[:2]  # swapped rows: one typed back to its true role, one to the suggested role
    kept = int(np.flatnonzero(queue["human_value"].eq(FORMULA_ROLE).to_numpy())[0])
    true_first = truth[queue["id"][first]]
    # "Change" with an empty new_value: the suggested role
    path, _ = _review(roles_run, tmp_path, {first: ("change", true_first), second: ("Change", ""), kept: ("keep", "")})
    ledger = tmp_path / "corrections.csv"
    res = apply_review(roles_run, path, reviewer="A. Coder", ledger=ledger)
    assert len(res.added) == 3 and res.skipped == 0
    entries = read_ledger(ledger, ["role"]).set_index("id")
    assert entries.loc[queue["id"][first], "new_value"] == true_first
    assert entries.loc[queue["id"][second], "new_value"] == queue["suggested_value"][second]
    assert entries.loc[queue["id"][kept], ["old_value", "new_value"]].tolist() == [FORMULA_ROLE] * 2
    assert "'" + FORMULA_ROLE in ledger.read_text(encoding="utf-8")  # the ledger CSV is guarded too
    block = res.summary["variables"]["role"]
    assert (block["reviewed"], block["changed"], block["kept"]) == (3, 2, 1)
    assert block["out_of_fold"]["after"] is not None
    again = apply_review(roles_run, path, reviewer="A. Coder", ledger=ledger)
    assert len(again.added) == 0 and again.skipped == 3

    run2 = tmp_path / "run2"
    run_pipeline(cfg, run2, corrections=ledger)
    manifest = json.loads((run2 / "manifest.json").read_text())
    assert manifest["corrections"]["variables_changed"] == {"role": 2}
    applied = pd.read_parquet(run2 / "corrections_applied.parquet")
    assert set(applied["id"]) == {queue["id"][i] for i in (first, second, kept)}
    original = pd.read_parquet(run2 / "data.parquet")
    trained = training_table(run2, original, []).set_index("id")["role"]  # classes from the run's config
    assert trained[queue["id"][first]] == true_first
    assert trained[queue["id"][second]] == queue["suggested_value"][second]
    assert original.set_index("id")["role"][queue["id"][first]] == queue["human_value"][first]  # originals kept
    metrics = json.loads((run2 / "metrics.json").read_text())
    assert 0 < metrics["variables"]["role"]["accuracy"] <= 1

    report = compare_runs(roles_run, run2, bootstrap=50)
    role = report["variables"]["role"]
    assert role["changed"] == 2 and "original" not in report and report["corrections"] == {}
    m1 = json.loads((roles_run / "metrics.json").read_text())["variables"]["role"]
    assert role["original"]["before"]["accuracy"] == pytest.approx(m1["accuracy"])
    assert role["original"]["before"]["macro_f1"] == pytest.approx(m1["macro_f1"])
    low, high = role["corrected"]["delta_accuracy_ci"]
    assert low <= role["corrected"]["delta_accuracy"] + 1e-12 <= high + 2e-12
    assert "Categorical variables against the corrected codes" in (run2 / "corrections_report.md").read_text()

    # both reports show the variable: the audit table (reviewed/changed) and the corrections table (macro-F1)
    audited = build_report(roles_run).md.read_text(encoding="utf-8")
    cells = _table_row(audited, "| variable | classes | in queue", "role")
    assert cells[5:7] == ["3", "2"]  # reviewed, changed
    retrained = build_report(run2).md.read_text(encoding="utf-8")
    cells = _table_row(retrained, "| label | changed | in test", "role (macro-F1)")
    assert cells[1] == "2" and float(cells[3]) == pytest.approx(m1["macro_f1"], abs=6e-4)


def test_bad_class_in_the_review_exits_2_naming_the_row(roles, roles_run, tmp_path):
    _, _, truth, _ = roles
    runner = CliRunner()
    out = runner.invoke(app, ["audit", str(roles_run), "--folds", "4", "--top", "5"])
    assert out.exit_code == 0, out.output
    assert "Categorical variables" in out.output and "suggested" in out.output
    path, _ = _review(roles_run, tmp_path, {0: ("keep", ""), 2: ("change", "Holding")})
    ledger = tmp_path / "corrections.csv"
    res = runner.invoke(app, ["corrections", "apply", str(roles_run), str(path), "--reviewer", "A",
                              "--ledger", str(ledger)])
    assert res.exit_code == 2
    message = " ".join(res.output.split())
    assert "row 4" in message and "'Holding' is not a class of 'role'" in message
    assert "Ratio of the decision" in message  # the valid classes are listed
    assert not ledger.exists()
    path, _ = _review(roles_run, tmp_path, {1: ("flip", "")}, "flip.csv")
    res = runner.invoke(app, ["corrections", "apply", str(roles_run), str(path), "--reviewer", "A",
                              "--ledger", str(ledger)])
    assert res.exit_code == 2 and "row 3" in res.output and "keep or change" in res.output


def _ledger(path, rows: list[dict]) -> None:
    base = {"reviewer": "A", "timestamp": "2026-11-30", "note": "", "source_run": "r"}
    pd.DataFrame([{**base, **r} for r in rows]).to_csv(path, index=False)


def test_check_corrections_validates_class_values_against_the_data(roles_run, tmp_path):
    data = pd.read_parquet(roles_run / "data.parquet")
    row = data.iloc[5]
    other = next(c for c in sorted(data["role"].unique()) if c != row["role"])
    good = tmp_path / "good.csv"
    _ledger(good, [{"id": row["id"], "label": "role", "old_value": row["role"], "new_value": other}])
    ledger, block = check_corrections(data, good, [], ["role"])
    assert block["variables_changed"] == {"role": 1} and ledger["new_value"].tolist() == [other]
    cases = [
        ({"new_value": "Holding"}, r"row 2: .*new_value 'Holding', which is not one of its classes \[.*'Facts'"),
        ({"old_value": other, "new_value": row["role"]}, r"row 2: .*old_value .* but the variable is"),
        ({"id": "no_such_id"}, r"row 2: id 'no_such_id' is not in the data"),
        ({"label": "rol"}, r"must be 0 or 1 for a 0/1 label; ledger rows 2 \(label\(s\) \['rol'\]\)"),
    ]
    for change, message in cases:
        bad = tmp_path / "bad.csv"
        _ledger(bad, [{"id": row["id"], "label": "role", "old_value": row["role"], "new_value": other, **change}])
        with pytest.raises(DataError, match=message):
            check_corrections(data, bad, [], ["role"])
    with pytest.raises(DataError, match=r"'old_value' must be 0 or 1 for a 0/1 label"):
        read_ledger(good)  # without the run's class_columns a class entry is not a 0/1 code


@pytest.mark.slow  # a second run (0/1 label + variable)
def test_labels_and_variables_are_audited_and_corrected_together(roles, tmp_path):
    data = roles[0]
    df = pd.read_csv(data)
    df["precedent"] = (df["role"] == "Precedent").astype(int)  # a 0/1 label beside the role
    both = tmp_path / "both.csv"
    df.to_csv(both, index=False)
    mixed = config_from_dict({"data": {"path": str(both), "text_column": "text", "id_column": "id",
                                       "label_columns": ["precedent"], "class_columns": ["role"],
                                       "group_column": "group"},
                              "split": {"duplicates": "keep_groups"}, "report": {"enabled": False}})
    run_pipeline(mixed, tmp_path / "run")
    queue = audit_run(tmp_path / "run", n_folds=3).queue
    assert {"precedent", "role"} == set(queue["label"]) and queue["rank"].tolist() == list(range(1, len(queue) + 1))
    label_row = int(np.flatnonzero(queue["label"].eq("precedent").to_numpy())[0])
    role_row = int(np.flatnonzero(queue["label"].eq("role").to_numpy())[0])
    assert queue["suggested_value"][label_row] == str(1 - int(queue["human_value"][label_row]))
    path, _ = _review(tmp_path / "run", tmp_path, {label_row: ("flip", ""), role_row: ("change", "")})
    ledger = tmp_path / "corrections.csv"
    res = apply_review(tmp_path / "run", path, reviewer="A", ledger=ledger)
    assert len(res.added) == 2 and res.summary["labels"]["precedent"]["flipped"] == 1
    assert res.summary["variables"]["role"]["changed"] == 1
    entries = read_ledger(ledger, ["role"]).set_index("label")
    assert entries.loc["precedent", "new_value"] == str(1 - int(queue["human_value"][label_row]))
    assert entries.loc["role", "new_value"] == queue["suggested_value"][role_row]
    _, block = check_corrections(pd.read_parquet(tmp_path / "run" / "data.parquet"), ledger, ["precedent"], ["role"])
    assert block["labels_changed"] == {"precedent": 1} and block["variables_changed"] == {"role": 1}
