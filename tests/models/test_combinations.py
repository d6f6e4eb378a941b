"""Features combined: model {TF-IDF, tiny encoder} × calibration {none, platt} × refit {on, off} × corrections
{none, a ledger} × {fresh, interrupted mid-training and resumed}. For every combination:

- ``lexcoder predict`` on the test texts == ``predictions.parquet`` == ``lexcoder.load_model(run).predict_proba``;
- the interrupted and resumed run ends with exactly the fresh run's metrics and predictions;
- the manifest records the config and the ledger; the metrics use the corrected codes.
"""
from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
import tomli_w
from typer.testing import CliRunner

import lexcoder
from lexcoder.cli import app

LABELS = ["limitation_of_liability", "unilateral_termination"]
ENCODER = {"max_length": 32, "batch_size": 8, "eval_batch_size": 64, "epochs": 2, "lr": 1e-3, "head_lr": 3e-3,
           "checkpoint_steps": 4, "patience": 0, "num_threads": 1, "seed": 3}
COMBOS = list(itertools.product(["tfidf", "encoder"], ["none", "platt"], [True, False], [False, True]))
# the encoder combinations take seconds each on 2 cores: CI runs them (make test), the quick suite does not
PARAMS = [pytest.param(*c, marks=pytest.mark.slow) if c[0] == "encoder" else c for c in COMBOS]
runner = CliRunner()


@pytest.fixture(scope="module")
def data(sampled_split, tmp_path_factory):
    """~240 short sentences, split by whole documents (split column), and a ledger flipping 4 test codes."""
    table = sampled_split(LABELS, {"train": (50, 70), "val": (25, 35), "test": (25, 35)}, seed=2, max_chars=160)
    folder = tmp_path_factory.mktemp("combos")
    table.to_csv(folder / "data.csv", index=False)
    flipped = table[table["split"] == "test"].head(4)
    pd.DataFrame([{"id": r.id, "label": LABELS[0], "old_value": int(getattr(r, LABELS[0])),
                   "new_value": 1 - int(getattr(r, LABELS[0])), "reviewer": "pi", "timestamp": "2026-11-30",
                   "note": "", "source_run": ""} for r in flipped.itertuples()]).to_csv(folder / "ledger.csv",
                                                                                          index=False)
    return folder, table


def _config(folder, kind, calibration, refit, name=None):
    model = {"kind": kind, "refit_on_val": refit}
    if kind == "encoder":
        model.update(name=name, params=ENCODER)
    raw = {"data": {"path": str(folder / "data.csv"), "id_column": "id", "label_columns": LABELS},
           "split": {"method": "column", "column": "split"}, "model": model,
           "calibration": {"method": calibration}, "evaluate": {"bootstrap": 0}, "report": {"enabled": False}}
    path = folder / f"{kind}-{calibration}-{refit}.toml"
    path.write_text(tomli_w.dumps(raw), encoding="utf-8")
    return path


def _run(config, out, ledger, *extra):
    argv = ["run", str(config), "--out", str(out), *extra] + (["--corrections", str(ledger)] if ledger else [])
    return runner.invoke(app, argv)


def _interrupt_once(monkeypatch, kind):
    """Raise KeyboardInterrupt (Ctrl-C) once in the middle of training: after step 6 of the encoder (its last
    checkpoint is step 4), or inside the TF-IDF fit of the last label."""
    state = {"done": False}
    if kind == "encoder":
        from lexcoder.models.transformer import TransformerClassifier

        def after_step(self, step):
            if step == 6 and not state["done"]:
                state["done"] = True
                raise KeyboardInterrupt
        monkeypatch.setattr(TransformerClassifier, "_after_step", after_step)
    else:
        from lexcoder.models.tfidf import TfidfClassifier
        real = TfidfClassifier._fit_label

        def fit_label(self, X, y, Xv, yv):
            if not state["done"]:
                state["done"] = True
                raise KeyboardInterrupt
            return real(self, X, y, Xv, yv)
        monkeypatch.setattr(TfidfClassifier, "_fit_label", fit_label)


@pytest.mark.parametrize("kind,calibration,refit,corrected", PARAMS,
                         ids=[f"{k}-{c}-{'refit' if r else 'norefit'}-{'ledger' if x else 'noledger'}"
                              for k, c, r, x in COMBOS])
def test_combination(kind, calibration, refit, corrected, data, tiny_bert, tmp_path, monkeypatch):
    folder, table = data
    config = _config(folder, kind, calibration, refit, name=tiny_bert)
    ledger = folder / "ledger.csv" if corrected else None
    fresh, resumed = tmp_path / "fresh", tmp_path / "resumed"
    res = _run(config, fresh, ledger)
    assert res.exit_code == 0, res.output

    _interrupt_once(monkeypatch, kind)
    res = _run(config, resumed, ledger)
    assert res.exit_code == 130, res.output
    assert json.loads((resumed / "manifest.json").read_text())["status"] == "interrupted"
    monkeypatch.undo()
    res = _run(config, resumed, ledger, "--resume")
    assert res.exit_code == 0, res.output

    # resumed == fresh, bit for bit
    for name in ("metrics.json", "splits.parquet"):
        assert (resumed / name).read_bytes() == (fresh / name).read_bytes(), name
    pf, pr = (pd.read_parquet(d / "predictions.parquet") for d in (fresh, resumed))
    pd.testing.assert_frame_equal(pf, pr, check_exact=True)

    # one model, one scale: predict == predictions.parquet == load_model(run)
    test = pf[pf["split"] == "test"]
    texts = pd.read_parquet(fresh / "data.parquet").set_index("id").loc[test["id"], "text"]
    texts.reset_index().to_csv(tmp_path / "new.csv", index=False)
    coded = pd.read_csv(lexcoder.predict_file(fresh, tmp_path / "new.csv", tmp_path / "coded.csv"),
                        dtype={"id": str})
    P_api = lexcoder.load_model(fresh).predict_proba(texts.tolist())
    atol = 0 if kind == "tfidf" else 1e-6  # the encoder pads each batch differently than in the run
    for j, lab in enumerate(LABELS):
        stored = test[f"{lab}_prob"].to_numpy()
        np.testing.assert_allclose(P_api[:, j], stored, rtol=0, atol=atol)
        np.testing.assert_allclose(coded[f"{lab}_prob"].to_numpy(), stored, rtol=0, atol=atol)
    assert (fresh / "models" / kind / "calibration.json").is_file() == (calibration != "none")

    # the manifest says what the run was a function of; the metrics use the corrected codes
    manifest = json.loads((fresh / "manifest.json").read_text())
    assert manifest["inputs"]["config_hash"] == manifest["config_hash"]
    assert (manifest["inputs"]["corrections_sha256"] is not None) == corrected
    metrics = json.loads((fresh / "metrics.json").read_text())
    human = table.loc[table["split"] == "test", LABELS[0]]
    flips = int((1 - 2 * human.head(4)).sum()) if corrected else 0
    assert metrics["labels"][LABELS[0]]["support"] == int(human.sum()) + flips
