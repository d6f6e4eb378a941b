"""ToS protocol: document-level 5-fold CV on the authors' `fold` column, macro-F1 over the 9 categories.

Compares, in the same run and on the same folds:
  * lexcoder's TF-IDF pipeline (`lexcoder run` with split.method = "column", column = "fold": each fold is
    test once, the next fold tunes the thresholds, the other three train), for one or more model settings;
  * the reference baseline: untuned TF-IDF + LinearSVC (C=1, class-balanced, decision threshold 0), trained
    on the four non-test folds.

    .venv/bin/python benchmarks/bench_tfidf_cv.py [--variants default,char,auto]
"""
from __future__ import annotations

import argparse
import json
import warnings
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import f1_score
from sklearn.svm import LinearSVC

import lexcoder
from lexcoder.demo import TOS_LABELS, demo_data_path

VARIANTS = {
    "default": {},
    "char": {"char_ngrams": True},
    "auto": {"C": "auto"},
    "char+auto": {"char_ngrams": True, "C": "auto"},
    "no refit": {"refit_on_val": False},
}


def run_lexcoder(params: dict, out: Path) -> tuple[dict, float]:
    cfg = lexcoder.config_from_dict({
        "data": {"path": str(demo_data_path()), "text_column": "text", "id_column": "id",
                 "label_columns": TOS_LABELS, "group_column": "doc_id"},
        "split": {"method": "column", "column": "fold"},
        "model": {"kind": "tfidf", "params": {k: v for k, v in params.items() if k != "refit_on_val"},
                  **({"refit_on_val": params["refit_on_val"]} if "refit_on_val" in params else {})},
        "evaluate": {"bootstrap": 0},
    })
    t0 = time.perf_counter()
    result = lexcoder.run_pipeline(cfg, out)
    return result.metrics, time.perf_counter() - t0


def run_svc_baseline(df: pd.DataFrame) -> tuple[dict, float]:
    t0 = time.perf_counter()
    Y = df[TOS_LABELS].to_numpy()
    pred = np.zeros_like(Y)
    for k in sorted(df["fold"].unique()):
        test = (df["fold"] == k).to_numpy()
        vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
        Xtr, Xte = vec.fit_transform(df.loc[~test, "text"]), vec.transform(df.loc[test, "text"])
        for j in range(len(TOS_LABELS)):
            with warnings.catch_warnings():  # liblinear's convergence warning: the baseline is untuned
                warnings.simplefilter("ignore")
                svc = LinearSVC(C=1.0, class_weight="balanced").fit(Xtr, Y[~test, j])
            pred[test, j] = (svc.decision_function(Xte) > 0).astype(int)
    per_label = {lab: float(f1_score(Y[:, j], pred[:, j])) for j, lab in enumerate(TOS_LABELS)}
    return {"labels": {k: {"f1": v} for k, v in per_label.items()},
            "macro": {"f1": float(np.mean(list(per_label.values())))}}, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default="default,no refit,char")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "tfidf_cv.json"))
    args = ap.parse_args()
    df = pd.read_csv(demo_data_path())
    results = {}
    results["baseline LinearSVC (untuned)"] = dict(zip(("metrics", "seconds"), run_svc_baseline(df)))
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.variants.split(","):
            metrics, secs = run_lexcoder(VARIANTS[name], Path(tmp) / name)
            results[f"lexcoder tfidf {name}"] = {"metrics": metrics, "seconds": secs, "params": VARIANTS[name]}
    base = results["baseline LinearSVC (untuned)"]["metrics"]["macro"]["f1"]
    header = f"{'model':32s} " + " ".join(f"{lab[:8]:>8s}" for lab in TOS_LABELS) + "  macroF1  vs base  seconds"
    print(header)
    for name, r in results.items():
        m = r["metrics"]
        row = " ".join(f"{m['labels'][lab]['f1']:8.3f}" for lab in TOS_LABELS)
        print(f"{name:32s} {row}  {m['macro']['f1']:7.3f}  {m['macro']['f1'] / base:6.3f}x  {r['seconds']:7.1f}")
    summary = {name: {"macro_f1": r["metrics"]["macro"]["f1"], "seconds": round(r["seconds"], 2),
                      "per_label_f1": {lab: r["metrics"]["labels"][lab]["f1"] for lab in TOS_LABELS},
                      "params": r.get("params")} for name, r in results.items()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({
        "protocol": "ToS 17,383 sentences, 9 categories, document-level 5-fold CV on the authors' `fold`; "
                    "lexcoder: test fold k, validation (thresholds) fold k+1, train the other 3, then "
                    "refit on train+validation unless 'no refit'; "
                    "baseline: train on the 4 non-test folds, threshold 0; macro-F1 over pooled out-of-fold "
                    "predictions", "results": summary}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
