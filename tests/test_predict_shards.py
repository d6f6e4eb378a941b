"""Sharded prediction (issue 15): deterministic shards written atomically, skipped when done, refused when
their run or input changed, and merged (checked) into the single-process output, in input order."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from lexcoder import load_config, predict_file, run_pipeline
from lexcoder.cli import app
from lexcoder.distributed import merge_shards, part_name, predict_shard, shard_of
from lexcoder.errors import DataError

runner = CliRunner()
LABELS = ["limitation_of_liability", "unilateral_termination", "unilateral_change"]


def said(res) -> str:
    return " ".join(res.output.split())


def sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def corpus(tos_full, tmp_path_factory, make_config):
    """Twelve whole Terms of Service (~3.6k sentences) as CSV and as Parquet with small row groups, and a
    TF-IDF run trained on them."""
    folder = tmp_path_factory.mktemp("shards")
    docs = sorted(tos_full["doc_id"].unique())[:12]
    data = tos_full[tos_full["doc_id"].isin(docs)].reset_index(drop=True)
    data.to_csv(folder / "data.csv", index=False)
    data.to_parquet(folder / "data.parquet", index=False, row_group_size=400)
    cfg = make_config(folder, folder / "data.csv", LABELS, group_column="doc_id")
    run_pipeline(load_config(cfg, ["evaluate.bootstrap=0", "report.enabled=false"]), folder / "run")
    return folder


@pytest.fixture(scope="module")
def single(corpus):
    """The single-process outputs (Parquet) of both inputs: what every sharding must reproduce."""
    return {name: pd.read_parquet(predict_file(corpus / "run", corpus / name, corpus / f"single-{name}.parquet"))
            for name in ("data.csv", "data.parquet")}


def shard_cli(corpus, source, out, i, n, *extra):
    return runner.invoke(app, ["predict", str(corpus / "run"), str(source), "--out", str(out), "--shard", str(i),
                               "--num-shards", str(n), "--chunksize", "300", *extra])


@pytest.mark.parametrize("name", ["data.csv", "data.parquet"])
def test_row_shards_merge_into_the_single_process_output(corpus, single, tmp_path, name):
    out = tmp_path / "coded"
    for i in range(3):
        res = shard_cli(corpus, corpus / name, out, i, 3)
        assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == [part_name(i, 3) for i in range(3)]
    res = runner.invoke(app, ["predict", "--merge", str(out), "--out", str(tmp_path / "all.parquet")])
    assert res.exit_code == 0, res.output
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "all.parquet"), single[name])
    # a plain Parquet dataset reader reads the folder as the same table
    pd.testing.assert_frame_equal(pd.read_parquet(out), single[name])
    sizes = [pq.ParquetFile(out / part_name(i, 3)).metadata.num_rows for i in range(3)]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == len(single[name])


def test_parquet_shard_reads_only_its_row_groups(corpus, tmp_path, monkeypatch):
    read_groups = []
    original = pq.ParquetFile.iter_batches

    def spy(self, *args, **kwargs):
        read_groups.append(kwargs.get("row_groups"))
        return original(self, *args, **kwargs)
    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    n_groups = pq.ParquetFile(corpus / "data.parquet").metadata.num_row_groups
    predict_shard(corpus / "run", corpus / "data.parquet", tmp_path / "coded", shard=1, num_shards=4)
    coded = [g for g in read_groups if g is not None]
    assert len(coded) == 1 and 0 < len(coded[0]) <= n_groups // 4 + 2  # a quarter of the file, not all of it


def test_hash_shards_by_id_merge_in_input_order(corpus, single, tmp_path):
    out = tmp_path / "coded"
    for i in range(3):
        assert shard_cli(corpus, corpus / "data.csv", out, i, 3, "--shard-by", "id").exit_code == 0
    for i in range(3):
        ids = pd.read_parquet(out / part_name(i, 3))["id"]
        assert len(ids) and (shard_of(ids, 3) == i).all()
    merged = merge_shards(out, tmp_path / "all.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(merged.path), single["data.csv"])


def test_shard_of_is_stable_across_processes(tos_full):
    """The same id goes to the same shard in every process (Python's hash() of a str differs per process)."""
    ids = tos_full["id"].astype(str).head(200).tolist()
    code = ("import json, sys, pandas as pd; from lexcoder.distributed import shard_of; "
            "print(json.dumps(shard_of(pd.Series(json.loads(sys.stdin.read())), 7).tolist()))")
    runs = [subprocess.run([sys.executable, "-c", code], input=json.dumps(ids), capture_output=True, text=True,
                           env={"PYTHONHASHSEED": seed, "PATH": ""}, check=True).stdout for seed in ("1", "2")]
    assert runs[0] == runs[1] and json.loads(runs[0]) == shard_of(pd.Series(ids), 7).tolist()
    assert len(set(json.loads(runs[0]))) == 7


def test_rerun_of_a_finished_shard_skips_it(corpus, tmp_path):
    out = tmp_path / "coded"
    assert shard_cli(corpus, corpus / "data.parquet", out, 0, 2).exit_code == 0
    before = sha(out / part_name(0, 2))
    res = shard_cli(corpus, corpus / "data.parquet", out, 0, 2)
    assert res.exit_code == 0 and "skipped" in said(res)
    assert sha(out / part_name(0, 2)) == before


def test_changed_input_run_or_spec_is_refused(corpus, tmp_path):
    out = tmp_path / "coded"
    assert shard_cli(corpus, corpus / "data.csv", out, 0, 2).exit_code == 0
    before = sha(out / part_name(0, 2))
    changed = tmp_path / "data.csv"
    pd.read_csv(corpus / "data.csv").iloc[1:].to_csv(changed, index=False)  # one row fewer
    res = shard_cli(corpus, changed, out, 1, 2)
    assert res.exit_code == 2 and "input_sha256" in said(res) and "another run, input" in said(res)
    res = shard_cli(corpus, corpus / "data.csv", out, 1, 3)
    assert res.exit_code == 2 and "num_shards: 2 → 3" in said(res)
    retrained = tmp_path / "run"  # the same folder after a new training: another run
    shutil.copytree(corpus / "run", retrained)
    manifest = json.loads((retrained / "manifest.json").read_text())
    manifest["created"] = "2030-01-01T00:00:00+00:00"
    (retrained / "manifest.json").write_text(json.dumps(manifest))
    res = runner.invoke(app, ["predict", str(retrained), str(corpus / "data.csv"), "--out", str(out), "--shard", "0",
                              "--num-shards", "2"])
    assert res.exit_code == 2 and "run_id" in said(res) and "Traceback" not in said(res)
    assert sha(out / part_name(0, 2)) == before and sorted(p.name for p in out.iterdir()) == [part_name(0, 2)]


@pytest.mark.parametrize("args, message", [
    (["--shard", "3", "--num-shards", "3"], "--shard must be between 0 and 2"),
    (["--shard", "-1", "--num-shards", "3"], "--shard must be between 0 and 2"),
    (["--shard", "0", "--num-shards", "0"], "--num-shards must be at least 1"),
    (["--shard", "0"], "--shard and --num-shards go together"),
    (["--shard", "0", "--num-shards", "2", "--engine", "ray"], "leave out --shard"),
])
def test_bad_shard_numbers_exit_2(corpus, tmp_path, args, message):
    res = runner.invoke(app, ["predict", str(corpus / "run"), str(corpus / "data.csv"), "--out",
                              str(tmp_path / "coded"), *args])
    assert res.exit_code == 2 and message in said(res) and "Traceback" not in said(res)
    assert not (tmp_path / "coded").exists()


def test_merge_refuses_missing_extra_and_mismatched_shards(corpus, tmp_path):
    out, merged = tmp_path / "coded", tmp_path / "all.parquet"
    for i in (0, 2):
        assert shard_cli(corpus, corpus / "data.csv", out, i, 3).exit_code == 0
    merge = ["predict", "--merge", str(out), "--out", str(merged)]
    res = runner.invoke(app, merge)
    assert res.exit_code == 2 and "shard(s) 1 of 3 are missing" in said(res)
    assert shard_cli(corpus, corpus / "data.csv", out, 1, 3).exit_code == 0
    (out / "notes.parquet").write_bytes((out / part_name(0, 3)).read_bytes())
    res = runner.invoke(app, merge)
    assert res.exit_code == 2 and "notes.parquet is not a shard" in said(res)
    (out / "notes.parquet").unlink()
    other = tmp_path / "other"  # shard 1 of 3 of another input, copied in
    assert shard_cli(corpus, corpus / "data.parquet", other, 1, 3, "--shard-by", "id").exit_code == 0
    shutil.copy(other / part_name(1, 3), out / part_name(1, 3))
    res = runner.invoke(app, merge)
    assert res.exit_code == 2 and "different runs, inputs or shardings" in said(res) and "shard_by" in said(res)
    assert not merged.exists()
    res = runner.invoke(app, ["predict", str(corpus / "run"), "--merge", str(out), "--out", str(merged)])
    assert res.exit_code == 2 and "--merge takes only" in said(res)


def test_merge_of_hash_shards_needs_the_unchanged_input(corpus, tmp_path):
    source = tmp_path / "data.csv"
    shutil.copy(corpus / "data.csv", source)
    out = tmp_path / "coded"
    for i in range(2):
        predict_shard(corpus / "run", source, out, shard=i, num_shards=2, shard_by="id")
    source.write_text(source.read_text() + "\n")
    with pytest.raises(DataError, match="has changed since the shards were coded"):
        merge_shards(out, tmp_path / "all.parquet")


def test_out_folder_with_other_files_is_refused(corpus, tmp_path):
    out = tmp_path / "coded"
    out.mkdir()
    (out / "slurm-123.out").write_text("log")
    res = shard_cli(corpus, corpus / "data.csv", out, 0, 2)
    assert res.exit_code == 2 and "slurm-123.out" in said(res)
    assert sorted(p.name for p in out.iterdir()) == ["slurm-123.out"]


def test_failed_shard_leaves_nothing(corpus, tmp_path, monkeypatch):
    from lexcoder.predict import Coder
    calls = []
    original = Coder.code

    def failing(self, chunk, **kwargs):
        calls.append(len(chunk))
        if len(calls) == 2:
            raise OSError("disk gone")
        return original(self, chunk, **kwargs)
    monkeypatch.setattr(Coder, "code", failing)
    out = tmp_path / "coded"
    with pytest.raises(OSError):
        predict_shard(corpus / "run", corpus / "data.parquet", out, shard=0, num_shards=2, chunksize=300)
    assert list(out.iterdir()) == []  # no part, no temporary file
