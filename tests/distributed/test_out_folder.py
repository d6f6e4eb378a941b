"""The one ``--out`` folder check of sharded and Ray prediction (issue 15): both engines refuse the same folders
(inside a run folder, an input or inside/holding one, a file, files lexcoder did not write) with exit code 2 and
one message naming the folder, and write nothing then; an earlier Ray output is replaced only with --overwrite."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from lexcoder import predict_file
from lexcoder.cli import app
from lexcoder.distributed import predict_shard
from lexcoder.errors import DataError

runner = CliRunner()
LABELS = ["limitation_of_liability", "unilateral_termination", "unilateral_change"]
HAS_RAY = importlib.util.find_spec("ray") is not None
ENGINES = ["shard", pytest.param("ray", marks=pytest.mark.skipif(not HAS_RAY, reason="Ray is not installed"))]


def said(res) -> str:
    return " ".join(res.output.split())


def tree(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``roots`` with its size and modification time: what a refused command must not change."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for root in roots for p in [root, *root.rglob("*")]
            if p.exists()}


@pytest.fixture(scope="module")
def corpus(tos_full, tmp_path_factory, corpus_run):
    """Four Terms of Service as CSV, as Parquet and as a folder of two Parquet files; a TF-IDF run on them."""
    folder = corpus_run(tos_full, tmp_path_factory.mktemp("outcheck"), 4, LABELS)
    data = pd.read_parquet(folder / "data.parquet")
    (folder / "dataset").mkdir()
    half = len(data) // 2
    data.iloc[:half].to_parquet(folder / "dataset" / "a.parquet", index=False)
    data.iloc[half:].to_parquet(folder / "dataset" / "b.parquet", index=False)
    return folder


def predict(engine: str, corpus: Path, source: Path, out: Path, *extra: str):
    """``lexcoder predict`` with either engine (Ray: one actor of one CPU, leaving one for reading/writing)."""
    mode = ["--shard", "0", "--num-shards", "2"] if engine == "shard" else \
        ["--engine", "ray", "--workers", "1", "--cpus-per-worker", "1"]
    return runner.invoke(app, ["predict", str(corpus / "run"), str(source), "--out", str(out), *mode, *extra])


def refused(engine, corpus, tmp_path, source, out, *extra) -> str:
    """The message of a refused command, after checking exit code 2 and that nothing changed on disk."""
    before = tree(corpus, tmp_path)
    res = predict(engine, corpus, source, out, *extra)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and f"--out {out}" in said(res)
    assert tree(corpus, tmp_path) == before  # nothing written, created or replaced
    return said(res)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("where", ["run", "run/coded", "run/models/deeper/coded"])
def test_out_in_a_run_folder_is_refused(corpus, tmp_path, engine, where):
    message = refused(engine, corpus, tmp_path, corpus / "data.parquet", corpus / where, "--overwrite")
    assert f"the run folder {(corpus / 'run').resolve()}" in message


@pytest.mark.parametrize("engine", ENGINES)
def test_out_in_another_run_folder_is_refused(corpus, tmp_path, engine):
    other = tmp_path / "other-run"  # any run folder, not only the one that codes
    shutil.copytree(corpus / "run", other)
    message = refused(engine, corpus, tmp_path, corpus / "data.parquet", other / "coded")
    assert f"the run folder {other.resolve()}" in message


@pytest.mark.parametrize("engine", ENGINES)
def test_out_holding_the_input_is_refused(corpus, tmp_path, engine):
    """The corpus folder holds the input: with --overwrite a replaced folder would delete it."""
    message = refused(engine, corpus, tmp_path, corpus / "data.parquet", corpus, "--overwrite")
    assert "holds an input" in message


@pytest.mark.parametrize("engine", ENGINES)
def test_out_equal_to_the_input_is_refused(corpus, tmp_path, engine):
    message = refused(engine, corpus, tmp_path, corpus / "data.parquet", corpus / "data.parquet", "--overwrite")
    assert "is an input" in message


@pytest.mark.skipif(not HAS_RAY, reason="Ray is not installed")
@pytest.mark.parametrize("out", ["dataset", "dataset/coded"])
def test_ray_out_equal_to_or_inside_the_input_folder_is_refused(corpus, tmp_path, out):
    """A folder of Parquet files as input: replacing it (--overwrite) would delete the input; an output inside
    it would be read as input next time."""
    message = refused("ray", corpus, tmp_path, corpus / "dataset", corpus / out, "--overwrite")
    assert ("is an input" if out == "dataset" else "inside an input folder") in message


@pytest.mark.parametrize("engine", ENGINES)
def test_out_that_is_a_file_or_below_one_is_refused(corpus, tmp_path, engine):
    (tmp_path / "notes.txt").write_text("mine")
    assert "is a file" in refused(engine, corpus, tmp_path, corpus / "data.parquet", tmp_path / "notes.txt",
                                  "--overwrite")
    assert "which is a file" in refused(engine, corpus, tmp_path, corpus / "data.parquet",
                                        tmp_path / "notes.txt" / "coded")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("names", [["slurm-123.out"], ["theirs.parquet"]])
def test_folder_of_files_lexcoder_did_not_write_is_refused_even_with_overwrite(corpus, tmp_path, engine, names):
    out = tmp_path / "coded"
    out.mkdir()
    for name in names:
        (out / name).write_text("mine")
    message = refused(engine, corpus, tmp_path, corpus / "data.parquet", out, "--overwrite")
    assert "did not write" in message and names[0] in message


@pytest.mark.skipif(not HAS_RAY, reason="Ray is not installed")
def test_ray_refuses_a_folder_of_shards_and_shards_refuse_a_ray_output(corpus, tmp_path):
    shards = tmp_path / "shards"
    predict_shard(corpus / "run", corpus / "data.parquet", shards, shard=0, num_shards=2)
    assert "did not write" in refused("ray", corpus, tmp_path, corpus / "data.parquet", shards, "--overwrite")
    ray_out = tmp_path / "ray"
    ray_out.mkdir()
    (ray_out / ".lexcoder-ray.json").write_text("{}")  # the Ray engine's record, as it writes it
    (ray_out / "x_000000_000000.parquet").write_bytes(b"")
    assert ".lexcoder-ray.json" in refused("shard", corpus, tmp_path, corpus / "data.parquet", ray_out)
    (ray_out / "notes.txt").write_text("mine")  # a Ray output with a file of the user's: never replaced
    message = refused("ray", corpus, tmp_path, corpus / "data.parquet", ray_out, "--overwrite")
    assert "did not write (notes.txt)" in message


def test_python_api_raises_data_error_and_writes_nothing(corpus, tmp_path):
    before = tree(corpus / "run")
    with pytest.raises(DataError, match="run folder"):
        predict_shard(corpus / "run", corpus / "data.parquet", corpus / "run" / "coded", shard=0, num_shards=1)
    assert tree(corpus / "run") == before


@pytest.mark.skipif(not HAS_RAY, reason="Ray is not installed")
def test_earlier_ray_output_is_replaced_only_with_overwrite(corpus, local_ray, tmp_path, same_rows_by_id):
    single = pd.read_parquet(predict_file(corpus / "run", corpus / "data.parquet", tmp_path / "single.parquet"))
    out = tmp_path / "coded"
    res = predict("ray", corpus, corpus / "dataset", out)
    assert res.exit_code == 0, res.output
    assert (out / ".lexcoder-ray.json").is_file()  # the record that lexcoder wrote the folder
    same_rows_by_id(pd.read_parquet(out), single)  # dataset readers skip the record
    message = refused("ray", corpus, tmp_path, corpus / "data.parquet", out)
    assert "earlier output" in message and "--overwrite" in message
    (out / "stale.parquet").write_bytes(b"")  # an earlier output's file: gone once the folder is replaced
    res = predict("ray", corpus, corpus / "data.parquet", out, "--overwrite")
    assert res.exit_code == 0, res.output
    assert not (out / "stale.parquet").exists()
    same_rows_by_id(pd.read_parquet(out), single)
