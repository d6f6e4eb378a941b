"""CPU coding with dynamic int8 vs fp32 for a trained run: speed and agreement on the test split.

Loads the run's saved model twice (``quantize_int8`` off / on), codes the test rows with each in the same
process (fp32 first, then int8, then fp32 again to bound the drift of a shared machine), and compares:
texts/s, the largest probability difference, the share of changed 0/1 codes and the test macro-F1 at the
run's own thresholds. ``lexcoder demo --model minilm --out runs/demo-minilm`` makes a suitable run.

    .venv/bin/python benchmarks/bench_int8_agreement.py runs/demo-minilm [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lexcoder.ledger import training_table
from lexcoder.models import load_model
from lexcoder.rundir import RunDir
from lexcoder.stats import confusion_counts, count_metrics

RESULTS = Path(__file__).resolve().parent / "results"


def code(model, texts: list[str]) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    P = model.predict_proba(texts)
    return P, len(texts) / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="a finished run with an encoder or LLM model")
    ap.add_argument("--out", type=Path, default=RESULTS / "int8_agreement.json")
    args = ap.parse_args()
    run = RunDir(args.run)
    cfg = run.load_config()
    labels = cfg.data.label_columns
    df = training_table(run.root, pd.read_parquet(run.data), labels)
    test = df[df["id"].astype(str).map(run.split_by_id()).eq("test")]
    texts, Y = test["text"].tolist(), test[labels].to_numpy()
    thresholds = run.thresholds(cfg.model.kind, labels)
    fp32 = load_model(run.model_dir(cfg.model.kind))
    int8 = load_model(run.model_dir(cfg.model.kind))
    int8.set_params(quantize_int8=True)
    P32, speed32 = code(fp32, texts)
    P8, speed8 = code(int8, texts)
    _, speed32_again = code(fp32, texts)

    def macro(P):
        return float(count_metrics(confusion_counts(Y, P >= thresholds).sum(axis=0))["f1"].mean())
    f32, f8 = macro(P32), macro(P8)
    result = {"run": str(run.root), "model": cfg.model.kind, "test_texts": len(texts),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
                         f"{torch.get_num_threads()} threads",
              "texts_per_s": {"fp32": round(speed32, 1), "int8": round(speed8, 1), "fp32_again": round(speed32_again, 1)},
              "speedup_int8": round(speed8 / max(speed32, speed32_again), 2),
              "macro_f1": {"fp32": round(f32, 4), "int8": round(f8, 4), "delta": round(f8 - f32, 4)},
              "max_abs_probability_difference": float(np.abs(P8 - P32).max()),
              "changed_codes_share": float(((P8 >= thresholds) != (P32 >= thresholds)).mean())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"{len(texts)} test texts: fp32 {speed32:.1f} / {speed32_again:.1f} texts/s, int8 {speed8:.1f} texts/s "
          f"({result['speedup_int8']}x); macro-F1 fp32 {f32:.4f}, int8 {f8:.4f} (Δ {f8 - f32:+.4f}); largest "
          f"probability difference {result['max_abs_probability_difference']:.4f}; "
          f"{result['changed_codes_share']:.3%} of the codes change")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
