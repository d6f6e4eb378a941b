"""Does the TF-IDF + MiniLM blend find more injected coding errors than TF-IDF alone? (issue 16, item 3)

The protocol of ``bench_audit.py`` (whose functions this script imports): ``rate`` of every label's
positives flipped to 0 and as many negatives to 1 (seeded); the same group-aware folds; then two
cross-fittings on the same noisy codes and folds:

* ``tfidf``  lexcoder's default TF-IDF model (``lexcoder audit --model tfidf``);
* ``blend``  ``lexcoder audit --model blend``: fine-tuned all-MiniLM-L6-v2 averaged with TF-IDF
             (:data:`lexcoder.audit.crossfit.BLEND`), with the demo's CPU recipe (max_length 128,
             negative_ratio 2.5, lr 1.5e-4, head_lr 1e-3, batch 16) and ``--epochs`` epochs;
* ``minilm`` MiniLM alone, recovered exactly as ``2 * blend - tfidf`` (the blend is the plain mean of
             the two families' out-of-fold probabilities on the same folds; tested in
             tests/audit/test_blend.py).

Every ranking of ``bench_audit.evaluate`` (precision@k, recall@k, PR-AUC per label; k = the flips
injected into the label) is computed on each set of probabilities. Before the MiniLM part starts, the
audit's own time estimate (:func:`lexcoder.audit.crossfit.estimate_seconds`) is printed and recorded.

    nice -n 10 .venv/bin/python benchmarks/bench_audit_blend.py [--dataset tos] [--docs 20] [--folds 3]
        [--epochs 1] [--rate 0.05]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("LEXCODER_PROGRESS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_audit import evaluate, inject, load, means  # noqa: E402

from lexcoder.audit import audit_folds, out_of_fold_proba  # noqa: E402
from lexcoder.audit.crossfit import BLEND, estimate_seconds, format_duration  # noqa: E402
from lexcoder.demo import ENCODER_DEMO_PARAMS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="tos", choices=["tos", "echr"])
    ap.add_argument("--docs", type=int, default=20, help="seeded sample of documents (0: all)")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--rate", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--estimate-only", action="store_true", help="print the time estimate and stop")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/audit_blend.json"))
    return ap.parse_args(argv)


def encoder_params(epochs: int) -> dict:
    """The demo's CPU recipe for MiniLM (its TF-IDF weight is the blend's own: 0.5)."""
    params = {k: v for k, v in ENCODER_DEMO_PARAMS.items() if k != "blend_tfidf"}
    return {**params, "epochs": epochs}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    df, labels, frequent = load(args.dataset, args.docs or None, args.seed)
    Y0 = df[labels].to_numpy().astype(int)
    flipped = inject(Y0, args.rate, args.seed)
    Y = np.where(flipped, 1 - Y0, Y0)
    folds = audit_folds(df.assign(**{lab: Y[:, j] for j, lab in enumerate(labels)}), labels,
                        n_folds=args.folds, seed=args.seed)
    params = encoder_params(args.epochs)
    estimate = estimate_seconds(df["text"], Y, folds, kind=BLEND, params=params)
    print(f"{args.dataset}: {len(df):,} texts, {df['group'].nunique()} documents; blend cross-fitting estimated at "
          f"{format_duration(estimate['seconds'])} ({estimate['steps']:,} steps at "
          f"{estimate['seconds_per_step']:.2f} s)", file=sys.stderr)
    if args.estimate_only:
        return
    times, P = {}, {}
    for kind in ("tfidf", BLEND):
        t0 = time.perf_counter()
        P[kind] = out_of_fold_proba(df["text"], Y, folds, kind=kind, label_names=labels,
                                    params=params if kind == BLEND else None)
        times[kind] = round(time.perf_counter() - t0, 1)
    P["minilm"] = np.clip(2 * P[BLEND] - P["tfidf"], 0.0, 1.0)
    results = {"protocol": f"bench_audit.py's flips (rate {args.rate}, seed {args.seed}); the same "
                           f"{args.folds} group-aware folds for every model; k = flips injected into the label",
               "dataset": args.dataset, "rows": len(df), "documents": int(df["group"].nunique()),
               "rate": args.rate, "folds": args.folds, "encoder_params": params, "frequent": frequent,
               "estimate": {**estimate, "seconds": round(estimate["seconds"], 1)}, "crossfit_seconds": times,
               "loadavg": os.getloadavg(), "models": {}}
    # the probabilities, so that new rankings can be evaluated on them without hours of fine-tuning
    np.savez_compressed(Path(args.out).with_suffix(".npz"), ids=df["id"].astype(str).to_numpy(), folds=folds,
                        flipped=flipped, Y=Y, **{f"P_{k}": v for k, v in P.items()})
    for kind, probs in P.items():
        block = evaluate(Y, probs, flipped, labels, args.seed, folds=folds)
        results["models"][kind] = {"mean_frequent": means(block, frequent), "mean_all": means(block, labels),
                                   **{k: v for k, v in block.items() if k.startswith("pooled") or k == "K"},
                                   "labels": block["labels"]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2, default=float))
    print_table(results)


def print_table(results: dict) -> None:
    print(f"{results['dataset']}, {results['rows']:,} texts, {results['rate']:.0%} flips, {results['folds']} folds "
          f"(load {results['loadavg'][0]:.1f}); cross-fitting {results['crossfit_seconds']} s")
    rankings = [r for r in ("posterior", "loss", "cleanlab") if any(
        f"{r}_precision_at_k" in m["mean_frequent"] for m in results["models"].values())]
    print("| model | " + " | ".join(f"P@k {r} (frequent)" for r in rankings) + " | PR-AUC loss (frequent) | "
          "P@k loss (all) |")
    print("|---|" + "---|" * (len(rankings) + 2))
    for kind, m in results["models"].items():
        f, a = m["mean_frequent"], m["mean_all"]
        print(f"| {kind} | " + " | ".join(f"{f[r + '_precision_at_k']:.3f}" for r in rankings)
              + f" | {f['loss_pr_auc']:.3f} | {a['loss_precision_at_k']:.3f} |")


if __name__ == "__main__":
    main()
