"""Data-parallel fine-tuning (lexcoder.models.parallel): two CPU processes (gloo) started by `accelerate launch`
train a tiny random encoder; the processes end with the same weights, only rank 0 writes, and the model matches
one process trained on the same global batches.

The worker side of the two-process test is this file itself, run as a script (``python test_parallel.py
--worker SPEC``) under ``accelerate launch``.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tomli_w

pytest.importorskip("torch")
pytest.importorskip("accelerate")

LABELS = ["limitation_of_liability", "unilateral_termination"]
# 81 training texts in batches of 8: 11 steps, the last with one text (rank 1's shard of it is empty); one
# epoch, so the kept weights are the last ones (no early-stopping choice between near-equal scores);
# head = "mean" leaves BERT's pooler without a gradient; dropout is 0 in the tiny model
PARAMS = {"head": "mean", "max_length": 40, "batch_size": 8, "eval_batch_size": 16, "epochs": 1, "lr": 2e-3,
          "patience": 0, "checkpoint_steps": 4, "num_threads": 1, "seed": 3}
# One process and two differ only in float rounding (a batch's gradient summed in two halves, matrix products
# over 4 rows instead of 8); measured: max |Δweight| ~1e-6 and max |Δprobability| ~1e-7 after 11 AdamW steps
# at lr 2e-3. The bounds leave room for other CPUs' kernels while failing on any real difference (a shard
# weighted wrongly, a missing all-reduce or a scheduler stepped twice moves weights by > 1e-3).
WEIGHT_TOL, PROB_TOL = 1e-4, 1e-5


def _launch(args: list[str], *, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``args`` (after ``python``) in a clean environment: no progress bars, no bytecode writes."""
    env = {**os.environ, "LEXCODER_PROGRESS": "0", "PYTHONDONTWRITEBYTECODE": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("LEXCODER_NUM_THREADS", None)
    with subprocess.Popen([sys.executable, *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, start_new_session=True) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:  # end the launcher and the processes it started (its own group)
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            pytest.fail(f"timed out after {timeout} s:\n{err[-3000:]}")
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def _accelerate(script_args: list[str], *, cwd: Path) -> subprocess.CompletedProcess:
    from lexcoder.models.parallel import free_port
    return _launch(["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                    "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
                    *script_args], cwd=cwd)


@pytest.fixture(scope="module")
def table(sampled_split) -> pd.DataFrame:
    return sampled_split(LABELS, {"train": (31, 50), "val": (10, 14), "test": (10, 14)}, seed=1, max_chars=200)


def _fit_one_process(tiny_bert: str, table: pd.DataFrame):
    from lexcoder.models.encoder import EncoderClassifier
    train, val = (table[table["split"] == s] for s in ("train", "val"))
    return EncoderClassifier(name=tiny_bert, **PARAMS).fit(
        train["text"].tolist(), train[LABELS].to_numpy(), val["text"].tolist(), val[LABELS].to_numpy(),
        label_names=LABELS)


def _weights(model) -> dict[str, np.ndarray]:
    return {n: x.detach().cpu().numpy().copy() for n, x in model.model_.named_parameters()}


@pytest.mark.slow  # ~30 s on 2 busy cores: two processes import torch and transformers
def test_two_processes_train_like_one(tiny_bert, table, tmp_path):
    table.to_parquet(tmp_path / "table.parquet")
    spec = {"model": tiny_bert, "table": str(tmp_path / "table.parquet"), "root": str(tmp_path)}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    done = _accelerate([__file__, "--worker", str(tmp_path / "spec.json")], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    reports = [np.load(tmp_path / "reports" / f"rank{r}.npz") for r in (0, 1)]
    logs = [json.loads((tmp_path / "reports" / f"rank{r}_writes.json").read_text()) for r in (0, 1)]
    writes = [log["writes"] for log in logs]

    # both processes made the fits (see _worker): A, B resuming A's finished checkpoint (sent by rank 0), and D
    # resuming C, which both processes left after step 6, from the checkpoint of step 4
    assert [int(r["fits"]) for r in reports] == [3, 3]
    assert json.loads(logs[0]["interrupted"])["path"] == "step-0000004"
    names = [k for k in reports[0].files if k.startswith("fit0.")]
    assert any("pooler" in k for k in names)
    for fit in ("fit0", "fit1", "fit2"):  # the same weights in both processes, to the bit
        for k in names:
            np.testing.assert_array_equal(reports[0][k.replace("fit0", fit)], reports[1][k.replace("fit0", fit)])
    for k in names:  # resumed fits end where the uninterrupted one did, exactly
        np.testing.assert_array_equal(reports[0][k], reports[0][k.replace("fit0", "fit1")])
        np.testing.assert_array_equal(reports[0][k], reports[0][k.replace("fit0", "fit2")])

    # only rank 0 wrote: its checkpoints; rank 1 not a single file (every open for writing, rename, mkdir,
    # removal was recorded by an audit hook while the fits ran)
    assert any("/ckpt/" in w for w in writes[0]), writes[0][:5]
    # (torch itself creates its compiler cache folder, /tmp/torchinductor_<user>, in every process: not a file)
    assert [w for w in writes[1] if "torchinductor_" not in w] == []
    assert json.loads((tmp_path / "ckpt" / "latest.json").read_text())["path"] == "step-0000011"

    # against one process on the same global batches
    single = _fit_one_process(tiny_bert, table)
    one = _weights(single)
    weight_gap = max(float(np.abs(one[k[len("fit0."):]] - reports[0][k]).max()) for k in names)
    test_texts = table.loc[table["split"] == "test", "text"].tolist()
    prob_gap = float(np.abs(single.predict_proba(test_texts) - reports[0]["test_proba"]).max())
    print(f"max |Δweight| {weight_gap:.2e}, max |Δprobability| {prob_gap:.2e}")
    assert weight_gap <= WEIGHT_TOL and prob_gap <= PROB_TOL
    # the pooler got no gradient in either setting: untouched by AdamW's weight decay
    pooler = [k for k in names if "pooler" in k]
    from transformers import BertModel
    initial = dict(BertModel.from_pretrained(tiny_bert).named_parameters())
    for k in pooler:
        np.testing.assert_array_equal(reports[0][k], initial[k[len("fit0.encoder."):]].detach().numpy())


@pytest.fixture(scope="module")
def config(tiny_bert, table, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("parallel_cli")
    table.to_csv(folder / "data.csv", index=False)
    cfg = {"data": {"path": str(folder / "data.csv"), "id_column": "id", "label_columns": LABELS},
           "split": {"method": "column", "column": "split"},
           "model": {"kind": "encoder", "name": tiny_bert, "params": PARAMS},
           "evaluate": {"bootstrap": 0}, "report": {"enabled": False}}
    (folder / "config.toml").write_text(tomli_w.dumps(cfg), encoding="utf-8")
    return folder / "config.toml"


@pytest.mark.slow  # ~40 s: `lexcoder run --processes 2` starts accelerate launch and two processes
def test_cli_run_with_two_processes_matches_one(config, tmp_path):
    from typer.testing import CliRunner

    from lexcoder.cli import app
    done = _launch(["-m", "lexcoder", "run", str(config), "--out", str(tmp_path / "two"), "--processes", "2"],
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    one = CliRunner().invoke(app, ["run", str(config), "--out", str(tmp_path / "one")])
    assert one.exit_code == 0, one.output

    two_dir, one_dir = tmp_path / "two", tmp_path / "one"
    manifest = json.loads((two_dir / "manifest.json").read_text())
    assert manifest["status"] == "finished"
    # the CPU inference precision decision is in the manifest, the same in both runs
    decision = manifest["inference_precision"]["models/encoder"]
    assert decision["precision"] in ("bf16", "fp32") and decision["reason"]
    assert json.loads((one_dir / "manifest.json").read_text())["inference_precision"]["models/encoder"][
        "precision"] == decision["precision"]
    assert sorted(p.name for p in two_dir.iterdir()) == sorted(p.name for p in one_dir.iterdir())
    probs = [f"{lab}_prob" for lab in LABELS]
    P2, P1 = (pd.read_parquet(d / "predictions.parquet")[probs].to_numpy() for d in (two_dir, one_dir))
    assert float(np.abs(P2 - P1).max()) <= PROB_TOL
    # the saved model predicts what the run wrote
    from lexcoder.rundir import load_model
    model = load_model(two_dir)
    texts = pd.read_parquet(two_dir / "data.parquet")["text"].tolist()[:5]
    assert model.predict_proba(texts).shape == (5, len(LABELS))


def test_tfidf_with_processes_is_refused(make_config, tos_labels, tmp_path):
    from typer.testing import CliRunner

    from lexcoder.cli import app
    from lexcoder.demo import demo_data_path
    cfg = make_config(tmp_path, demo_data_path(), tos_labels)  # [model] kind: the default, tfidf
    result = CliRunner().invoke(app, ["run", str(cfg), "--out", str(tmp_path / "run"), "--processes", "2"])
    assert result.exit_code == 2
    assert "tfidf" in result.output and "without --processes" in result.output
    assert not (tmp_path / "run").exists()


# -- the worker side of test_two_processes_train_like_one ---------------------------------------------------------
def _record_writes(log: list[str], active: list[bool]) -> None:
    """Record every file this process opens for writing, renames, creates or removes (while ``active[0]``)."""
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def hook(event: str, args: tuple) -> None:
        if not active[0]:
            return
        if event == "open":
            path, mode, flags = args
            writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & write_flags)
            if writing and isinstance(path, (str, bytes, os.PathLike)):
                log.append(os.fsdecode(path))
        elif event in ("os.rename", "os.replace", "os.mkdir", "os.remove", "os.rmdir", "shutil.rmtree",
                       "os.symlink", "os.link", "os.truncate"):
            log.append(f"{event} {args[0]}")
    sys.addaudithook(hook)


def _worker(spec_path: str) -> None:
    """Four fits in two processes: A (checkpoints in ckpt/), B (resumes A's finished checkpoint), C (in
    ckpt2/, interrupted in both processes after step 6, as by Ctrl-C) and D (resumes C from its step-4
    checkpoint, as `lexcoder run --resume` would). Each rank saves the weights of A, B and D."""
    from lexcoder.models import parallel
    from lexcoder.models.encoder import EncoderClassifier
    from lexcoder.models.transformer import TransformerClassifier
    spec = json.loads(Path(spec_path).read_text())
    table = pd.read_parquet(spec["table"])
    train, val, test = (table[table["split"] == s] for s in ("train", "val", "test"))
    armed = [False]

    def interrupt_at_6(self, step):
        if armed[0] and step == 6:
            armed[0] = False
            raise KeyboardInterrupt
    TransformerClassifier._after_step = interrupt_at_6
    writes: list[str] = []
    active = [True]
    _record_writes(writes, active)
    fits: list = []
    interrupted_at = ""
    with parallel.session(cpu=True) as dp:
        if dp.is_main:
            try:
                for ckpt in ("ckpt", "ckpt", "ckpt2", "ckpt2"):
                    armed[0] = len(fits) == 2 and not interrupted_at
                    model = EncoderClassifier(name=spec["model"], **PARAMS)
                    model.checkpoint_dir = Path(spec["root"]) / ckpt
                    try:
                        fits.append(model.fit(train["text"].tolist(), train[LABELS].to_numpy(),
                                              val["text"].tolist(), val[LABELS].to_numpy(), label_names=LABELS))
                    except KeyboardInterrupt:  # both processes stopped after the same step: nobody waits
                        interrupted_at = (model.checkpoint_dir / "latest.json").read_text()
                        dp.broken = False
            finally:
                dp.release()
        else:  # C is the third fit here too: armed once A and B are done
            while True:
                try:
                    dp.serve(on_fit=lambda m: (fits.append(m), armed.__setitem__(0, len(fits) == 2)))
                    break
                except KeyboardInterrupt:  # as on rank 0: the interrupted fit ended in both processes
                    dp.broken = False
                    continue
        active[0] = False
        out = Path(spec["root"]) / "reports"
        out.mkdir(exist_ok=True)
        arrays = {f"fit{i}.{n}": x for i, m in enumerate(fits) for n, x in _weights(m).items()}
        arrays["fits"] = np.array(len(fits))
        arrays["test_proba"] = fits[0].predict_proba(test["text"].tolist())
        np.savez(out / f"rank{dp.rank}.npz", **arrays)
        (out / f"rank{dp.rank}_writes.json").write_text(json.dumps({"writes": writes, "interrupted": interrupted_at}))


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    _worker(sys.argv[2])
