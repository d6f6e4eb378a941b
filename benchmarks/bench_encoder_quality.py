"""ToS protocol, reduced for 2 shared CPU cores: fine-tuned MiniLM (multi-label, per-label) vs TF-IDF.

One document-level partition of the authors' ``fold`` column: test = fold 0, validation (early stopping and
F1-optimal thresholds) = fold 1, training = folds 2-4. Macro-F1 over the 9 categories on the test fold.

Reduced protocol (a full 5-fold fine-tuning run takes hours on 2 cores): the encoders train on a
sample of the training folds that keeps every sentence with a positive label plus random negatives up to
``--train-size`` sentences (negative subsampling; the per-label ``pos_weight`` follows the sample's
prevalence); ``max_length`` 128. TF-IDF trains on all training sentences. Also reported: the mean of the
TF-IDF and MiniLM probabilities (thresholds re-tuned on validation).

    nice -n 10 .venv/bin/python benchmarks/bench_encoder_quality.py [--train-size 3000] [--skip-per-label]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lexcoder.demo import TOS_LABELS, demo_data_path
from lexcoder.evaluate import evaluate_predictions
from lexcoder.models import build_model
from lexcoder.thresholds import choose_thresholds

os.environ.setdefault("HF_HUB_OFFLINE", "1")
RECIPE = {"max_length": 128, "batch_size": 16, "eval_batch_size": 128, "lr": 1e-4, "head_lr": 1e-3,
          "warmup_ratio": 0.06, "pos_weight_cap": 10.0, "patience": 2, "seed": 0}


def sample_training(train: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    """Every sentence with a positive label plus random negatives, ``size`` sentences in all."""
    pos = train[train[TOS_LABELS].sum(axis=1) > 0]
    neg = train.drop(pos.index)
    neg = neg.sample(min(len(neg), max(0, size - len(pos))), random_state=seed)
    return pd.concat([pos, neg]).sort_index()


def score(P_val, Y_val, P_test, Y_test) -> dict:
    th = choose_thresholds(Y_val, P_val, method="f1")
    m = evaluate_predictions(Y_test, P_test, th, TOS_LABELS)
    return {"macro_f1": m["macro"]["f1"], "f1": {lab: m["labels"][lab]["f1"] for lab in TOS_LABELS}}


def run_model(kind: str, params: dict, train: pd.DataFrame, val: pd.DataFrame | None, test: pd.DataFrame,
              name: str | None = None, thresholds_on: pd.DataFrame | None = None
              ) -> tuple[dict, np.ndarray, np.ndarray]:
    """Fit (early stopping on ``val`` if given), tune thresholds on ``thresholds_on`` (default ``val``), test."""
    t0 = time.perf_counter()
    model = build_model(kind, name, params)
    model.fit(train["text"].tolist(), train[TOS_LABELS].to_numpy(),
              None if val is None else val["text"].tolist(), None if val is None else val[TOS_LABELS].to_numpy(),
              label_names=TOS_LABELS)
    val = val if thresholds_on is None else thresholds_on
    fit_s = time.perf_counter() - t0
    P_val, P_test = model.predict_proba(val["text"].tolist()), model.predict_proba(test["text"].tolist())
    res = score(P_val, val[TOS_LABELS].to_numpy(), P_test, test[TOS_LABELS].to_numpy())
    res.update({"kind": kind, "params": params, "train_sentences": len(train), "fit_seconds": round(fit_s, 1),
                "total_seconds": round(time.perf_counter() - t0, 1),
                "history": getattr(model, "history_", None)})
    return res, P_val, P_test


def compare_per_label(train, val, test, size: int, n_eval: int) -> dict[str, dict]:
    has = train[TOS_LABELS].sum(axis=1) > 0
    sample = pd.concat([train[has].sample(size // 2, random_state=0), train[~has].sample(size - size // 2,
                                                                                          random_state=0)])
    val, test = val.sample(n_eval, random_state=0), test.sample(n_eval, random_state=0)
    params = {**RECIPE, "epochs": 1, "patience": 0}
    out = {}
    for key, kind, extra in (("equal budget: tfidf", "tfidf", None), ("equal budget: minilm multi-label", "encoder", {}),
                             ("equal budget: minilm per-label", "encoder", {"per_label": True})):
        p = {} if extra is None else {**params, **extra}
        out[key], _, _ = run_model(kind, p, sample, None, test, "minilm" if extra is not None else None, val)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-size", type=int, default=3000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--per-label-train-size", type=int, default=1500)
    ap.add_argument("--per-label-epochs", type=int, default=1)
    ap.add_argument("--models", default="multi,per-label",
                    help="comma list of: multi (with TF-IDF and the mean), per-label, neg (negative_ratio), "
                         "compare; results are merged into an existing --out file")
    ap.add_argument("--negative-ratio", type=float, default=None,
                    help="with --models neg: MiniLM on all training sentences, each epoch every positive "
                         "sentence + this many times as many fresh negatives ([model.params] negative_ratio)")
    ap.add_argument("--compare-size", type=int, default=800)
    ap.add_argument("--compare-eval", type=int, default=1500)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "encoder_quality.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    df = pd.read_csv(demo_data_path())
    test, val, train = df[df["fold"] == 0], df[df["fold"] == 1], df[df["fold"] >= 2]
    Yv, Yt = val[TOS_LABELS].to_numpy(), test[TOS_LABELS].to_numpy()
    old = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else {}
    results: dict[str, dict] = old.get("results", {})
    settings = old.get("settings", {})
    models = args.models.split(",")
    if "multi" in models:
        results["tfidf"], Pv_tfidf, Pt_tfidf = run_model("tfidf", {}, train, val, test)
        sample = sample_training(train, args.train_size, seed=0)
        enc_params = {**RECIPE, "epochs": args.epochs}
        results["minilm multi-label"], Pv_enc, Pt_enc = run_model("encoder", enc_params, sample, val, test,
                                                                  "minilm")
        results["mean(tfidf, minilm multi-label)"] = score((Pv_tfidf + Pv_enc) / 2, Yv, (Pt_tfidf + Pt_enc) / 2, Yt)
        settings["multi-label"] = f"{args.train_size} sentences, {args.epochs} epochs"
    if "neg" in models:  # all training sentences, negatives subsampled afresh every epoch
        ratio = args.negative_ratio or 2.5
        neg_params = {**RECIPE, "epochs": args.epochs, "negative_ratio": ratio}
        key = f"minilm multi-label, negative_ratio {ratio:g}, {args.epochs} epochs"
        results[key], Pv_neg, Pt_neg = run_model("encoder", neg_params, train, val, test, "minilm")
        if "tfidf" in results:
            _, Pv_t, Pt_t = run_model("tfidf", {}, train, val, test)
            results[f"mean(tfidf, {key})"] = score((Pv_t + Pv_neg) / 2, Yv, (Pt_t + Pt_neg) / 2, Yt)
        settings[f"negative_ratio, {args.epochs} epochs"] = (f"all {len(train)} training sentences; each epoch every sentence with a "
                                      f"positive code + {ratio:g}x as many fresh negatives; {args.epochs} epochs")
    if "compare" in models:  # per-label vs multi-label at an equal, small budget (per-label costs 9x)
        results.update(compare_per_label(train, val, test, args.compare_size, args.compare_eval))
        settings["compare"] = (f"per-label vs multi-label: same {args.compare_size} training sentences (half "
                               f"positive), 1 epoch, no early stopping; evaluated on {args.compare_eval} random "
                               "sentences of each of folds 1 (thresholds) and 0 (test)")
    if "per-label" in models:
        small = sample_training(train, args.per_label_train_size, seed=0)
        pl_params = {**RECIPE, "epochs": args.per_label_epochs, "per_label": True}
        results["minilm per-label"], _, _ = run_model("encoder", pl_params, small, val, test, "minilm")
        settings["per-label"] = f"{args.per_label_train_size} sentences, {args.per_label_epochs} epoch(s)"
    out = {"protocol": "ToS, test fold 0, val fold 1 (early stopping + thresholds), train folds 2-4",
           "reduced": ("encoders train on a sample of folds 2-4 (all positive sentences + random negatives), "
                       "max_length 128; TF-IDF trains on all of folds 2-4"),
           "settings": settings,
           "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared), "
                      f"torch {torch.__version__}, {torch.get_num_threads()} threads",
           "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2), encoding="utf-8")
    print(f"{'model':34s} {'macro-F1':>8s} {'seconds':>8s}  " + " ".join(f"{lab[:8]:>8s}" for lab in TOS_LABELS))
    for name, r in results.items():
        secs = f"{r['total_seconds']:8.0f}" if "total_seconds" in r else f"{'—':>8s}"
        print(f"{name:34s} {r['macro_f1']:8.3f} {secs}  " + " ".join(f"{r['f1'][lab]:8.3f}" for lab in TOS_LABELS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
