"""Repeated runs (``lexcoder run … --repeat N``, README "Repeated runs"): N splits/seeds on real legal data,
figures as mean ± sd, in a folder that keeps the run folder's guarantees (ownership, lock, resume)."""
from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
import tomllib

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lexcoder import load_config, make_splits, run_repeats
from lexcoder.cli import app
from lexcoder.errors import ConfigError, DataError
from lexcoder.models.tfidf import TfidfClassifier
from lexcoder.repeats import FIGURES, spread
from lexcoder.rundir import RunDir, RunDirError

runner = CliRunner()
FAST = ["evaluate.bootstrap=0", "report.enabled=false"]  # one repeat of 3,000 ToS sentences: about 2 s


def said(res) -> str:
    """The CLI's output with rich's line wrapping undone."""
    return " ".join(res.output.split())


def tree(root) -> dict[str, tuple[str, int]]:
    """Every file under ``root`` with its sha256 and mtime (to prove nothing was added, changed or touched)."""
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def metrics_of(root, i: int) -> dict:
    return json.loads((root / f"repeat-{i}" / "metrics.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def data(tmp_path_factory, tos_docs, tos_labels, make_config):
    """The first 3,000 sentences of the document-level ToS slice and a config for them."""
    folder = tmp_path_factory.mktemp("repeats")
    tos_docs.iloc[:3000].to_csv(folder / "tos.csv", index=False)
    return make_config(folder, folder / "tos.csv", tos_labels), folder


@pytest.fixture(scope="module")
def three(data):
    """Three repeats through the CLI: (result, repeats folder)."""
    config, folder = data
    out = folder / "reps"
    sets = [arg for key in FAST for arg in ("--set", key)]
    res = runner.invoke(app, ["run", str(config), "--out", str(out), "--repeat", "3", *sets])
    assert res.exit_code == 0, res.output
    return res, out


def test_cli_prints_the_spread_table(three, tos_labels):
    res, out = three
    text = said(res)
    for i in (1, 2, 3):
        assert f"repeat {i} of 3 … split seed {41 + i}" in text
    assert text.index("repeat 3 of 3") < text.index("F1 mean ± sd")
    assert "min–max" in text and "always 1" in text
    assert "sd across 3 splits/seeds: differences smaller than this are split luck" in text
    summary = json.loads((out / "repeats.json").read_text(encoding="utf-8"))
    for name, block in [*summary["labels"].items(), ("macro", summary["macro"]), ("micro", summary["micro"])]:
        f1, base = block["f1"], block["baseline_f1"]
        row = (f"{name} {'! ' if block.get('small_support') else ''}{f1['mean']:.3f} ± {f1['sd']:.3f} "
               f"{f1['min']:.3f}–{f1['max']:.3f} {base['mean']:.3f}")
        assert row in text, row
    assert list(summary["labels"]) == tos_labels


def test_repeats_differ_in_split_and_seeds_only(three, data, tos_labels):
    _, out = three
    base = load_config(data[0], FAST)
    model_seed = TfidfClassifier().seed  # the family's default: the config sets none
    splits = {}
    for i in (1, 2, 3):
        run = RunDir(out / f"repeat-{i}")
        seeds = run.read_manifest()["seeds"]
        assert seeds == {"split": base.split.seed + i - 1, "model": model_seed + i - 1,
                         "evaluate": base.evaluate.seed + i - 1}
        splits[i] = pd.read_parquet(run.splits).set_index("id")["split"]
        # the split of repeat i is the split of seed + i - 1 (the same seeds give the same splits)
        cfg = load_config(data[0], [*FAST, f"split.seed={base.split.seed + i - 1}"])
        again = make_splits(pd.read_parquet(run.data), tos_labels, cfg.split)
        assert list(again["split"]) == list(pd.read_parquet(run.splits)["split"])
    for a, b in [(1, 2), (1, 3), (2, 3)]:
        assert (splits[a] != splits[b].loc[splits[a].index]).mean() > 0.2  # a real reshuffle, not a few rows
    # every other setting identical
    configs = [tomllib.loads((out / f"repeat-{i}" / "config.toml").read_text(encoding="utf-8")) for i in (1, 2, 3)]
    for cfg in configs:
        del cfg["split"]["seed"], cfg["evaluate"]["seed"], cfg["model"]["params"]["seed"]
    assert configs[0] == configs[1] == configs[2]
    assert configs[0]["report"]["enabled"] is False and configs[0]["evaluate"]["bootstrap"] == 0


def test_repeats_json_is_the_spread_of_the_repeats_metrics(three, tos_labels):
    _, out = three
    summary = json.loads((out / "repeats.json").read_text(encoding="utf-8"))
    runs = [metrics_of(out, i) for i in (1, 2, 3)]
    assert summary["n_repeats"] == 3 and summary["split"] == "test"
    assert [s["split"] for s in summary["seeds"]] == [42, 43, 44]

    def check(got: dict, values: list) -> None:
        defined = np.array([v for v in values if v is not None], dtype=float)
        assert got["values"] == values and got["n"] == len(defined)
        assert got["mean"] == pytest.approx(np.mean(defined))
        assert got["sd"] == pytest.approx(np.std(defined, ddof=1))
        assert (got["min"], got["max"]) == (pytest.approx(defined.min()), pytest.approx(defined.max()))

    for lab in tos_labels:
        for fig in FIGURES:
            check(summary["labels"][lab][fig], [m["labels"][lab][fig] for m in runs])
        check(summary["labels"][lab]["baseline_f1"], [m["labels"][lab]["baseline"]["f1"] for m in runs])
        assert summary["labels"][lab]["small_support"] == sum(m["labels"][lab]["small_support"] for m in runs)
    for avg, figures in (("macro", ("f1", "precision", "recall", "cohen_kappa", "baseline_f1")),
                         ("micro", ("f1", "precision", "recall", "baseline_f1"))):
        for fig in figures:
            check(summary[avg][fig], [m[avg][fig] for m in runs])
    assert summary["macro"]["f1"]["sd"] > 0  # three different test splits do not score alike
    manifest = json.loads((out / "repeats_manifest.json").read_text(encoding="utf-8"))
    assert manifest["status"] == "finished" and manifest["n_repeats"] == 3


def test_repeats_md_is_the_console_table(three, tos_labels):
    _, out = three
    md = (out / "repeats.md").read_text(encoding="utf-8").splitlines()
    summary = json.loads((out / "repeats.json").read_text(encoding="utf-8"))
    assert "| label | F1 mean ± sd | min–max | always-1 F1 mean |" in md
    for name, block in [*summary["labels"].items(), ("**macro**", summary["macro"])]:
        f1 = block["f1"]
        row = next(line for line in md if line.startswith(f"| {name} "))
        assert f"| {f1['mean']:.3f} ± {f1['sd']:.3f} | {f1['min']:.3f}–{f1['max']:.3f} | " \
               f"{block['baseline_f1']['mean']:.3f} |" in row
    assert sum(line.startswith("|") for line in md) == len(tos_labels) + 4  # header, rule, macro, micro


def test_an_undefined_figure_is_left_out_of_the_spread():
    got = spread([0.5, None, 0.7])
    assert got["mean"] == pytest.approx(0.6) and got["sd"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert got["n"] == 2 and got["values"] == [0.5, None, 0.7]
    assert spread([0.4, None])["sd"] is None and spread([None, None])["mean"] is None


@pytest.mark.slow  # several seconds on 2 cores: CI runs it (make test); the quick suite (-m 'not slow') does not
def test_an_interrupted_set_resumes_only_what_is_missing(data, monkeypatch, tmp_path):
    """Ctrl-C during repeat 2's training; --resume keeps repeat 1 as it is, continues repeat 2 after its
    split, runs repeat 3; a changed config, data file or N is refused first, touching nothing."""
    import lexcoder.pipeline as pipeline
    config, _ = data
    cfg, out = load_config(config, FAST), tmp_path / "reps"
    train, calls = pipeline.train_and_evaluate, []

    def interrupted_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return train(*args, **kwargs)

    monkeypatch.setattr(pipeline, "train_and_evaluate", interrupted_second)
    with pytest.raises(KeyboardInterrupt):
        run_repeats(cfg, out, 3)
    monkeypatch.undo()
    assert [RunDir(out / f"repeat-{i}").status() for i in (1, 2)] == ["finished", "interrupted"]
    assert not (out / "repeat-3").exists() and not (out / "repeats.json").exists()
    assert json.loads((out / "repeats_manifest.json").read_text())["status"] == "interrupted"

    before = tree(out)
    with pytest.raises(RunDirError, match="already holds repeated runs.*--resume"):
        run_repeats(cfg, out, 3)
    with pytest.raises(RunDirError, match=r"configuration changed \(thresholds.method: 'f1' → 'fixed'\)"):
        run_repeats(load_config(config, [*FAST, "thresholds.method=fixed"]), out, 3, resume=True)
    with pytest.raises(RunDirError, match="started with --repeat 3, now --repeat 4"):
        run_repeats(cfg, out, 4, resume=True)
    data_file, original = cfg.data.path, open(cfg.data.path, "rb").read()
    try:
        with open(data_file, "ab") as fh:  # the same table, one more byte
            fh.write(b"\n")
        with pytest.raises(RunDirError, match="data file .* changed"):
            run_repeats(cfg, out, 3, resume=True)
    finally:
        open(data_file, "wb").write(original)
    assert tree(out) == before

    kept = []
    result = run_repeats(cfg, out, 3, resume=True, on_repeat=lambda seeds, n, k: kept.append(k))
    assert kept == [True, False, False]
    after = tree(out)
    assert {k: v for k, v in after.items() if k.startswith("repeat-1/")} == \
        {k: v for k, v in before.items() if k.startswith("repeat-1/")}  # not even rewritten
    for name in ("data.parquet", "splits.parquet"):  # repeat 2 continued after its split stage
        assert after[f"repeat-2/{name}"] == before[f"repeat-2/{name}"]
    assert [RunDir(out / f"repeat-{i}").status() for i in (1, 2, 3)] == ["finished"] * 3
    assert result.summary == json.loads((out / "repeats.json").read_text(encoding="utf-8"))
    assert result.summary["labels"]["arbitration"]["f1"]["values"] == \
        [metrics_of(out, i)["labels"]["arbitration"]["f1"] for i in (1, 2, 3)]


def test_foreign_files_and_single_runs_are_refused(three, data, tmp_path):
    config, _ = data
    _, reps = three
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes", encoding="utf-8")
    for out, words in ((mine, "did not create (notes.txt)"), (reps / "repeat-1", "holds a single lexcoder run")):
        before = tree(out)
        res = runner.invoke(app, ["run", str(config), "--out", str(out), "--repeat", "2"])
        assert res.exit_code == 2 and words in said(res) and "Traceback" not in res.output
        assert tree(out) == before
    before = tree(reps)  # a single run into a repeats folder: told what the folder is and how to continue
    res = runner.invoke(app, ["run", str(config), "--out", str(reps)])
    assert res.exit_code == 2 and "holds repeated runs" in said(res) and "--repeat N --resume" in said(res)
    assert tree(reps) == before
    (reps / "notes.txt").write_text("mine", encoding="utf-8")  # in a repeats folder too
    try:
        before = tree(reps)
        res = runner.invoke(app, ["run", str(config), "--out", str(reps), "--repeat", "3", "--resume",
                                  *[arg for key in FAST for arg in ("--set", key)]])
        assert res.exit_code == 2 and "did not create (notes.txt)" in said(res)
        assert tree(reps) == before
    finally:
        (reps / "notes.txt").unlink()


def test_second_writer_is_refused(three, data):
    _, reps = three
    script = ("import sys, time; from lexcoder.rundir import RunDir\n"
              "with RunDir(sys.argv[1]).lock('run --repeat'):\n    print('locked', flush=True); time.sleep(30)")
    holder = subprocess.Popen([sys.executable, "-c", script, str(reps)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = tree(reps)
        res = runner.invoke(app, ["run", str(data[0]), "--out", str(reps), "--repeat", "3", "--resume",
                                  *[arg for key in FAST for arg in ("--set", key)]])
        assert res.exit_code == 2 and "in use by another lexcoder command" in said(res)
        assert tree(reps) == before
    finally:
        holder.kill()
        holder.wait()


def test_repeat_1_is_a_single_run_and_0_an_error(data, tmp_path):
    config, _ = data
    sets = [arg for key in FAST for arg in ("--set", key)]
    res = runner.invoke(app, ["run", str(config), "--out", str(tmp_path / "zero"), "--repeat", "0", *sets])
    assert res.exit_code == 2 and "--repeat" in said(res) and not (tmp_path / "zero").exists()
    with pytest.raises(ConfigError, match="at least 2 repeats"):
        run_repeats(load_config(config, FAST), tmp_path / "one", 1)
    assert not (tmp_path / "one").exists()
    res = runner.invoke(app, ["run", str(config), "--out", str(tmp_path / "single"), "--repeat", "1", *sets])
    assert res.exit_code == 0, res.output
    assert "Model vs. human coders (test split" in said(res) and "repeat 1 of" not in said(res)
    assert RunDir(tmp_path / "single").status() == "finished"
    assert sorted(p.name for p in (tmp_path / "single").glob("repeat*")) == []


def test_bad_input_leaves_nothing(data, tmp_path):
    config, _ = data
    cfg = load_config(config, [*FAST, 'data.label_columns=["arbitration", "no_such_column"]'])
    with pytest.raises(DataError, match="no_such_column"):
        run_repeats(cfg, tmp_path / "reps", 2)
    assert not (tmp_path / "reps").exists()


def test_a_fixed_split_column_warns_that_only_seeds_vary(data, tmp_path, caplog):
    config, _ = data
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")  # refused right after the warning
    cfg = load_config(config, [*FAST, "split.method=column", "split.column=part"])
    with caplog.at_level(logging.WARNING, logger="lexcoder.repeats"), pytest.raises(RunDirError):
        run_repeats(cfg, tmp_path, 2)
    assert any("every repeat uses the same split" in r.getMessage() for r in caplog.records)


def test_categorical_variables_are_summarised_too():
    """A run with categorical variables only (``metrics.json`` shape fixed in DESIGN.md: no 0/1 labels, no
    macro/micro block) gets each variable's figures and per-class F1 spread, and a table row per variable."""
    from lexcoder.repeats import RepeatSeeds, VARIABLE_FIGURES, repeats_markdown, summarize_repeats
    rng = np.random.default_rng(0)
    classes = ["finding", "reasoning", "other"]

    def variable_block() -> dict:
        return {**{fig: float(rng.uniform(0.3, 0.9)) for fig in VARIABLE_FIGURES}, "classes": classes,
                "per_class": {c: {"f1": float(rng.uniform()), "precision": float(rng.uniform()),
                                  "recall": float(rng.uniform()), "support": int(rng.integers(5, 50))}
                              for c in classes}}

    runs = [{"split": "test", "labels": {}, "variables": {"role": variable_block()}} for _ in range(4)]
    summary = summarize_repeats(runs, [RepeatSeeds(i, 41 + i, i - 1, 41 + i) for i in range(1, 5)])
    assert "macro" not in summary and summary["labels"] == {}
    role = summary["variables"]["role"]
    for fig in VARIABLE_FIGURES:
        values = [m["variables"]["role"][fig] for m in runs]
        assert role[fig]["mean"] == pytest.approx(np.mean(values))
        assert role[fig]["sd"] == pytest.approx(np.std(values, ddof=1))
    for c in classes:
        values = [m["variables"]["role"]["per_class"][c]["f1"] for m in runs]
        assert role["per_class"][c]["f1"]["sd"] == pytest.approx(np.std(values, ddof=1))
    row = next(line for line in repeats_markdown(summary).splitlines() if line.startswith("| role (macro-F1)"))
    assert f"{role['macro_f1']['mean']:.3f} ± {role['macro_f1']['sd']:.3f}" in row
