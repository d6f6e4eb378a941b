"""Speed of lexcoder's encoder path vs Hugging Face ``Trainer`` baselines (same model, data, settings, threads).

Every arm fine-tunes all-MiniLM-L6-v2 with a 9-label multi-label [CLS] head (``head = "cls"``: lexcoder trains
the very network ``AutoModelForSequenceClassification`` builds) on the same ToS sentences (max_length, batch
size, epochs, learning rate, threads equal), then codes the same held-out sentences with the same prediction
batch size. Arms, interleaved within each repeat (the order rotates between repeats, so a shared machine's
load drift hits every arm alike; the load average is recorded around each arm):

- ``HF Trainer, grouped`` (the fair baseline): ``train_sampling_strategy="group_by_length"`` (transformers 5;
  ``group_by_length=True`` before) + ``DataCollatorWithPadding``; ``Trainer.predict`` for prediction;
- ``HF Trainer, random``: the old baseline, random batches (dynamic padding only);
- ``lexcoder``: float32 training (the default; fused AdamW, as the Trainer's default ``adamw_torch_fused``);
  prediction in float32, bf16 autocast and dynamic int8;
- ``lexcoder, bf16 training``: the same loop with ``train_bf16 = true`` (CPU bf16 autocast; weights, gradients
  and optimizer state stay float32).

Quality (test macro-F1 at validation-tuned thresholds, one 9-label model per training arm) and lexcoder's own
bf16 decision (the validation check ``inference_bf16 = "auto"`` runs after training) are reported beside the
speeds. ``--trained-run DIR`` adds the agreement of bf16 and fp32 on a properly trained run's model (e.g.
``lexcoder demo --model minilm --out DIR``): its validation and test splits, the encoder's own probabilities.

    nice -n 10 .venv/bin/python benchmarks/bench_encoder_speed.py [--quick] [--trained-run DIR]
"""
from __future__ import annotations

import argparse
import copy
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
from lexcoder.models.torch_runtime import cpu_has_bf16, default_threads
from lexcoder.thresholds import choose_thresholds

os.environ.setdefault("HF_HUB_OFFLINE", "1")
RESULTS = Path(__file__).resolve().parent / "results"
TRAIN_ARMS = ("HF Trainer, grouped", "HF Trainer, random", "lexcoder", "lexcoder, bf16 training")
PREDICT_ARMS = ("HF Trainer.predict", "lexcoder fp32", "lexcoder bf16", "lexcoder int8")


def matmul_peak_gflops(dtype: torch.dtype = torch.float32, n: int = 1024, repeats: int = 20) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    t0 = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * n ** 3 * repeats / (time.perf_counter() - t0) / 1e9


def load() -> float:
    return round(os.getloadavg()[0], 2)


# -- the Hugging Face arms ---------------------------------------------------------------------------
def hf_datasets(tok, texts, Y, pred_texts, max_length: int) -> tuple[list[dict], list[dict]]:
    enc = tok(list(texts), truncation=True, max_length=max_length)
    train = [{"input_ids": i, "attention_mask": m, "labels": [float(v) for v in y]}
             for i, m, y in zip(enc["input_ids"], enc["attention_mask"], Y)]
    penc = tok(list(pred_texts), truncation=True, max_length=max_length)
    return train, [{"input_ids": i, "attention_mask": m} for i, m in zip(penc["input_ids"], penc["attention_mask"])]


def hf_train(tok, train: list[dict], num_labels: int, settings: dict, grouped: bool, workdir: str):
    """A fitted Trainer and its training seconds."""
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer, TrainingArguments
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        resolve_model_path("minilm"), num_labels=num_labels, problem_type="multi_label_classification")
    args = TrainingArguments(output_dir=workdir, per_device_train_batch_size=settings["batch_size"],
                             per_device_eval_batch_size=settings["eval_batch_size"],
                             num_train_epochs=settings["epochs"], learning_rate=settings["lr"], use_cpu=True,
                             report_to=[], save_strategy="no", logging_strategy="no", seed=0, disable_tqdm=True,
                             dataloader_num_workers=0,
                             train_sampling_strategy="group_by_length" if grouped else "random")
    trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=DataCollatorWithPadding(tok))
    t0 = time.perf_counter()
    trainer.train()
    return trainer, time.perf_counter() - t0


def hf_predict(trainer, pred: list[dict]) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    out = trainer.predict(pred)
    return 1 / (1 + np.exp(-out.predictions)), time.perf_counter() - t0


