"""Clusters of flags: how often each rule reports a block by chance, and how often it finds a planted gap.

On the real ToS table (17,383 sentences, 50 documents, 9 labels) and the real review queue of
``lexcoder audit`` on the demo run (TF-IDF, 5 folds), four rules of :func:`lexcoder.audit.blocks.find_blocks`:

* ``pooled, Bonferroni 0.01 (before)`` -- all of a label's flags against all rows of a document;
* ``by code, Bonferroni 0.01`` -- the flags on each human code against the document's rows with that code;
* ``by code, FDR 0.05 (default)`` -- the same tests, Benjamini-Hochberg (lexcoder's default since issue 16).

1. **chance**: per seed, every label's flags are redrawn at random -- as many on rows coded 0 and on rows
   coded 1 as the real queue holds -- and any block reported is a false one (``--seeds`` seeds);
2. **power**: the same random flags plus ``g`` flags on rows of one document coded 0 on
   limitation_of_liability (an annotation gap); found = that (document, label) is reported. Documents of
   about 150, 400 and 830 sentences;
3. **real queue**: the blocks each rule reports on the demo run's actual audit.

    nice -n 10 .venv/bin/python benchmarks/bench_blocks.py [--seeds 200] [--power-seeds 100]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("LEXCODER_PROGRESS", "0")
import lexcoder  # noqa: E402
from lexcoder.audit import audit_run  # noqa: E402
from lexcoder.audit.blocks import find_blocks  # noqa: E402
from lexcoder.demo import TOS_LABELS, demo_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RULES = {"pooled, Bonferroni 0.01 (before)": {"by_code": False, "correction": "bonferroni", "alpha": 0.01},
         "by code, Bonferroni 0.01": {"by_code": True, "correction": "bonferroni", "alpha": 0.01},
         "by code, FDR 0.05 (default)": {"by_code": True, "correction": "fdr", "alpha": 0.05}}
GAP_LABEL = "limitation_of_liability"


def real_queue() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The demo run's table (id, group, labels) and its audit queue (flags only)."""
    with tempfile.TemporaryDirectory() as tmp:
        lexcoder.run_pipeline(demo_config(), Path(tmp) / "run")
        queue = audit_run(Path(tmp) / "run").queue
        df = pd.read_parquet(Path(tmp) / "run" / "data.parquet")
    return df[["id", "group", *TOS_LABELS]], queue[queue["group"].eq("")][["id", "label", "human_value"]]


def random_flags(df: pd.DataFrame, counts: dict, rng: np.random.Generator) -> pd.DataFrame:
    parts = []
    for (label, code), k in counts.items():
        rows = np.flatnonzero(df[label].to_numpy() == code)
        pick = rng.choice(rows, min(k, len(rows)), replace=False)
        parts.append(pd.DataFrame({"id": df["id"].to_numpy()[pick], "label": label, "human_value": code}))
    return pd.concat(parts, ignore_index=True)


def reported(df: pd.DataFrame, queue: pd.DataFrame, rule: dict) -> list[dict]:
    return find_blocks(df, queue.assign(group=""), ["group"], **rule)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--power-seeds", type=int, default=100)
    ap.add_argument("--gaps", default="4,6,8,10,13")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/blocks.json"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    df, queue = real_queue()
    counts = {(lab, int(c)): int(n) for (lab, c), n in
              queue.assign(human_value=queue["human_value"].astype(int)).groupby(["label", "human_value"]).size().items()}
    sizes = df["group"].value_counts()
    docs = {target: sizes.index[np.argmin(np.abs(sizes.to_numpy() - target))] for target in (150, 400, 830)}
    result = {"rows": len(df), "documents": int(df["group"].nunique()), "flags": int(len(queue)),
              "flag_counts": {f"{lab}={c}": n for (lab, c), n in counts.items()}, "rules": RULES,
              "chance": {}, "power": {}, "real": {}}
    for name, rule in RULES.items():
        found = [len(reported(df, random_flags(df, counts, np.random.default_rng(s)), rule)) for s in range(args.seeds)]
        result["chance"][name] = {"runs_with_a_false_block": float(np.mean(np.array(found) > 0)),
                                  "false_blocks_per_run": float(np.mean(found))}
    gaps = [int(g) for g in args.gaps.split(",")]
    for target, doc in docs.items():
        zeros = np.flatnonzero((df["group"].to_numpy() == doc) & (df[GAP_LABEL].to_numpy() == 0))
        key = f"{doc} ({sizes[doc]} sentences)"
        result["power"][key] = {}
        for name, rule in RULES.items():
            rates = []
            for g in gaps:
                hits = 0
                for s in range(args.power_seeds):
                    rng = np.random.default_rng(10_000 + s)
                    flags = random_flags(df, counts, rng)
                    extra = rng.choice(zeros, g, replace=False)
                    flags = pd.concat([flags, pd.DataFrame({"id": df["id"].to_numpy()[extra], "label": GAP_LABEL,
                                                            "human_value": 0})], ignore_index=True)
                    flags = flags.drop_duplicates(["id", "label"])
                    hits += any(b["value"] == doc and b["label"] == GAP_LABEL for b in reported(df, flags, rule))
                rates.append(hits / args.power_seeds)
            result["power"][key][name] = dict(zip(map(str, gaps), rates))
    for name, rule in RULES.items():
        result["real"][name] = [b["description"] for b in reported(df, queue, rule)]
    result.update(seconds=round(time.perf_counter() - t0, 1), loadavg=os.getloadavg(), seeds=args.seeds,
                  power_seeds=args.power_seeds)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"| rule | runs with a false block ({args.seeds} seeds) | " + " | ".join(
        f"gap found, {k}, g = {'/'.join(map(str, gaps))}" for k in result["power"]) + " | blocks in the real queue |")
    print("|---|---:|" + "---|" * len(result["power"]) + "---:|")
    for name in RULES:
        print(f"| {name} | {result['chance'][name]['runs_with_a_false_block']:.3f} | " + " | ".join(
            " / ".join(f"{v:.2f}" for v in result["power"][k][name].values()) for k in result["power"])
              + f" | {len(result['real'][name])} |")
    for name in RULES:
        print(f"\n{name}:\n  " + "\n  ".join(result["real"][name]))


if __name__ == "__main__":
    main()
