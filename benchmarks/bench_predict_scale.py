"""Corpus-scale prediction: memory and time of `lexcoder predict` on 100k / 300k / 1,000,000 rows, 1 vs 2 Ray
workers, and MiniLM rows/s (fp32, int8, bf16).

The corpora resample the bundled ToS sentences with replacement (id + text, written as Parquet by pandas with
its default row groups). A TF-IDF run is trained on all ToS sentences (default config). Each prediction runs
as its own `lexcoder predict` process; its peak RSS (the process and its children) is sampled with psutil
every 0.05 s. Ray: `--engine ray` on a local Ray started by the command (startup included in the time) with
1 actor of 1 CPU vs 2 actors of 0.5 CPU (one CPU stays for Ray's read/write tasks), and the output compared
with the single-process output. MiniLM: a run fine-tuned for one epoch on ``--minilm-train`` sentences
(max_length 64; its speed, not its quality, is measured), coding a resampled corpus in-process with
`Coder.code`, the batch function of every engine, under fp32, dynamic int8 and bf16 autocast, with the
agreement of the 0/1 codes with fp32. Results are written after each stage; ``--stages`` runs some of them.

    nice -n 10 .venv/bin/python benchmarks/bench_predict_scale.py [--quick] [--stages single,ray,minilm]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

from lexcoder import load_config, run_pipeline
from lexcoder.demo import TOS_LABELS, demo_data_path

RESULTS = Path(__file__).parent / "results"
LEXCODER = [sys.executable, "-m", "lexcoder"]


def corpus(sentences: pd.Series, n: int, path: Path, seed: int = 0) -> Path:
    """``n`` sentences drawn with replacement, ids ``s0 … s<n-1>``, as Parquet."""
    rng = np.random.default_rng(seed)
    texts = sentences.to_numpy()[rng.integers(0, len(sentences), n)]
    pd.DataFrame({"id": [f"s{i}" for i in range(n)], "text": texts}).to_parquet(path, index=False)
    return path


def measured(cmd: list[str]) -> dict:
    """Run ``cmd``; its wall time and peak RSS (process tree, sampled), or the error it printed."""
    env = {**os.environ, "LEXCODER_PROGRESS": "0"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    peak, watched = 0, psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            tree = [watched, *watched.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.05)
    seconds = time.perf_counter() - t0
    _, err = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {err.decode()[-2000:]}")
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(peak / 2**20)}


def tfidf_run(folder: Path) -> Path:
    import tomli_w
    cfg = {"data": {"path": str(demo_data_path()), "text_column": "text", "id_column": "id",
                    "label_columns": list(TOS_LABELS), "group_column": "doc_id"},
           "split": {"duplicates": "keep_groups"}, "evaluate": {"bootstrap": 0}, "report": {"enabled": False}}
    (folder / "tfidf.toml").write_text(tomli_w.dumps(cfg))
    run_pipeline(load_config(folder / "tfidf.toml"), folder / "tfidf")
    return folder / "tfidf"


def minilm_run(folder: Path, tos: pd.DataFrame, n_train: int) -> Path:
    """MiniLM fine-tuned for one epoch on ``n_train`` sentences: a real encoder run, trained fast."""
    import tomli_w
    labels = ["limitation_of_liability", "unilateral_termination", "unilateral_change"]
    positive = tos[tos[labels].sum(axis=1) > 0].sample(n_train // 2, random_state=0)
    rows = pd.concat([positive, tos[tos[labels].sum(axis=1) == 0].sample(n_train - len(positive), random_state=0)])
    rows.to_csv(folder / "minilm.csv", index=False)
    cfg = {"data": {"path": str(folder / "minilm.csv"), "text_column": "text", "id_column": "id",
                    "label_columns": labels},
           "model": {"kind": "encoder", "name": "minilm",
                     "params": {"epochs": 1, "max_length": 64, "inference_bf16": False}},
           "evaluate": {"bootstrap": 0}, "report": {"enabled": False}}
    (folder / "minilm.toml").write_text(tomli_w.dumps(cfg))
    run_pipeline(load_config(folder / "minilm.toml"), folder / "minilm")
    return folder / "minilm"


def single_process(run: Path, sizes: list[int], sentences: pd.Series, folder: Path) -> list[dict]:
    """One `lexcoder predict` per size, after one on 100 rows: the fixed cost (start, imports, model load),
    subtracted for the coding rate, so that linearity in rows can be read off ``coding_rows_per_s``."""
    fixed = measured([*LEXCODER, "predict", str(run), str(corpus(sentences, 100, folder / "corpus_100.parquet")),
                      "--out", str(folder / "coded_100.parquet")])
    print(f"  fixed cost (100 rows): {fixed['seconds']:.1f} s, peak RSS {fixed['peak_rss_mb']} MB", flush=True)
    rows = [{"rows": 100, **fixed}]
    for n in sizes:
        source = corpus(sentences, n, folder / f"corpus_{n}.parquet")
        out = folder / f"coded_{n}.parquet"
        row = {"rows": n, "input_mb": round(source.stat().st_size / 2**20, 1),
               **measured([*LEXCODER, "predict", str(run), str(source), "--out", str(out)])}
        row["rows_per_s"] = round(n / row["seconds"])
        coding = row["seconds"] - fixed["seconds"]  # under a changing load it can come out <= 0: not a rate
        row["coding_rows_per_s"] = round(n / coding) if coding > 0.5 else None
        rows.append(row)
        print(f"  single process, {n:>9,} rows: {row['seconds']:7.1f} s, {row['rows_per_s']:>7,} rows/s "
              f"({row['coding_rows_per_s'] or 'n/a'} rows/s after the fixed cost), peak RSS {row['peak_rss_mb']} MB",
              flush=True)
    return rows


def ray_workers(run: Path, n: int, folder: Path) -> list[dict]:
    source, single = folder / f"corpus_{n}.parquet", pd.read_parquet(folder / f"coded_{n}.parquet")
    rows = []
    for workers, cpus in ((1, 1.0), (2, 0.5)):
        out = folder / f"ray_{workers}"
        row = {"rows": n, "workers": workers, "cpus_per_worker": cpus,
               **measured([*LEXCODER, "predict", str(run), str(source), "--out", str(out), "--engine", "ray",
                           "--workers", str(workers), "--cpus-per-worker", str(cpus)])}
        row["rows_per_s"] = round(n / row["seconds"])
        row["identical_to_single_process"] = bool(pd.read_parquet(out).equals(single))
        rows.append(row)
        print(f"  Ray, {workers} worker(s), {n:,} rows: {row['seconds']:.1f} s (Ray startup included), "
              f"{row['rows_per_s']:,} rows/s, identical: {row['identical_to_single_process']}", flush=True)
    return rows


def minilm_speed(run: Path, sentences: pd.Series, n: int) -> list[dict]:
    from lexcoder.models.torch_runtime import cpu_has_bf16
    from lexcoder.predict import Coder
    coder = Coder(run)
    rng = np.random.default_rng(1)
    batch = pd.DataFrame({"id": np.arange(n), "text": sentences.to_numpy()[rng.integers(0, len(sentences), n)]})
    rows, reference = [], None
    for variant in ("fp32", "int8", "bf16"):
        coder.model.set_params(quantize_int8=variant == "int8", inference_bf16=variant == "bf16")
        coder.code(batch.head(64))  # warm-up (and the int8 conversion) outside the timing
        t0 = time.perf_counter()
        coded = pd.concat([coder.code(batch.iloc[i:i + 500]) for i in range(0, n, 500)])
        seconds = time.perf_counter() - t0
        probs = coded[[c for c in coded.columns if c.endswith("_prob")]].to_numpy()
        preds = coded[[c for c in coded.columns if c.endswith("_pred")]].to_numpy()
        reference = reference or (probs, preds)
        rows.append({"variant": variant, "rows": n, "seconds": round(seconds, 2), "rows_per_s": round(n / seconds, 1),
                     "max_abs_prob_diff_vs_fp32": float(np.abs(probs - reference[0]).max()),
                     "code_agreement_vs_fp32": float((preds == reference[1]).mean()),
                     "cpu_has_bf16": cpu_has_bf16()})
        print(f"  MiniLM {variant}: {rows[-1]['rows_per_s']} rows/s, agreement with fp32 "
              f"{rows[-1]['code_agreement_vs_fp32']:.4f}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="20k/50k rows, Ray on 20k, MiniLM on 300")
    parser.add_argument("--minilm-rows", type=int, default=None, help="rows MiniLM codes (default 2,000; quick 300)")
    parser.add_argument("--minilm-train", type=int, default=300, help="sentences the MiniLM run trains on")
    parser.add_argument("--stages", default="single,ray,minilm",
                        help="comma-separated: single, ray (needs single), minilm; results are merged into the "
                             "existing JSON")
    parser.add_argument("--json", default=None, help="results file name in benchmarks/results/ (default "
                        "predict_scale.json; --quick: predict_scale_quick.json)")
    args = parser.parse_args()
    stages = set(args.stages.split(","))
    sizes = [20_000, 50_000] if args.quick else [100_000, 300_000, 1_000_000]
    minilm_rows = args.minilm_rows or (300 if args.quick else 2_000)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["LEXCODER_PROGRESS"] = "0"
    tos = pd.read_csv(demo_data_path())
    name = args.json or ("predict_scale_quick.json" if args.quick else "predict_scale.json")
    RESULTS.mkdir(exist_ok=True)
    result = json.loads((RESULTS / name).read_text()) if (RESULTS / name).is_file() else {}
    result.setdefault("machine", {"platform": platform.platform(), "cpus": os.cpu_count(),
                                  "loadavg_start": os.getloadavg()})
    result["quick"] = args.quick
    t_all, earlier = time.perf_counter(), result.get("total_seconds", 0)  # stages run before, by another call

    def save() -> None:  # after every stage: a late failure keeps the figures measured so far
        result["machine"]["loadavg_end"] = os.getloadavg()
        result["total_seconds"] = earlier + round(time.perf_counter() - t_all)
        (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if stages & {"single", "ray"}:
            run = tfidf_run(folder)
            print("TF-IDF run trained; single-process predict:", flush=True)
            result["tfidf_single_process"] = single_process(run, sizes, tos["text"], folder)
            save()
        if "ray" in stages:
            result["tfidf_ray"] = ray_workers(run, sizes[0], folder)
            save()
        if "minilm" in stages:
            print("MiniLM:", flush=True)
            run = minilm_run(folder, tos, args.minilm_train)
            result["minilm"] = {"train_sentences": args.minilm_train, "max_length": 64,
                                "loadavg_start": os.getloadavg(),
                                "variants": minilm_speed(run, tos["text"], minilm_rows),
                                "loadavg_end": os.getloadavg()}
            save()
    print(f"Wrote {RESULTS / name} ({result['total_seconds']} s in all)")


if __name__ == "__main__":
    main()
