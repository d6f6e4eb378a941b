"""ToS protocol in full: fine-tuned MiniLM (multi-label, per-label, blended with TF-IDF) vs TF-IDF, same folds.

Document-level 5-fold CV on the authors' ``fold`` column, exactly as ``bench_tfidf_cv.py``: for test fold k,
fold k+1 is the validation fold (early stopping and F1-optimal thresholds) and the other three train. Every
model sees the same sentences:

  * ``tfidf``: lexcoder's default TF-IDF model as ``lexcoder run`` trains it (thresholds on validation, then
    refit on train + validation);
  * ``minilm multi-label``: one fine-tuned all-MiniLM-L6-v2 with 9 sigmoid outputs, all training sentences
    (each epoch: every sentence with a code + ``--negative-ratio`` times as many fresh others);
  * ``mean(tfidf, minilm)``: the average of the encoder's and the (unrefitted) TF-IDF probabilities, thresholds
    re-tuned on validation: what ``[model.params] blend_tfidf = 0.5`` computes;
  * ``minilm per-label``: nine binary MiniLMs (the reference workflow's mode), on ``--per-label-folds`` only
    (it costs nine times as much);
  * ``baseline LinearSVC``: untuned TF-IDF + LinearSVC on the four non-test folds (the reference baseline).

Macro-F1 is over the pooled out-of-fold test predictions (as in ``bench_tfidf_cv.py``) and per fold.
Needs a GPU to finish in minutes (hours on 2 CPU cores). Results are written after every fold, so a run
cut short keeps what it finished.

    python benchmarks/bench_encoder_cv.py [--folds 0,1,2,3,4] [--per-label-folds 0] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import f1_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_tfidf_cv import run_svc_baseline  # noqa: E402

from lexcoder.demo import TOS_LABELS, demo_data_path  # noqa: E402
from lexcoder.models import build_model  # noqa: E402
from lexcoder.thresholds import choose_thresholds  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folds", default="0,1,2,3,4", help="test folds to run")
    ap.add_argument("--per-label-folds", default="0", help="test folds on which to also train per-label models "
                                                          "('' for none)")
    ap.add_argument("--model", default="minilm", help="encoder: alias, local directory or cached hub id")
    ap.add_argument("--head", default="auto", choices=["auto", "cls", "mean"],
                    help="[model.params] head: mean of the token vectors or the [CLS] head (auto: mean for minilm)")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--head-lr", type=float, default=1e-3)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--patience", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: one per idle core)")
    ap.add_argument("--negative-ratio", type=float, default=2.5,
                    help="[model.params] negative_ratio (each epoch: texts with a code + this many times as "
                         "many fresh others; 0: every text every epoch)")
    ap.add_argument("--smoke", type=int, default=0, metavar="N",
                    help="check the script quickly: N sentences per part (not a benchmark)")
    ap.add_argument("--out", type=Path, default=RESULTS / "encoder_cv.json")
    return ap.parse_args(argv)


def encoder_params(args: argparse.Namespace) -> dict:
    return {"head": args.head, "max_length": args.max_length, "batch_size": args.batch_size, "eval_batch_size": 256,
            "epochs": args.epochs, "lr": args.lr, "head_lr": args.head_lr, "warmup_ratio": 0.06,
            "pos_weight_cap": 10.0, "patience": args.patience, "seed": 0,
            "negative_ratio": args.negative_ratio or None, "num_threads": args.threads}


def fit_predict(kind: str, name: str | None, params: dict, train: pd.DataFrame, val: pd.DataFrame,
                test: pd.DataFrame, *, refit: bool = False) -> dict:
    """Fit on ``train`` (early stopping on ``val``), val/test probabilities; ``refit``: again on train+val."""
    t0 = time.perf_counter()
    model = build_model(kind, name, params)
    model.fit(train["text"].tolist(), train[TOS_LABELS].to_numpy(), val["text"].tolist(),
              val[TOS_LABELS].to_numpy(), label_names=TOS_LABELS)
    fit_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    P_val = model.predict_proba(val["text"].tolist())
    P_test = model.predict_proba(test["text"].tolist())
    predict_s = time.perf_counter() - t1
    out = {"P_val": P_val, "P_test": P_test, "P_test_final": P_test}
    if refit:  # lexcoder's TF-IDF default: thresholds from the train-only model, predictions after refit
        both = pd.concat([train, val])
        final = build_model(kind, name, params).fit(both["text"].tolist(), both[TOS_LABELS].to_numpy(),
                                                    label_names=TOS_LABELS)
        out["P_test_final"] = final.predict_proba(test["text"].tolist())
    out.update(seconds=time.perf_counter() - t0, fit_seconds=fit_s,
               predict_texts_per_s=(len(val) + len(test)) / predict_s,
               history=getattr(model, "history_", None))
    return out


def smoke_sample(part: pd.DataFrame, n: int) -> pd.DataFrame:
    """``n`` random sentences plus two positives of each label (every label needs both classes)."""
    pos = [part[part[lab] == 1].head(2) for lab in TOS_LABELS]
    return pd.concat([part.sample(min(n, len(part)), random_state=0), *pos]).drop_duplicates("id")


def decide(P_val: np.ndarray, Y_val: np.ndarray, P_test: np.ndarray) -> np.ndarray:
    """0/1 test predictions at the F1-optimal validation thresholds (``p >= t``, as everywhere in lexcoder)."""
    return (P_test >= np.asarray(choose_thresholds(Y_val, P_val, method="f1"))).astype(int)


def macro_f1(Y: np.ndarray, pred: np.ndarray) -> tuple[float, dict[str, float]]:
    per = {lab: float(f1_score(Y[:, j], pred[:, j], zero_division=0)) for j, lab in enumerate(TOS_LABELS)}
    return float(np.mean(list(per.values()))), per


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    df = pd.read_csv(demo_data_path())
    folds = [int(k) for k in args.folds.split(",") if k.strip()]
    per_label_folds = {int(k) for k in args.per_label_folds.strip("\x27\"").split(",") if k.strip() not in ("", "none")}
    n_folds = df["fold"].nunique()
    enc = encoder_params(args)
    models = ["tfidf", "minilm multi-label", "mean(tfidf, minilm multi-label)", "minilm per-label"]
    preds: dict[str, dict[int, np.ndarray]] = {m: {} for m in models}
    per_fold: dict[str, dict[int, dict]] = {m: {} for m in models}
    truth: dict[int, np.ndarray] = {}
    t_start = time.perf_counter()
    svc, svc_s = run_svc_baseline(df[df["fold"].isin(range(n_folds))])
    # multi-label (and TF-IDF, blend) on every fold first; the nine-times-dearer per-label models after
    schedule = [(k, False) for k in folds] + [(k, True) for k in folds if k in per_label_folds]
    for k, per_label in schedule:
        test, val = df[df["fold"] == k], df[df["fold"] == (k + 1) % n_folds]
        train = df[~df["fold"].isin([k, (k + 1) % n_folds])]
        if args.smoke:
            train, val, test = (smoke_sample(part, args.smoke) for part in (train, val, test))
        Yv, Yt = val[TOS_LABELS].to_numpy(), test[TOS_LABELS].to_numpy()
        truth[k] = Yt
        if per_label:
            runs = {"minilm per-label": fit_predict("encoder", args.model, {**enc, "per_label": True},
                                                    train, val, test)}
        else:
            runs = {"tfidf": fit_predict("tfidf", None, {}, train, val, test, refit=True),
                    "minilm multi-label": fit_predict("encoder", args.model, enc, train, val, test)}
            t, e = runs["tfidf"], runs["minilm multi-label"]
            runs["mean(tfidf, minilm multi-label)"] = {"P_val": (t["P_val"] + e["P_val"]) / 2,
                                                       "P_test_final": (t["P_test"] + e["P_test"]) / 2}
        for name, r in runs.items():
            preds[name][k] = decide(r["P_val"], Yv, r["P_test_final"])
            f1, per = macro_f1(Yt, preds[name][k])
            per_fold[name][k] = {"macro_f1": round(f1, 4), "per_label_f1": {a: round(b, 4) for a, b in per.items()},
                                 **{key: round(r[key], 1) for key in ("seconds", "fit_seconds",
                                                                      "predict_texts_per_s") if key in r},
                                 **({"history": r["history"]} if r.get("history") else {})}
            logging.info("fold %d %-34s macro-F1 %.4f", k, name, f1)
        write(args, truth, preds, per_fold, svc, svc_s, enc, time.perf_counter() - t_start)
    return 0


def write(args, truth, preds, per_fold, svc, svc_s, enc, elapsed) -> None:
    """Pooled and per-fold results so far → JSON + a table."""
    done = sorted({k for m in preds.values() for k in m})
    summary = {}
    for name, by_fold in preds.items():
        if not by_fold:
            continue
        ks = sorted(by_fold)
        Y = np.vstack([truth[k] for k in ks])
        f1, per = macro_f1(Y, np.vstack([by_fold[k] for k in ks]))
        secs = [per_fold[name][k].get("seconds") for k in ks]
        summary[name] = {"folds": ks, "macro_f1_pooled": round(f1, 4),
                         "per_label_f1": {a: round(b, 4) for a, b in per.items()},
                         "seconds": round(sum(secs), 1) if all(s is not None for s in secs) else None,
                         "per_fold": per_fold[name]}
    summary["baseline LinearSVC (untuned)"] = {"folds": "all 5", "macro_f1_pooled": round(svc["macro"]["f1"], 4),
                                               "seconds": round(svc_s, 1), "note": "always all 5 folds"}
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"{platform.machine()} CPU"
    result = {"benchmark": "encoder_cv",
              "protocol": "ToS 17,383 sentences, document-level 5-fold on `fold`: test k, validation k+1 "
                          "(early stopping + thresholds), train the other 3; macro-F1 over pooled test folds",
              "device": dev, "cpu_cores": os.cpu_count(), "torch": torch.__version__,
              "encoder": {"model": args.model, **enc}, "folds_done": done,
              "test_sentences": int(sum(len(truth[k]) for k in done)), "smoke": bool(args.smoke),
              "elapsed_seconds": round(elapsed, 1), "results": summary}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    base = summary["baseline LinearSVC (untuned)"]["macro_f1_pooled"]
    print(f"\n{dev}; folds done: {done}")
    print(f"{'model':34s} {'folds':>9s} {'macro-F1':>8s} {'vs SVC':>7s} {'seconds':>8s} {'fold ' + str(done[0]):>8s}")
    for name, r in summary.items():
        folds_s = r["folds"] if isinstance(r["folds"], str) else ",".join(map(str, r["folds"]))
        secs = "—" if r["seconds"] is None else f"{r['seconds']:.0f}"
        first = r.get("per_fold", {}).get(done[0], {}).get("macro_f1")
        print(f"{name:34s} {folds_s:>9s} {r['macro_f1_pooled']:8.4f} {r['macro_f1_pooled'] / base:6.3f}x {secs:>8s} "
              f"{'—' if first is None else f'{first:.4f}':>8s}")
    print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
