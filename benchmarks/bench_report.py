"""Cost of the research-grade figures and the report on the demo, and what post-hoc calibration buys.

On the bundled ToS demo (17,383 sentences, 9 labels, 60/20/20 document-level split), in the same run:
  * the demo pipeline with `[calibration] method` = none (the baseline), platt and isotonic: wall time of
    each stage (the report stage included), macro-F1 with its 95% document bootstrap interval, mean ECE
    and mean Brier score over the labels on the test split;
  * the evaluation of the test split alone: no bootstrap (baseline) vs. 1,000 resamples of rows vs. of
    documents.

    nice -n 10 .venv/bin/python benchmarks/bench_report.py
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import lexcoder
from lexcoder.config import config_from_dict
from lexcoder.demo import demo_config
from lexcoder.evaluate import evaluate_predictions
from lexcoder.report import build_report
from lexcoder.rundir import RunDir

RESULTS = Path(__file__).parent / "results" / "report_eval.json"


def run_demo(method: str, out: Path) -> dict:
    raw = demo_config().model_dump(mode="json", exclude_none=True)
    raw["calibration"] = {"method": method}
    t0 = time.perf_counter()
    result = lexcoder.run_pipeline(config_from_dict(raw), out)
    wall = time.perf_counter() - t0
    m, stages = result.metrics, result.run.read_manifest()["stages"]
    labels = m["labels"].values()
    return {"calibration": method, "wall_s": round(wall, 2),
            "stage_s": {k: v["seconds"] for k, v in stages.items()},
            "macro_f1": m["macro"]["f1"], "macro_f1_ci": m["macro"]["f1_ci"],
            "mean_ece": float(np.mean([x["ece"] for x in labels])),
            "mean_brier": float(np.mean([x["brier"] for x in labels])),
            "report_kb": round((out / "report.html").stat().st_size / 1024)}


def time_evaluation(run: Path, repeats: int = 3) -> list[dict]:
    cfg = RunDir(run).load_config()
    labels = cfg.data.label_columns
    df, preds = pd.read_parquet(run / "data.parquet"), pd.read_parquet(run / "predictions.parquet")
    test = (preds["split"] == "test").to_numpy()
    Y, P = df[labels].to_numpy()[test], preds[[f"{lab}_prob" for lab in labels]].to_numpy()[test]
    th = [json.loads((run / "models" / "tfidf" / "thresholds.json").read_text())["thresholds"][lab]
          for lab in labels]
    out = []
    for name, kw in (("no bootstrap", {}), ("1,000 resamples of rows", {"bootstrap": 1000}),
                     ("1,000 resamples of documents", {"bootstrap": 1000, "groups": df["group"].to_numpy()[test]})):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            evaluate_predictions(Y, P, th, labels, **kw)
            times.append(time.perf_counter() - t0)
        out.append({"evaluation": name, "rows": int(test.sum()), "seconds_median": round(float(np.median(times)), 3)})
    return out


def time_report(run: Path, repeats: int = 3) -> dict:
    """Rebuild the report: wall and CPU seconds (CPU time is what a machine shared with others hides)."""
    walls, cpus = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        build_report(run)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return {"wall_s_median": round(float(np.median(walls)), 2), "cpu_s_median": round(float(np.median(cpus)), 2)}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        runs = [run_demo(method, Path(tmp) / method) for method in ("none", "platt", "isotonic")]
        evals = time_evaluation(Path(tmp) / "none")
        report = time_report(Path(tmp) / "none")
    print("| calibration | wall s | train s | report s | macro-F1 [95% CI] | mean ECE | mean Brier | report KB |")
    print("|---|---:|---:|---:|---|---:|---:|---:|")
    for r in runs:
        lo, hi = r["macro_f1_ci"]
        print(f"| {r['calibration']} | {r['wall_s']:.1f} | {r['stage_s']['train']:.1f} | {r['stage_s']['report']:.1f} "
              f"| {r['macro_f1']:.3f} [{lo:.3f}, {hi:.3f}] | {r['mean_ece']:.4f} | {r['mean_brier']:.4f} | {r['report_kb']} |")
    print("\n| evaluation of the test split | rows | seconds (median of 3) |\n|---|---:|---:|")
    for e in evals:
        print(f"| {e['evaluation']} | {e['rows']} | {e['seconds_median']:.3f} |")
    print(f"\nreport rebuild (median of 3): {report['wall_s_median']:.2f} s wall, {report['cpu_s_median']:.2f} s CPU")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": "2 shared CPU cores", "load_average": os.getloadavg()[0],
                                   "runs": runs, "evaluation": evals, "report_rebuild": report}, indent=2))
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
