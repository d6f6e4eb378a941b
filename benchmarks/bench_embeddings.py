"""Sentence embeddings (the audit's "similar texts" evidence): batches by length against batches in input order.

``lexcoder.models.encoder.sentence_embeddings`` sorts the texts by length before batching, so a batch pads
little, and puts the rows back in input order. The baseline is the same computation (same tokenizer, model,
truncation, batch size, mean pooling, unit length) over batches in input order, as the audit did before.
Both run ``--repeats`` times, interleaved, on a seeded sample of ToS sentences; the largest difference
between the two results is reported (they must agree to float precision).

    nice -n 10 .venv/bin/python benchmarks/bench_embeddings.py [--n 4000] [--repeats 2]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("LEXCODER_PROGRESS", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from bench_audit import load  # noqa: E402
from transformers import AutoModel, AutoTokenizer  # noqa: E402

from lexcoder.models.encoder import sentence_embeddings  # noqa: E402
from lexcoder.models.pretrained import resolve_model_path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def input_order(texts: list[str], max_length: int = 128, batch_size: int = 64) -> np.ndarray:
    """The baseline: the same embeddings, batches in input order."""
    path = resolve_model_path("minilm")
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    network = AutoModel.from_pretrained(path, local_files_only=True, dtype=torch.float32).eval()
    parts = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(texts[start:start + batch_size], truncation=True, max_length=max_length, padding=True,
                            return_tensors="pt")
            hidden = network(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            parts.append(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)).numpy())
    E = np.vstack(parts)
    return E / np.linalg.norm(E, axis=1, keepdims=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=4000, help="ToS sentences (seeded sample)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/embeddings.json"))
    args = ap.parse_args()
    df, _, _ = load("tos")
    texts = df["text"].sample(args.n, random_state=0).astype(str).tolist()
    seconds: dict[str, list[float]] = {"input order": [], "by length (lexcoder)": []}
    largest = 0.0
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        base = input_order(texts)
        seconds["input order"].append(round(time.perf_counter() - t0, 1))
        t0 = time.perf_counter()
        ours = sentence_embeddings("minilm", texts)
        seconds["by length (lexcoder)"].append(round(time.perf_counter() - t0, 1))
        largest = max(largest, float(np.abs(ours - base).max()))
    ratio = float(np.median(seconds["input order"]) / np.median(seconds["by length (lexcoder)"]))
    result = {"texts": args.n, "threads": torch.get_num_threads(), "seconds": seconds, "speedup": round(ratio, 2),
              "largest_difference": largest, "loadavg": os.getloadavg()}
    Path(args.out).write_text(json.dumps(result, indent=2))
    print("| batches | seconds (each repeat) | texts/s |\n|---|---|---:|")
    for name, s in seconds.items():
        print(f"| {name} | {', '.join(map(str, s))} | {args.n / np.median(s):.0f} |")
    print(f"speed-up {ratio:.2f}x; largest difference {largest:.1e}; load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