# -- the lexcoder arms -----------------------------------------------------------------------------
def lexcoder_train(klass, texts, Y, settings: dict) -> tuple[EncoderClassifier, float]:
    model = klass(**settings, patience=0)
    t0 = time.perf_counter()
    model.fit(texts, Y, label_names=TOS_LABELS)  # no validation texts: no evaluation, as in the Trainer arms
    return model, time.perf_counter() - t0


def variant(model: EncoderClassifier, name: str) -> EncoderClassifier:
    """A copy predicting in float32, under bf16 autocast, or with dynamic int8 (warmed up)."""
    out = copy.deepcopy(model).set_params(quantize_int8=name == "int8", inference_bf16=name == "bf16")
    out.predict_proba(["A warm-up sentence about the termination of accounts."] * 8)
    return out


def timed_predict(model, texts) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    P = model.predict_proba(texts)
    return P, time.perf_counter() - t0


def test_macro_f1(model, val, test, P_test=None) -> float:
    th = choose_thresholds(val[1], model.predict_proba(val[0]))
    P = model.predict_proba(test[0]) if P_test is None else P_test
    return float(evaluate_predictions(test[1], P, th, TOS_LABELS)["macro"]["f1"])


# -- the benchmark ---------------------------------------------------------------------------------
def sample(df: pd.DataFrame, n_train: int, n_pred: int):
    pool = df[df["fold"] >= 2]
    has = pool[TOS_LABELS].sum(axis=1) > 0  # a third positives, so every label occurs in training
    train = pd.concat([pool[has].sample(n_train // 3, random_state=0),
                       pool[~has].sample(n_train - n_train // 3, random_state=0)]).sample(frac=1, random_state=0)
    val = df[df["fold"] == 1].sample(n_pred, random_state=0)
    test = df[df["fold"] == 0].sample(n_pred, random_state=0)
    return [(d["text"].tolist(), d[TOS_LABELS].to_numpy()) for d in (train, val, test)]


def rotate(items: tuple, r: int) -> list:
    return list(items[r % len(items):] + items[:r % len(items)])


def run_repeats(args, settings: dict, train, val, test) -> dict:
    """Interleaved repeats: per arm and repeat, seconds and load; the first repeat's models for quality."""
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(resolve_model_path("minilm"))
    hf_train_set, hf_pred_set = hf_datasets(tok, *train, test[0], settings["max_length"])
    times: dict[str, list[dict]] = {a: [] for a in TRAIN_ARMS + PREDICT_ARMS}
    first: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            trained = {}
            for arm in rotate(TRAIN_ARMS, r + args.order_offset):
                before, cpu0 = load(), time.process_time()
                if arm.startswith("HF"):
                    trained[arm], s = hf_train(tok, hf_train_set, len(TOS_LABELS), settings, arm.endswith("grouped"),
                                               f"{tmp}/{r}-{arm[-6:]}")
                else:
                    trained[arm], s = lexcoder_train(EncoderClassifier, *train,
                                                     {**settings, "train_bf16": "bf16" in arm})
                times[arm].append({"seconds": s, "cpu_seconds": time.process_time() - cpu0, "load_before": before,
                                   "load_after": load()})
                if not arm.startswith("HF"):  # the training loop's own speed (fit() also loads and tokenizes)
                    times[arm][-1]["loop_examples_per_s"] = trained[arm].history_[-1]["train_examples_per_s"]
                    times[arm][-1]["training_precision"] = trained[arm].training_precision_["precision"]
                else:
                    times[arm][-1]["optim"] = str(trained[arm].args.optim)
                logging.warning("repeat %d: %s trained in %.1f s (load %.2f)", r, arm, s, load())
            models = {"HF Trainer.predict": trained["HF Trainer, grouped"]}
            models.update({f"lexcoder {v}": variant(trained["lexcoder"], v) for v in ("fp32", "bf16", "int8")})
            for arm in rotate(PREDICT_ARMS, r + args.order_offset):
                before, cpu0 = load(), time.process_time()
                P, s = (hf_predict(models[arm], hf_pred_set) if arm.startswith("HF")
                        else timed_predict(models[arm], test[0]))
                times[arm].append({"seconds": s, "cpu_seconds": time.process_time() - cpu0, "load_before": before,
                                   "load_after": load()})
                if r == 0:
                    first[arm] = P
            if r == 0:
                first.update(trained)
                first["predict models"] = models
    return {"times": times, "first": first}


def quality(first: dict, val, test) -> dict:
    """Test macro-F1 per lexcoder training arm and prediction variant; bf16/int8 agreement with fp32; the
    bf16 decision lexcoder records for the float32-trained model (its validation check)."""
    models = first["predict models"]
    P32 = first["lexcoder fp32"]
    out = {"test_macro_f1": {
        "lexcoder (fp32 training), fp32 prediction": test_macro_f1(models["lexcoder fp32"], val, test, P32),
        "lexcoder, bf16 training (fp32 prediction)": test_macro_f1(first["lexcoder, bf16 training"], val, test)}}
    for v in ("bf16", "int8"):
        f1 = test_macro_f1(models[f"lexcoder {v}"], val, test, first[f"lexcoder {v}"])
        out["test_macro_f1"][f"lexcoder (fp32 training), {v} prediction"] = f1
        out[f"{v}_prediction_vs_fp32"] = {
            "macro_f1_change": round(f1 - out["test_macro_f1"]["lexcoder (fp32 training), fp32 prediction"], 5),
            "max_abs_prob_diff": float(np.abs(first[f"lexcoder {v}"] - P32).max())}
    model = copy.deepcopy(first["lexcoder"])
    t0 = time.perf_counter()
    model._choose_inference_precision(val)  # what fit() does with validation texts (inference_bf16 = "auto")
    out["bf16_decision"] = {**model.inference_precision_, "check_seconds": round(time.perf_counter() - t0, 2)}
    return out


def trained_run_agreement(run_dir: Path, rows: int) -> dict:
    """bf16 vs fp32 on a trained run's encoder (its own probabilities, without any TF-IDF blend): the check
    lexcoder would run on the validation split, and the test split's macro-F1 and largest probability change."""
    from lexcoder.models import load_model
    from lexcoder.models.transformer import macro_f1_at_best_thresholds
    from lexcoder.models.torch_runtime import bf16_decision
    data, splits = pd.read_parquet(run_dir / "data.parquet"), pd.read_parquet(run_dir / "splits.parquet")
    model = load_model(next(p.parent for p in (run_dir / "models").glob("*/lexcoder_model.json")))
    model.set_params(blend_tfidf=0.0)
    labels = model.label_names_
    df = data.merge(splits[["id", "split"]], on="id")
    parts = {}
    for s in ("val", "test"):
        d = df[df["split"] == s]
        d = d.sample(min(rows, len(d)), random_state=0) if rows else d
        parts[s] = (d["text"].tolist(), d[labels].to_numpy())
    out = {"run": str(run_dir), "labels": len(labels), "rows_per_split": {s: len(p[0]) for s, p in parts.items()}}
    for split, (texts, Y) in parts.items():
        P = {}
        for name in ("fp32", "bf16", "fp32 again"):
            m = variant(model, "bf16" if name == "bf16" else "fp32")
            P[name], s = timed_predict(m, texts)
            out[f"{split}_texts_per_s_{name.replace(' ', '_')}"] = round(len(texts) / s, 1)
        out[f"{split}_macro_f1_fp32"] = round(macro_f1_at_best_thresholds(Y, P["fp32"]), 5)
        out[f"{split}_macro_f1_bf16"] = round(macro_f1_at_best_thresholds(Y, P["bf16"]), 5)
        out[f"{split}_max_abs_prob_diff"] = float(np.abs(P["bf16"] - P["fp32"]).max())
        if split == "val":
            out["decision"] = bf16_decision("auto", torch.device("cpu"),
                                            lambda bf16: P["bf16" if bf16 else "fp32"],
                                            lambda Q: macro_f1_at_best_thresholds(Y, Q))
    return out


def summarise(times: dict, n_train: int, n_pred: int) -> dict:
    """examples/s per arm and repeat; speed-ups (base seconds / arm seconds) per repeat and their medians, in
    wall time and in CPU time (both threads: less sensitive to a crowded machine than wall time)."""
    rows = {f"{kind}: {a}": [round(n / t["seconds"], 2) for t in times[a]]
            for kind, arms, n in (("train", TRAIN_ARMS, n_train), ("predict", PREDICT_ARMS, n_pred)) for a in arms}
    pairs = {**{f"train lexcoder / {b}": (b, "lexcoder") for b in TRAIN_ARMS[:2]},
             **{f"train lexcoder bf16 training / {b}": (b, "lexcoder, bf16 training") for b in TRAIN_ARMS[:2]},
             "train lexcoder bf16 training / lexcoder fp32": ("lexcoder", "lexcoder, bf16 training"),
             **{f"predict {a} / HF Trainer.predict": ("HF Trainer.predict", a) for a in PREDICT_ARMS[1:]},
             "predict lexcoder bf16 / lexcoder fp32": ("lexcoder fp32", "lexcoder bf16")}
    out = {"examples_per_s": rows}
    for name, key in (("ratios", "seconds"), ("cpu_time_ratios", "cpu_seconds")):
        per = {k: [round(b[key] / a[key], 2) for a, b in zip(times[arm], times[base])]
               for k, (base, arm) in pairs.items()}
        out.update({f"{name}_per_repeat": per, f"{name}_median": {k: float(np.median(v)) for k, v in per.items()}})
    # each arm's fastest repeat: the least disturbed by other jobs on a shared machine (as timeit's minimum)
    out["ratios_best_of_repeats"] = {k: round(min(t["seconds"] for t in times[base]) /
                                              min(t["seconds"] for t in times[arm]), 2)
                                     for k, (base, arm) in pairs.items()}
    return out


def write_trained_run_only(args, threads: int, peaks_before: dict) -> int:
    load_start = os.getloadavg()
    result = {"threads": threads, "cpu_bf16_capable": cpu_has_bf16(), "matmul_peak_gflops_before": peaks_before,
              "trained_run_bf16": trained_run_agreement(args.trained_run, args.trained_run_rows),
              "load_average": {"start": [round(x, 2) for x in load_start],
                               "end": [round(x, 2) for x in os.getloadavg()]}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=1, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", type=int, default=480, help="training sentences (the defaults: an estimated 13 min on 2 idle cores)")
    ap.add_argument("--predict", type=int, default=1000, help="sentences coded (and validation sentences)")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved repeats of every arm")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--quick", action="store_true", help="320 training / 600 coded sentences, one repeat")
    ap.add_argument("--order-offset", type=int, default=0, help="rotate the arms' order by this much more")
    ap.add_argument("--trained-run", type=Path, default=None, help="a trained MiniLM run: bf16 agreement on it")
    ap.add_argument("--trained-run-rows", type=int, default=1200, help="rows per split of --trained-run (0: all)")
    ap.add_argument("--trained-run-only", action="store_true", help="only the --trained-run agreement")
    ap.add_argument("--out", type=Path, default=RESULTS / "encoder_speed.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.train, args.predict, args.repeats = 320, 600, 1
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    threads = default_threads()
    torch.set_num_threads(threads)
    train, val, test = sample(pd.read_csv(demo_data_path()), args.train, args.predict)
    settings = {"head": "cls", "max_length": args.max_length, "batch_size": 16, "eval_batch_size": 64, "epochs": 1,
                "lr": 1e-4, "num_threads": threads, "seed": 0}
    peaks_before = {d: round(matmul_peak_gflops(getattr(torch, d)), 1) for d in ("float32", "bfloat16")}
    if args.trained_run_only:
        return write_trained_run_only(args, threads, peaks_before)
    load_start, t0 = os.getloadavg(), time.perf_counter()
    res = run_repeats(args, settings, train, val, test)
    result = {
        "setup": {"model": "all-MiniLM-L6-v2 (minilm), 9-label [CLS] head", **settings, "threads": threads,
                  "train_sentences": args.train, "predict_sentences": args.predict, "repeats": args.repeats,
                  "interleaved": "arm order rotates between repeats", "cpu_bf16_capable": cpu_has_bf16(),
                  "machine": f"{platform.machine()}, {os.cpu_count()} cores shared with other jobs",
                  "torch": torch.__version__, "transformers": __import__("transformers").__version__},
        "matmul_peak_gflops_before": peaks_before,
        **summarise(res["times"], args.train, args.predict),
        "times": res["times"],
        "quality": quality(res["first"], val, test),
    }
    if args.trained_run:
        result["trained_run_bf16"] = trained_run_agreement(args.trained_run, args.trained_run_rows)
    result["matmul_peak_gflops_after"] = {d: round(matmul_peak_gflops(getattr(torch, d)), 1)
                                          for d in ("float32", "bfloat16")}
    result["load_average"] = {"start": [round(x, 2) for x in load_start], "end": [round(x, 2) for x in os.getloadavg()]}
    result["wall_seconds"] = round(time.perf_counter() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"{threads} thread(s); matmul GFLOP/s before {peaks_before}, after {result['matmul_peak_gflops_after']}; "
          f"load {result['load_average']}")
    print(f"{'what':48s} examples/s per repeat")
    for k, v in result["examples_per_s"].items():
        print(f"{k:48s} {v}")
    print("ratios (median of repeats): wall time, CPU time; best repeat of each arm (wall)")
    for k, v in result["ratios_median"].items():
        print(f"  {k:58s} {v:.2f}x  {result['cpu_time_ratios_median'].get(k, float('nan')):.2f}x  "
              f"{result['ratios_best_of_repeats'][k]:.2f}x")
    print("quality:", json.dumps(result["quality"], indent=1, default=str))
    if args.trained_run:
        print("trained run:", json.dumps(result["trained_run_bf16"], indent=1, default=str))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
