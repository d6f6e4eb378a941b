"""The prepared GPU session script (benchmarks/gpu_efficiency.py): its CPU guard and its --dry-run smoke path."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_efficiency.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("gpu_efficiency", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the script's CPU paths")
def test_cpu_guard_and_dry_run_write_every_section(bench, tmp_path, capsys):
    assert bench.main([]) == 2 and "--dry-run" in capsys.readouterr().err
    out = tmp_path / "dry.json"
    assert bench.main(["--dry-run", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    rows = r["lora_1b"]["rows"]
    assert [(x["micro_batch"], x["seq_len"]) for x in rows] == [(2, 32), (4, 32)]
    assert all(x["status"] == "ok" and x["tokens_per_s"] > 0 and 0 < x["pct_of_peak"] for x in rows)
    assert r["lora_1b"]["matmul_params"] < r["lora_1b"]["params"]  # embeddings are not matmuls
    assert r["lora_1b"]["compiled"]["status"] == "skipped: CUDA only"
    assert 0 < r["padding"]["padding_share"] < 1  # real sentence lengths pad in length-grouped batches
    assert r["seed_job"]["labels"] == 11 and r["seed_job"]["hours"] > 0
    assert all(x["status"] == "ok" and x["texts_per_s"] > 0
               for x in r["inference"]["minilm"] + r["inference"]["llama_1b"])


def test_seed_projection_scales_with_the_job(bench):
    args = bench.parse_args(["--dry-run"])
    one = bench.seed_projection(args, 1000.0)
    args.epochs *= 2
    assert bench.seed_projection(args, 1000.0)["minutes"] == pytest.approx(2 * one["minutes"], rel=1e-3)
    assert bench.seed_projection(args, 2000.0)["minutes"] == pytest.approx(one["minutes"], rel=1e-3)
