"""The whole review loop on data with known errors: run → audit → review → retrain → corrections report.

Seeded label flips (``--rate`` of each ToS label's positives and as many negatives, as in ``bench_audit.py``)
play the coders' errors. lexcoder's demo configuration (TF-IDF) is trained on the noisy codes (``noisy``),
the audit ranks likely errors (test rows held out of cross-fitting), an *oracle* reviewer checks the first
``--review`` rows of the queue (flip where the code was injected, keep otherwise), and the run is retrained
on the corrected codes (``reviewed``). Baseline in the same run: the same pipeline on the clean codes
(``clean``, the ceiling). All runs share the noisy run's split (the clean run gets it as a split column), so
their test rows are the same; each is scored against the
clean codes (the truth here), and ``lexcoder corrections report`` gives the noisy → reviewed differences
with paired document-bootstrap intervals.

    .venv/bin/python benchmarks/bench_review_loop.py [--rate 0.05] [--review 400] [--seeds 0,1,2]
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
sys.path.insert(0, str(Path(__file__).resolve().parent))
import lexcoder  # noqa: E402
from bench_audit import inject  # noqa: E402
from lexcoder.audit import apply_review, audit_run, compare_runs  # noqa: E402
from lexcoder.demo import TOS_LABELS, demo_config, demo_data_path  # noqa: E402
from lexcoder.stats import bootstrap_difference, confusion_counts, count_metrics  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def test_decisions(run: Path, ids: pd.Index) -> np.ndarray:
    p = pd.read_parquet(run / "predictions.parquet").set_index("id")
    return p.loc[ids, [f"{lab}_pred" for lab in TOS_LABELS]].to_numpy()


def macro_f1(Y: np.ndarray, pred: np.ndarray) -> float:
    return float(count_metrics(confusion_counts(Y, pred).sum(axis=0))["f1"].mean())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=0.05)
    ap.add_argument("--review", type=int, default=400, help="queue rows the oracle reviewer checks")
    ap.add_argument("--seeds", default="0,1,2", help="noise seeds (one whole loop each)")
    ap.add_argument("--out", type=Path, default=RESULTS / "review_loop.json")
    args = ap.parse_args()
    loops = []
    for seed in [int(x) for x in args.seeds.split(",")]:
        loops.append(one_loop(args.rate, args.review, seed))
        print_loop(loops[-1])
    mean = {name: float(np.mean([r["test_macro_f1_vs_clean_codes"][name] for r in loops]))
            for name in ("noisy", "reviewed", "clean")}
    result = {"benchmark": "review_loop", "data": "ToS (bundled demo data), demo config (TF-IDF)",
              "rate": args.rate, "review": args.review, "mean_test_macro_f1_vs_clean_codes": mean,
              "mean_review_precision": float(np.mean([r["review"]["precision"] for r in loops])),
              "mean_review_recall": float(np.mean([r["review"]["recall"] for r in loops])), "loops": loops}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nmean over {len(loops)} noise seeds ({args.rate:.0%} flipped, top {args.review} reviewed): "
          + ", ".join(f"{k} {v:.4f}" for k, v in mean.items())
          + f"; review precision {result['mean_review_precision']:.3f}, recall {result['mean_review_recall']:.3f}")
    print(f"wrote {args.out}")
    return 0


def print_loop(r: dict) -> None:
    f, rv = r["test_macro_f1_vs_clean_codes"], r["review"]
    print(f"seed {r['noise']['seed']}: {r['noise']['injected_pairs']} flipped; top {rv['queue_rows_reviewed']} "
          f"reviewed, {rv['injected_found']} injected (precision {rv['precision']:.3f}, recall {rv['recall']:.3f}); "
          f"test macro-F1 vs clean codes: noisy {f['noisy']:.4f}, reviewed {f['reviewed']:.4f}, clean "
          f"{f['clean']:.4f}; reviewed-noisy 95% CI {r['reviewed_minus_noisy_ci']}", flush=True)


def one_loop(rate: float, review: int, seed: int) -> dict:
    """Noisy run, audit, oracle review of the top ``review`` queue rows, retrained run, clean run."""
    clean = pd.read_csv(demo_data_path())
    flipped = inject(clean[TOS_LABELS].to_numpy(), rate, seed)
    noisy = clean.copy()
    noisy[TOS_LABELS] = np.where(flipped, 1 - clean[TOS_LABELS].to_numpy(), clean[TOS_LABELS].to_numpy())
    injected = {(str(i), lab) for j, lab in enumerate(TOS_LABELS) for i in clean["id"][flipped[:, j]]}
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs = {}
        for name, table in (("noisy", noisy), ("clean", clean)):
            cfg = demo_config()
            update = {"data": cfg.data.model_copy(update={"path": str(tmp / f"{name}.csv")})}
            if name == "clean":  # the noisy run's partition (the split is stratified by the codes it sees)
                split = pd.read_parquet(runs["noisy"] / "splits.parquet").set_index("id")["split"]
                table = table.assign(given_split=table["id"].map(split))
                update["split"] = cfg.split.model_copy(update={"method": "column", "column": "given_split"})
            table.to_csv(tmp / f"{name}.csv", index=False)
            t0 = time.perf_counter()
            lexcoder.run_pipeline(cfg.model_copy(update=update), tmp / name)
            seconds[f"run {name}"] = time.perf_counter() - t0
            runs[name] = tmp / name
        cfg = demo_config()
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"path": str(tmp / "noisy.csv")})})
        t0 = time.perf_counter()
        audit = audit_run(runs["noisy"])
        seconds["audit"] = time.perf_counter() - t0
        queue = audit.queue.head(review).copy()
        truly = [(str(i), lab) in injected for i, lab in zip(queue["id"], queue["label"])]
        queue["decision"] = np.where(truly, "flip", "keep")
        queue.to_csv(tmp / "reviewed.csv", index=False)
        apply_review(runs["noisy"], tmp / "reviewed.csv", reviewer="oracle", ledger=tmp / "corrections.csv")
        t0 = time.perf_counter()
        lexcoder.run_pipeline(cfg, tmp / "reviewed", corrections=tmp / "corrections.csv")
        seconds["run reviewed"] = time.perf_counter() - t0
        runs["reviewed"] = tmp / "reviewed"
        report = compare_runs(runs["noisy"], runs["reviewed"], write=False)

        splits = pd.read_parquet(runs["noisy"] / "predictions.parquet")
        test_ids = pd.Index(splits.loc[splits["split"] == "test", "id"])
        truth = clean.set_index("id").loc[test_ids, TOS_LABELS].to_numpy()
        groups = clean.set_index("id").loc[test_ids, "doc_id"].to_numpy()
        pred = {name: test_decisions(path, test_ids) for name, path in runs.items()}
        vs_truth = {name: macro_f1(truth, p) for name, p in pred.items()}
        gain = bootstrap_difference(truth, pred["noisy"], truth, pred["reviewed"], groups=groups, seed=seed)
        gap = bootstrap_difference(truth, pred["reviewed"], truth, pred["clean"], groups=groups, seed=seed)

    n_test_inj = int(flipped[clean["id"].isin(test_ids).to_numpy()].sum())
    found = int(sum(truly))
    result = {
        "benchmark": "review_loop", "data": "ToS (bundled demo data), demo config (TF-IDF), one shared split",
        "noise": {"rate": rate, "seed": seed, "injected_pairs": int(flipped.sum()),
                  "injected_in_test_rows": n_test_inj},
        "review": {"queue_rows_reviewed": len(queue), "injected_found": found,
                   "precision": found / max(len(queue), 1), "recall": found / int(flipped.sum())},
        "test_macro_f1_vs_clean_codes": vs_truth,
        "reviewed_minus_noisy_ci": gain["macro"], "clean_minus_reviewed_ci": gap["macro"],
        "corrections_report_macro": {k: report[k]["macro_f1"] for k in ("original", "corrected")},
        "seconds": {k: round(v, 1) for k, v in seconds.items()}}
    return result


if __name__ == "__main__":
    raise SystemExit(main())
