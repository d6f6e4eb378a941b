"""One network for labels and a categorical variable vs one network per output (issue 12), same run, same split.

Data: ECHR paragraphs (Habernal et al.; ``../shared/data/echr_arguments``): the frequent argument types as 0/1
labels and who argues as a categorical variable (``speaker``: applicant / court / state / no_one; paragraphs
with two or more agents, 1.3%, are left out), the authors' judgment-level train/val/test split, sampled to
``--train/--val/--test`` paragraphs by whole judgments. Both rows run ``lexcoder.run_pipeline`` with the bundled
all-MiniLM-L6-v2 (``[model] kind = "encoder"``), identical settings but ``per_variable``:

  * ``shared``: one body, a sigmoid per label and a softmax head for ``speaker`` (the default);
  * ``separate``: one network for the labels and one for ``speaker`` (``per_variable = true``).

Reported: test macro-F1 of the labels (at their validation-tuned thresholds), accuracy and macro-F1 of
``speaker``, training seconds (wall and CPU) and ``lexcoder predict`` seconds on the test paragraphs.

    .venv/bin/python benchmarks/bench_shared_body.py                   # ~15 min on 2 idle cores
    .venv/bin/python benchmarks/bench_shared_body.py --train 300 --val 100 --test 100 --epochs 1  # smoke run
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DATA = Path(os.environ.get("LEXCODER_SHARED_DATA", HERE.parent.parent / "shared" / "data")) \
    / "echr_arguments" / "paragraphs.csv.gz"
LABELS = ["subsumption", "precedent_ecthr", "prop_necessity_appropriateness", "decision_of_ecthr"]
SPEAKERS = {"agent_applicant": "applicant", "agent_court": "court", "agent_state": "state"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=int, default=1500, help="training paragraphs (about; whole judgments)")
    ap.add_argument("--val", type=int, default=400)
    ap.add_argument("--test", type=int, default=800)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rows", default="shared,separate")
    ap.add_argument("--out", type=Path, default=RESULTS / "shared_body.json")
    return ap.parse_args(argv)


def echr_table(args: argparse.Namespace) -> pd.DataFrame:
    """Paragraphs of whole judgments per authors' split, until each split has about its size."""
    df = pd.read_csv(DATA)
    df = df[df[list(SPEAKERS)].sum(axis=1) <= 1].copy()
    df["speaker"] = np.select([df[c] == 1 for c in SPEAKERS], list(SPEAKERS.values()), default="no_one")
    rng = np.random.default_rng(0)
    parts = []
    for split, size in (("train", args.train), ("val", args.val), ("test", args.test)):
        rows = df[df["split"] == split]
        docs = rng.permutation(rows["doc_id"].unique())
        sizes = rows.groupby("doc_id").size().loc[docs].cumsum()
        keep = docs[: int(np.searchsorted(sizes.to_numpy(), size)) + 1]
        parts.append(rows[rows["doc_id"].isin(keep)])
    return pd.concat(parts)[["id", "doc_id", "text", "split", *LABELS, "speaker"]]


def run_row(name: str, table_path: Path, work: Path, args: argparse.Namespace, test: pd.DataFrame) -> dict:
    import lexcoder
    from lexcoder.config import config_from_dict
    params = {"max_length": args.max_length, "batch_size": 16, "eval_batch_size": 128, "epochs": args.epochs,
              "lr": 5e-5, "head_lr": 1e-3, "seed": 0, "num_threads": args.threads, "patience": 0,
              "per_variable": name == "separate"}
    cfg = config_from_dict({
        "data": {"path": str(table_path), "id_column": "id", "label_columns": LABELS, "class_columns": ["speaker"],
                 "group_column": "doc_id"},
        "split": {"method": "column", "column": "split"},
        "model": {"kind": "encoder", "name": "minilm", "params": params},
        "evaluate": {"bootstrap": 0}, "report": {"enabled": False}})
    wall, cpu = time.perf_counter(), time.process_time()
    result = lexcoder.run_pipeline(cfg, work / name)
    train_wall, train_cpu = time.perf_counter() - wall, time.process_time() - cpu
    test_path = work / "test.csv"
    test.drop(columns=[*LABELS, "speaker"]).to_csv(test_path, index=False)
    wall = time.perf_counter()
    lexcoder.predict_file(work / name, test_path, work / f"{name}-coded.parquet")
    predict_wall = time.perf_counter() - wall
    m = result.metrics
    speaker = m["variables"]["speaker"]
    return {"labels_macro_f1": round(m["macro"]["f1"], 4),
            "labels_f1": {lab: round(m["labels"][lab]["f1"], 4) for lab in LABELS},
            "speaker_accuracy": round(speaker["accuracy"], 4), "speaker_macro_f1": round(speaker["macro_f1"], 4),
            "train_wall_s": round(train_wall, 1), "train_cpu_s": round(train_cpu, 1),
            "predict_wall_s": round(predict_wall, 1),
            "model_folders": sorted(p.name for p in (work / name / "models").iterdir())}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    table = echr_table(args)
    test = table[table["split"] == "test"]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        table.to_csv(work / "echr.csv", index=False)
        for name in args.rows.split(","):
            rows[name] = run_row(name, work / "echr.csv", work, args, test)
            print(name, json.dumps(rows[name]), flush=True)
    print(f"\n{'row':<10} {'labels macro-F1':>16} {'speaker acc':>12} {'speaker macro-F1':>17} {'train s':>8} "
          f"{'predict s':>10}")
    for name, r in rows.items():
        print(f"{name:<10} {r['labels_macro_f1']:>16.4f} {r['speaker_accuracy']:>12.4f} {r['speaker_macro_f1']:>17.4f} "
              f"{r['train_wall_s']:>8.0f} {r['predict_wall_s']:>10.1f}")
    out = {"date": date.today().isoformat(), "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                                         "loadavg_at_end": os.getloadavg()},
           "python": sys.version.split()[0], "settings": vars(args) | {"out": str(args.out)},
           "n": {s: int((table["split"] == s).sum()) for s in ("train", "val", "test")},
           "speaker_counts": table["speaker"].value_counts().to_dict(), "labels": LABELS, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
