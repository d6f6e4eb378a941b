"""bf16 autocast vs float32 CPU prediction of a trained run's encoder: interleaved pairs, wall and CPU time.

Codes 400 test sentences of the run (``--long``: the same sentences joined five at a time into ~150-word
texts, twice) with the encoder's own probabilities (no TF-IDF blend), fp32 and bf16 alternately first, and
reports texts/s (median over the pairs) in wall and CPU time (both threads; steadier on a crowded machine).

    nice -n 10 .venv/bin/python benchmarks/bench_bf16_interleaved.py RUN_DIR [--long] [--pairs 3]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lexcoder.models import load_model
from lexcoder.models.torch_runtime import default_threads

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--long", action="store_true", help="~150-word texts (5 sentences joined)")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(default_threads())
    model = load_model(next(p.parent for p in (args.run / "models").glob("*/lexcoder_model.json")))
    model.set_params(blend_tfidf=0.0)
    df = pd.read_parquet(args.run / "data.parquet").merge(
        pd.read_parquet(args.run / "splits.parquet")[["id", "split"]], on="id")
    texts = df[df["split"] == "test"].sample(400, random_state=1)["text"].tolist()
    if args.long:
        texts = [" ".join(texts[i:i + 5]) for i in range(0, len(texts), 5)] * 2
    models = {k: copy.deepcopy(model).set_params(inference_bf16=k == "bf16") for k in ("fp32", "bf16")}
    for m in models.values():
        m.predict_proba(texts[:32])  # warm-up
    runs: dict[str, list[dict]] = {k: [] for k in models}
    for r in range(args.pairs):
        for k in ("fp32", "bf16") if r % 2 == 0 else ("bf16", "fp32"):
            load, cpu0, t0 = os.getloadavg()[0], time.process_time(), time.perf_counter()
            models[k].predict_proba(texts)
            runs[k].append({"wall": round(time.perf_counter() - t0, 2), "cpu": round(time.process_time() - cpu0, 2),
                            "load": round(load, 1)})
    out = {"run": str(args.run), "texts": len(texts), "long": args.long, "threads": torch.get_num_threads(),
           **{k: {"texts_per_s_wall": round(len(texts) / np.median([x["wall"] for x in v]), 1),
                  "texts_per_s_cpu": round(len(texts) / np.median([x["cpu"] for x in v]), 1), "runs": v}
              for k, v in runs.items()},
           **{f"bf16_speedup_{t}": round(float(np.median([a[t] / b[t] for a, b in zip(runs["fp32"], runs["bf16"])])), 2)
              for t in ("wall", "cpu")}}
    path = args.out or RESULTS / f"bf16_interleaved{'_long' if args.long else ''}.json"
    path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
