"""Speed of lexcoder's encoder path vs a plain Hugging Face ``Trainer`` (same model, data, settings, run).

Both fine-tune all-MiniLM-L6-v2 with a 9-label multi-label head on the same ToS sentences (max_length,
batch size, epochs, threads equal; the Trainer with dynamic padding via ``DataCollatorWithPadding``), then
predict the same held-out sentences. Reported: training and inference examples/s, the ratios, lexcoder's
int8 (and bf16) inference with its agreement with fp32 (macro-F1 at validation-tuned thresholds), and the
achieved GFLOP/s against a measured fp32 matmul peak of this machine (model FLOPs: 2 x non-embedding
parameters per real token for a forward pass, 3x that for training; attention scores ignored).

    nice -n 10 .venv/bin/python benchmarks/bench_encoder_speed.py [--train 800 --predict 1500]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lexcoder.demo import TOS_LABELS, demo_data_path
from lexcoder.evaluate import evaluate_predictions
from lexcoder.models.encoder import EncoderClassifier
from lexcoder.models.pretrained import resolve_model_path
from lexcoder.models.torch_runtime import default_threads
from lexcoder.thresholds import choose_thresholds

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def matmul_peak_gflops(n: int = 1024, repeats: int = 20) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    t0 = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * n ** 3 * repeats / (time.perf_counter() - t0) / 1e9


def hf_trainer(texts, Y, pred_texts, settings, workdir) -> dict:
    """Plain Trainer: AutoModelForSequenceClassification, dynamic padding, no length grouping."""
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,
                              Trainer, TrainingArguments)
    path = resolve_model_path("minilm")
    tok = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=Y.shape[1], problem_type="multi_label_classification")
    enc = tok(list(texts), truncation=True, max_length=settings["max_length"])
    train = [{"input_ids": i, "attention_mask": m, "labels": [float(v) for v in y]}
             for i, m, y in zip(enc["input_ids"], enc["attention_mask"], Y)]
    penc = tok(list(pred_texts), truncation=True, max_length=settings["max_length"])
    pred = [{"input_ids": i, "attention_mask": m} for i, m in zip(penc["input_ids"], penc["attention_mask"])]
    args = TrainingArguments(output_dir=str(workdir), per_device_train_batch_size=settings["batch_size"],
                             per_device_eval_batch_size=settings["eval_batch_size"], num_train_epochs=settings["epochs"],
                             learning_rate=settings["lr"], use_cpu=True, report_to=[], save_strategy="no",
                             logging_strategy="no", seed=0, disable_tqdm=True, dataloader_num_workers=0)
    trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=DataCollatorWithPadding(tok))
    t0 = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    trainer.predict(pred)
    return {"train_seconds": train_s, "predict_seconds": time.perf_counter() - t0}


def lexcoder_path(texts, Y, val_texts, val_Y, pred_texts, pred_Y, settings) -> dict:
    model = EncoderClassifier(**settings, patience=0)
    t0 = time.perf_counter()
    model.fit(texts, Y, label_names=TOS_LABELS)
    out = {"train_seconds": time.perf_counter() - t0, "loop_examples_per_s": model.history_[-1]["train_examples_per_s"]}
    for variant in ("fp32", "int8", "bf16"):
        model.set_params(quantize_int8=variant == "int8", inference_bf16=variant == "bf16")
        model.predict_proba(pred_texts[:64])  # warm-up (and int8 conversion) outside the timing
        t0 = time.perf_counter()
        P = model.predict_proba(pred_texts)
        out[f"predict_seconds_{variant}"] = time.perf_counter() - t0
        th = choose_thresholds(val_Y, model.predict_proba(val_texts))
        out[f"macro_f1_{variant}"] = evaluate_predictions(pred_Y, P, th, TOS_LABELS)["macro"]["f1"]
        out[f"P_{variant}"] = P
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=int, default=800)
    ap.add_argument("--predict", type=int, default=1500)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--hf-first", action="store_true", help="run the Trainer first (check order effects)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "encoder_speed.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    threads = default_threads()
    torch.set_num_threads(threads)
    df = pd.read_csv(demo_data_path())
    pool = df[df["fold"] >= 2]
    has = pool[TOS_LABELS].sum(axis=1) > 0  # a third positives, so every label occurs in training
    train = pd.concat([pool[has].sample(args.train // 3, random_state=0),
                       pool[~has].sample(args.train - args.train // 3, random_state=0)]).sample(frac=1, random_state=0)
    val = df[df["fold"] == 1].sample(args.predict, random_state=0)
    test = df[df["fold"] == 0].sample(args.predict, random_state=0)
    # head "cls": lexcoder trains the very network the Trainer builds (AutoModelForSequenceClassification)
    settings = {"head": "cls", "max_length": args.max_length, "batch_size": 16, "eval_batch_size": 64, "epochs": 1,
                "lr": 1e-4, "num_threads": threads, "seed": 0}
    texts, Y = train["text"].tolist(), train[TOS_LABELS].to_numpy()
    peak = matmul_peak_gflops()
    run_ours = lambda: lexcoder_path(texts, Y, val["text"].tolist(), val[TOS_LABELS].to_numpy(),  # noqa: E731
                                     test["text"].tolist(), test[TOS_LABELS].to_numpy(), settings)
    if args.hf_first:
        with tempfile.TemporaryDirectory() as tmp:
            hf = hf_trainer(texts, Y, test["text"].tolist(), settings, tmp)
        ours = run_ours()
    else:
        ours = run_ours()
        with tempfile.TemporaryDirectory() as tmp:
            hf = hf_trainer(texts, Y, test["text"].tolist(), settings, tmp)
    peak_after = matmul_peak_gflops()

    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(resolve_model_path("minilm"))
    n_tok = lambda ts: sum(min(len(x), args.max_length) for x in tok(ts)["input_ids"])  # noqa: E731
    model = EncoderClassifier(**settings)
    params = sum(p.numel() for n, p in model._build_model(9).named_parameters() if "embeddings" not in n)
    train_flop, pred_flop = 6 * params * n_tok(texts), 2 * params * n_tok(test["text"].tolist())
    rows = {
        "train: HF Trainer": (len(texts) / hf["train_seconds"], train_flop / hf["train_seconds"]),
        "train: lexcoder": (len(texts) / ours["train_seconds"], train_flop / ours["train_seconds"]),
        "predict: HF Trainer fp32": (len(test) / hf["predict_seconds"], pred_flop / hf["predict_seconds"]),
    }
    for v in ("fp32", "int8", "bf16"):
        rows[f"predict: lexcoder {v}"] = (len(test) / ours[f"predict_seconds_{v}"], pred_flop / ours[f"predict_seconds_{v}"])
    agreement = {v: {"macro_f1": ours[f"macro_f1_{v}"], "macro_f1_change": ours[f"macro_f1_{v}"] - ours["macro_f1_fp32"],
                     "max_abs_prob_diff": float(np.abs(ours[f"P_{v}"] - ours["P_fp32"]).max())}
                 for v in ("int8", "bf16")}
    result = {
        "setup": {"model": "all-MiniLM-L6-v2 (minilm), 9-label head", "order": "HF first" if args.hf_first
                  else "lexcoder first", "train_sentences": len(texts),
                  "predict_sentences": len(test), **settings, "threads": threads,
                  "machine": f"{platform.machine()}, {os.cpu_count()} cores shared with other jobs",
                  "torch": torch.__version__, "non_embedding_params": params},
        "matmul_peak_gflops": [round(peak, 1), round(peak_after, 1)],
        "rows": {k: {"examples_per_s": round(a, 2), "gflops": round(b / 1e9, 2),
                     "pct_of_peak": round(100 * b / 1e9 / max(peak, peak_after), 1)} for k, (a, b) in rows.items()},
        "ratios": {"train": round(hf["train_seconds"] / ours["train_seconds"], 2),
                   **{f"predict_{v}": round(hf["predict_seconds"] / ours[f"predict_seconds_{v}"], 2)
                      for v in ("fp32", "int8", "bf16")}},
        "agreement_with_fp32": agreement, "macro_f1_fp32": ours["macro_f1_fp32"],
        "lexcoder_training_loop_examples_per_s": ours["loop_examples_per_s"],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"matmul peak {peak:.1f} / {peak_after:.1f} GFLOP/s (before / after), {threads} thread(s)")
    print(f"{'what':28s} {'ex/s':>8s} {'GFLOP/s':>8s} {'% peak':>7s}")
    for k, r in result["rows"].items():
        print(f"{k:28s} {r['examples_per_s']:8.1f} {r['gflops']:8.2f} {r['pct_of_peak']:7.1f}")
    print("ratios vs HF Trainer:", result["ratios"])
    print("agreement with fp32:", json.dumps(agreement))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
