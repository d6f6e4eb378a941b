"""Rhetorical roles of Indian Supreme Court sentences (Bhattacharya et al., JURIX 2019): 7 exclusive roles.

9,380 sentences of 50 judgments; document-level 5-fold cross-validation on the authors' ``fold`` column (each
fold is the test part once). Accuracy and macro-F1 over the 7 roles, pooled over the out-of-fold predictions
and per fold (mean ± sd), per-class F1, wall and CPU time. Rows, all on the same folds and in one run:

  * ``baseline``: plain scikit-learn TF-IDF (word 1-2-grams, min_df 2, sublinear tf) + multinomial
    LogisticRegression (C=1, class_weight balanced), trained on the four non-test folds (the data's
    SOURCE.md sanity baseline, ≈ 0.44 macro-F1);
  * ``tfidf``: lexcoder's pipeline (``run_pipeline``; ``[data] class_columns = ["label"]``,
    ``[split] method = "column"``, ``column = "fold"``: test fold k, fold k+1 validation, the other three
    train, then TF-IDF refits on train + validation, so it too learns from four folds);
  * ``tfidf+ctx1`` / ``tfidf+ctx2`` / ``tfidf+ctx2+meta``: the same with ``[context] order_column =
    "sent_idx"`` (document = ``group``), window 1 or 2, position on, optionally ``metadata_columns =
    ["legal_area"]``; ``*-bias`` rows add ``[thresholds] class_bias = "macro_f1"``;
  * ``minilm`` / ``minilm+ctx``: the bundled all-MiniLM-L6-v2 fine-tuned (``[model] kind = "encoder"``) on
    the same partitions as the pipeline (``lexcoder.pipeline.prepare_inputs`` + ``lexcoder.split.cv_partitions``
    + ``lexcoder.context.model_inputs``/``take``): trained on three folds, early stopping on the validation
    fold, no refit. Driven per fold rather than through ``run_pipeline`` so that results are written after
    every fold and no sixth (deployable) model is trained: on 2 CPU cores each fit costs minutes;
  * ``blend``: the mean of the ``--blend-tfidf`` row's (default ``tfidf+ctx2``) and ``minilm+ctx``'s
    probabilities, ``blend-noctx`` the mean of ``tfidf`` and ``minilm``; the decision is the most probable class;
  * ``stacked``: a benchmark-only prototype of what a label-sequence layer adds (not a lexcoder feature):
    stacked sequential learning over the baseline's out-of-fold probabilities of each sentence and its
    neighbours.

The published figures of the dataset's authors are shown as reference rows (marked "published", not rerun)
from ``results/rhetorical_roles_published.json`` when that file holds them.

    .venv/bin/python benchmarks/bench_rhetorical_roles.py --rows baseline,tfidf,tfidf+ctx1,tfidf+ctx2
    .venv/bin/python benchmarks/bench_rhetorical_roles.py --quick            # one fold, 1 epoch: a smoke run
    .venv/bin/python benchmarks/bench_rhetorical_roles.py --rows minilm+ctx,blend --epochs 2 --merge
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PUBLISHED = RESULTS / "rhetorical_roles_published.json"
DATA = Path(os.environ.get("LEXCODER_SHARED_DATA", HERE.parent.parent / "shared" / "data")) \
    / "indian_sc_rhetorical_roles" / "texts.csv.gz"
LABEL, GROUP, FOLD, ORDER, AREA = "label", "group", "fold", "sent_idx", "legal_area"


@dataclass(frozen=True)
class Row:
    """One benchmark row: how its out-of-fold probabilities are made."""

    kind: str  # "baseline", "stacked", "pipeline" (lexcoder run_pipeline), "encoder" (per fold) or "blend"
    description: str
    model: str = "tfidf"
    window: int | None = None  # None: no [context]
    metadata: bool = False
    class_bias: str = "none"
    parts: tuple[str, ...] = ()  # blend: the rows averaged
    params: tuple[tuple[str, Any], ...] = ()  # [model.params] of a TF-IDF row


def row_specs(encoder_window: int, blend_tfidf: str = "tfidf+ctx2") -> dict[str, Row]:
    """Every row the script knows, by name (``--rows``); ``blend`` averages ``blend_tfidf`` and minilm+ctx."""
    return {
        "baseline": Row("baseline", "baseline: sklearn TF-IDF + multinomial LR (C=1, balanced), 4 folds"),
        "tfidf": Row("pipeline", "lexcoder TF-IDF (run_pipeline, refit on train+val)"),
        "tfidf+ctx1": Row("pipeline", "lexcoder TF-IDF + context (window 1, position)", window=1),
        "tfidf+ctx2": Row("pipeline", "lexcoder TF-IDF + context (window 2, position)", window=2),
        "tfidf+ctx2+meta": Row("pipeline", "lexcoder TF-IDF + context (window 2, position, legal_area)",
                               window=2, metadata=True),
        "tfidf+ctx2-C1": Row("pipeline", "lexcoder TF-IDF + context (window 2), C = 1", window=2,
                             params=(("C", 1.0),)),
        "tfidf+ctx2-Cauto": Row("pipeline", 'lexcoder TF-IDF + context (window 2), C = "auto"', window=2,
                                params=(("C", "auto"),)),
        "tfidf-bias": Row("pipeline", "lexcoder TF-IDF, class_bias = macro_f1", class_bias="macro_f1"),
        "tfidf+ctx2-bias": Row("pipeline", "lexcoder TF-IDF + context (window 2), class_bias = macro_f1",
                               window=2, class_bias="macro_f1"),
        "stacked": Row("stacked", "benchmark-only prototype: baseline + stacked LR over the probabilities of the "
                                  "sentence and its ±2 neighbours + position (not a lexcoder feature)"),
        "stacked+ctx2": Row("stacked", "benchmark-only prototype: lexcoder TF-IDF + context (window 2) + stacked "
                                       "LR over its probabilities of the sentence and its ±2 neighbours", window=2),
        "minilm": Row("encoder", "MiniLM (fine-tuned, 3 folds, early stopping on val)", model="encoder"),
        "minilm+ctx": Row("encoder", f"MiniLM + context (window {encoder_window}, position)", model="encoder",
                          window=encoder_window),
        "blend-noctx": Row("blend", "mean(tfidf, minilm)", parts=("tfidf", "minilm")),
        "blend": Row("blend", f"mean({blend_tfidf}, minilm+ctx)", parts=(blend_tfidf, "minilm+ctx")),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA, help="texts.csv.gz of indian_sc_rhetorical_roles")
    ap.add_argument("--rows", default="baseline,tfidf,tfidf+ctx1,tfidf+ctx2,tfidf+ctx2+meta",
                    help="comma-separated rows (see the module docstring; 'all' for every row); the baseline "
                         "always runs; a blend adds the rows it averages")
    ap.add_argument("--folds", default="0,1,2,3,4", help="test folds of the encoder rows (the pipeline always "
                                                         "runs all five; figures are compared on the same folds)")
    ap.add_argument("--quick", action="store_true", help="smoke run: test fold 0 only, 1 epoch, max_length 64")
    ap.add_argument("--smoke-docs", type=int, default=0, metavar="N",
                    help="keep only the first N judgments of each fold (whole documents; not a benchmark)")
    ap.add_argument("--encoder-window", type=int, default=1, help="context window of minilm+ctx")
    ap.add_argument("--blend-tfidf", default="tfidf+ctx2", help="the TF-IDF row that blend averages with minilm+ctx")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--head-lr", type=float, default=1e-3)
    ap.add_argument("--patience", type=int, default=2)
    ap.add_argument("--max-steps", type=int, default=0,
                    help="encoder: stop after this many optimizer steps (0: no cap)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the usable cores)")
    ap.add_argument("--blas-threads", type=int, default=1,
                    help="BLAS/OpenMP threads of the TF-IDF rows (0: the libraries' default). On a busy 2-core "
                         "machine OpenBLAS threads spin and cost the lbfgs fits 4x the CPU time")
    ap.add_argument("--work", type=Path, default=None, help="folder for run directories (default: a temp dir)")
    ap.add_argument("--out", type=Path, default=RESULTS / "rhetorical_roles.json")
    ap.add_argument("--merge", action="store_true",
                    help="keep the rows of an existing --out file that this run does not redo")
    args = ap.parse_args(argv)
    if args.quick:
        args.folds, args.epochs, args.max_length = "0", 1, 64
    return args


# -- data and scores -------------------------------------------------------------------------------------
def load_data(path: Path, smoke_docs: int) -> pd.DataFrame:
    """The corpus; with ``smoke_docs``, the first N judgments (by id) of every fold, whole."""
    df = pd.read_csv(path)
    if smoke_docs:
        keep = df.groupby(FOLD)[GROUP].apply(lambda g: sorted(g.unique())[:smoke_docs]).explode()
        df = df[df[GROUP].isin(set(keep))].reset_index(drop=True)
    return df


def scores(y: np.ndarray, pred: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Accuracy, macro- and weighted-F1 and per-class F1 of predicted class names against the codes."""
    per = f1_score(y, pred, labels=classes, average=None, zero_division=0)
    return {"accuracy": round(float(accuracy_score(y, pred)), 4),
            "macro_f1": round(float(f1_score(y, pred, labels=classes, average="macro", zero_division=0)), 4),
            "weighted_f1": round(float(f1_score(y, pred, labels=classes, average="weighted", zero_division=0)), 4),
            "per_class_f1": {c: round(float(f), 4) for c, f in zip(classes, per)}}


@dataclass
class Outcome:
    """A row's out-of-fold class probabilities (rows aligned with the corpus; NaN where not predicted)."""

    P: np.ndarray
    wall_s: float = 0.0
    cpu_s: float = 0.0
    fold_seconds: dict[int, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def summarize(spec: Row, out: Outcome, df: pd.DataFrame, classes: list[str],
              base: Outcome | None) -> dict[str, Any]:
    """Pooled and per-fold figures of one row (and its ratio to the baseline on the same rows)."""
    done = ~np.isnan(out.P).any(axis=1)
    y, folds = df[LABEL].to_numpy(dtype=object), df[FOLD].to_numpy()
    pred = np.asarray(classes, dtype=object)[np.nan_to_num(out.P).argmax(axis=1)]
    ks = sorted(set(folds[done].tolist()))
    per_fold = {int(k): {**{m: v for m, v in scores(y[done & (folds == k)], pred[done & (folds == k)],
                                                   classes).items() if m in ("accuracy", "macro_f1")},
                         **({"seconds": round(out.fold_seconds[k], 1)} if k in out.fold_seconds else {})}
                for k in ks}
    result = {"description": spec.description, "folds": ks, "pooled": scores(y[done], pred[done], classes),
              "per_fold": per_fold,
              **{f"{m}_mean": round(float(np.mean([f[m] for f in per_fold.values()])), 4)
                 for m in ("accuracy", "macro_f1")},
              **{f"{m}_sd": round(float(np.std([f[m] for f in per_fold.values()], ddof=1)), 4) if len(ks) > 1
                 else None for m in ("accuracy", "macro_f1")},
              "wall_seconds": round(out.wall_s, 1), "cpu_seconds": round(out.cpu_s, 1), **out.extra}
    if base is not None:
        base_pred = np.asarray(classes, dtype=object)[base.P.argmax(axis=1)]
        b = scores(y[done], base_pred[done], classes)["macro_f1"]
        result["baseline_macro_f1_same_rows"] = b
        result["macro_f1_vs_baseline"] = round(result["pooled"]["macro_f1"] / b, 3) if b else None
        base_fold = {k: scores(y[done & (folds == k)], base_pred[done & (folds == k)], classes)["macro_f1"]
                     for k in ks}  # paired by fold: is a gain more than the luck of one split?
        result["macro_f1_minus_baseline_per_fold"] = {k: round(per_fold[k]["macro_f1"] - b_k, 4)
                                                      for k, b_k in base_fold.items()}
    return result


# -- the rows --------------------------------------------------------------------------------------------
def timed(fn: Callable[[], Outcome], blas_threads: int) -> Outcome:
    """Run ``fn`` (with at most ``blas_threads`` BLAS/OpenMP threads, 0: no limit); record its wall and CPU
    time (all threads of this process) and the load average around it."""
    from contextlib import nullcontext
    from threadpoolctl import threadpool_limits
    limit = threadpool_limits(blas_threads) if blas_threads else nullcontext()
    load0, t0, c0 = os.getloadavg()[0], time.perf_counter(), time.process_time()
    with limit:
        out = fn()
    out.wall_s, out.cpu_s = time.perf_counter() - t0, time.process_time() - c0
    out.extra["load_average_1min"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
    return out


def sk_tfidf_lr(train: pd.DataFrame, test: pd.DataFrame, classes: list[str]) -> np.ndarray:
    """The baseline model: scikit-learn TF-IDF + multinomial LR fitted on ``train``; ``test``'s probabilities."""
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    clf = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
    clf.fit(vec.fit_transform(train["text"]), train[LABEL])
    return clf.predict_proba(vec.transform(test["text"]))[:, np.searchsorted(clf.classes_, classes)]


def run_baseline(df: pd.DataFrame, classes: list[str]) -> Outcome:
    """Plain scikit-learn TF-IDF + multinomial LR, trained on the four non-test folds."""
    P, secs = np.full((len(df), len(classes)), np.nan), {}
    for k in sorted(df[FOLD].unique()):
        t0, test = time.perf_counter(), (df[FOLD] == k).to_numpy()
        P[test] = sk_tfidf_lr(df[~test], df[test], classes)
        secs[int(k)] = time.perf_counter() - t0
    return Outcome(P, fold_seconds=secs)


def sequence_features(P: np.ndarray, df: pd.DataFrame, offsets: tuple[int, ...] = (-2, -1, 1, 2)) -> np.ndarray:
    """Per sentence: its class log-probabilities, those of its neighbours at ``offsets`` in its judgment (0 and
    an edge flag past the ends) and its relative position (5 bins): the input of the stacked model."""
    rows = np.lexsort((df[ORDER].to_numpy(), df[GROUP].to_numpy()))
    docs, logp = df[GROUP].to_numpy()[rows], np.log(np.clip(P, 1e-6, 1))
    n, blocks = len(rows), [logp]
    for off in offsets:
        shifted, edge = np.zeros_like(logp), np.ones((len(df), 1))
        at = np.arange(n) + off
        ok = (at >= 0) & (at < n)
        ok[ok] &= docs[at[ok]] == docs[ok]
        shifted[rows[ok]], edge[rows[ok]] = logp[rows[at[ok]]], 0.0
        blocks += [shifted, edge]
    rank = pd.Series(df[ORDER].to_numpy(dtype=float)).groupby(df[GROUP].to_numpy()).rank(pct=True).to_numpy()
    blocks.append(np.eye(5)[np.minimum((rank * 5).astype(int), 4)])
    return np.hstack(blocks)


Base = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (train rows, test rows) of the corpus -> test probabilities


def sklearn_base(df: pd.DataFrame, classes: list[str]) -> Base:
    """The baseline model as a stacking base."""
    return lambda train, test: sk_tfidf_lr(df[train], df[test], classes)


def lexcoder_base(data_path: Path, spec: Row, df: pd.DataFrame, classes: list[str]) -> Base:
    """lexcoder's TF-IDF model with ``spec``'s [context] as a stacking base (fitted on the rows given, C as set)."""
    from lexcoder.context import model_inputs, take
    from lexcoder.models import build_model
    from lexcoder.pipeline import prepare_inputs
    cfg = lexcoder_config(data_path, spec)
    table = prepare_inputs(cfg).data
    inputs = take(model_inputs(table, cfg), pd.Index(table["id"]).get_indexer(df["id"]))  # in corpus order
    inputs = inputs if isinstance(inputs, pd.DataFrame) else pd.Series(inputs)
    y = df[LABEL].astype(str).to_numpy(dtype=object)

    def fit_predict(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        model = build_model("tfidf", None, cfg.model.params).fit(take(inputs, train), y[train])
        return model.predict_proba(take(inputs, test))[:, np.searchsorted(np.asarray(model.classes_), classes)]
    return fit_predict


def run_stacked(df: pd.DataFrame, classes: list[str], base: Base) -> Outcome:
    """Stacked sequential learning (Cohen & Carvalho 2005): a second multinomial LR reads the base model's
    probabilities of a sentence and of its neighbours. Its training rows get out-of-fold probabilities from
    an inner cross-validation over the four training folds, so it never learns from probabilities of
    sentences the base model was fitted on."""
    P, secs = np.full((len(df), len(classes)), np.nan), {}
    folds = df[FOLD].to_numpy()
    for k in sorted(set(folds.tolist())):
        t0, test = time.perf_counter(), folds == k
        inner = np.full((len(df), len(classes)), np.nan)
        for j in sorted(set(folds[~test].tolist())):
            inner[folds == j] = base(~test & (folds != j), folds == j)
        stacker = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
        train = df[~test].reset_index(drop=True)
        stacker.fit(sequence_features(inner[~test], train), train[LABEL])
        outer = base(~test, test)
        P[test] = stacker.predict_proba(sequence_features(outer, df[test].reset_index(drop=True)))[
            :, np.searchsorted(stacker.classes_, classes)]
        secs[int(k)] = time.perf_counter() - t0
    return Outcome(P, fold_seconds=secs)


def lexcoder_config(data_path: Path, spec: Row, encoder: dict[str, Any] | None = None):
    """The run's configuration, as a researcher would write it."""
    from lexcoder.config import config_from_dict
    raw: dict[str, Any] = {
        "data": {"path": str(data_path), "id_column": "id", "text_column": "text", "class_columns": [LABEL],
                 "group_column": GROUP},
        "split": {"method": "column", "column": FOLD},
        "model": {"kind": spec.model, "params": encoder if spec.model == "encoder" else dict(spec.params),
                  **({"name": "minilm"} if spec.model == "encoder" else {})},
        "thresholds": {"class_bias": spec.class_bias},
        "evaluate": {"bootstrap": 0},  # the benchmark computes its own figures; intervals are not timed here
        "report": {"enabled": False},
    }
    if spec.window is not None:
        raw["context"] = {"order_column": ORDER, "window": spec.window, "position": True,
                          "metadata_columns": [AREA] if spec.metadata else []}
    return config_from_dict(raw, f"benchmark row {spec.description!r}")


def context_available() -> str | None:
    """None when lexcoder feeds ``[context]`` to models; else why not (the rows are then skipped)."""
    try:
        from lexcoder.context import model_inputs
        cfg = lexcoder_config(DATA, Row("pipeline", "probe", window=1))
    except Exception as err:  # noqa: BLE001 - any failure means: not available in this checkout
        return f"[context] cannot be configured: {type(err).__name__}: {err}"
    probe = pd.DataFrame({"id": ["a", "b"], "text": ["x", "y"], "group": ["d", "d"], ORDER: [0.0, 1.0]})
    if not isinstance(model_inputs(probe, cfg), pd.DataFrame):
        return "lexcoder.context.model_inputs returns the texts alone even with [context] order_column set"
    return None


def run_pipeline_row(data_path: Path, spec: Row, df: pd.DataFrame, classes: list[str], work: Path,
                     name: str) -> Outcome:
    """lexcoder's whole pipeline in k-fold mode on the ``fold`` column; its out-of-fold probabilities."""
    from lexcoder.pipeline import run_pipeline
    run_dir = work / name.replace("+", "_")
    result = run_pipeline(lexcoder_config(data_path, spec), run_dir)
    preds = pd.read_parquet(run_dir / "predictions.parquet").set_index("id").loc[df["id"]]
    P = preds[[f"{LABEL}_prob_{c}" for c in classes]].to_numpy(dtype=float)
    decided = preds[f"{LABEL}_pred"].to_numpy(dtype=object)
    if spec.class_bias != "none":  # decisions are not the argmax: keep them, as one-hot "probabilities"
        P = (decided[:, None] == np.asarray(classes, dtype=object)[None, :]).astype(float)
    block = result.metrics["variables"][LABEL]
    return Outcome(P, extra={"lexcoder_metrics": {k: round(block[k], 4) for k in ("accuracy", "macro_f1")}})


def encoder_params(args: argparse.Namespace) -> dict[str, Any]:
    return {"max_length": args.max_length, "batch_size": args.batch_size, "eval_batch_size": 128,
            "epochs": args.epochs, "lr": args.lr, "head_lr": args.head_lr, "warmup_ratio": 0.06,
            "patience": args.patience, "seed": 0, "num_threads": args.threads, "max_steps": args.max_steps or None}


def run_encoder_row(data_path: Path, spec: Row, df: pd.DataFrame, classes: list[str], args: argparse.Namespace,
                    on_fold: Callable[[Outcome], None]) -> Outcome:
    """MiniLM fitted per partition of the pipeline's own split (test k, validation k+1, three folds train)."""
    from lexcoder.context import model_inputs, take
    from lexcoder.models import build_model
    from lexcoder.pipeline import prepare_inputs
    from lexcoder.split import cv_partitions
    cfg = lexcoder_config(data_path, spec, encoder_params(args))
    prepared = prepare_inputs(cfg)
    table, splits = prepared.data, prepared.splits
    inputs, y = model_inputs(table, cfg), table[LABEL].astype(str).to_numpy(dtype=object)
    order = pd.Index(table["id"]).get_indexer(df["id"])  # corpus row -> row of the canonical table
    out = Outcome(np.full((len(df), len(classes)), np.nan), extra={"history": {}})
    load0 = os.getloadavg()[0]
    wanted = {int(k) for k in args.folds.split(",") if k.strip()}
    t_start, c_start = time.perf_counter(), time.process_time()
    for part in cv_partitions(splits):
        k = int(splits["fold"].to_numpy()[part["test"]][0])
        if k not in wanted:
            continue
        t0 = time.perf_counter()
        model = build_model(cfg.model.kind, cfg.model.name, cfg.model.params)
        model.fit(take(inputs, part["train"]), y[part["train"]], take(inputs, part["val"]), y[part["val"]])
        P_table = np.full((len(table), len(classes)), np.nan)
        P_table[part["test"]] = model.predict_proba(take(inputs, part["test"]))[
            :, np.searchsorted(np.asarray(model.classes_, dtype=object), classes)]
        scored = ~np.isnan(P_table[order]).any(axis=1)
        out.P[scored] = P_table[order][scored]
        out.fold_seconds[k] = time.perf_counter() - t0
        out.extra["history"][k] = getattr(model, "history_", None)
        out.wall_s, out.cpu_s = time.perf_counter() - t_start, time.process_time() - c_start
        out.extra["load_average_1min"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
        logging.info("%s: fold %d done in %.0f s", spec.description, k, out.fold_seconds[k])
        on_fold(out)  # results so far are written: a long run cut short keeps its finished folds
    return out


# -- output ----------------------------------------------------------------------------------------------
def git_state() -> dict[str, Any]:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "src"], cwd=HERE,
                               capture_output=True, text=True).stdout.strip()
    except OSError:
        return {}
    return {"commit": head, "src_modified_files": len(dirty.splitlines())}


def versions() -> dict[str, str]:
    import sklearn
    import lexcoder
    out = {"python": platform.python_version(), "lexcoder": lexcoder.__version__, "numpy": np.__version__,
           "pandas": pd.__version__, "scikit-learn": sklearn.__version__}
    for mod in ("torch", "transformers"):
        if mod in sys.modules:
            out[mod] = sys.modules[mod].__version__
    return out


def published() -> dict[str, Any]:
    """The authors' published figures (reference rows), if the file holds them."""
    return json.loads(PUBLISHED.read_text(encoding="utf-8")) if PUBLISHED.is_file() else {}


def write(args: argparse.Namespace, rows: dict[str, Any], skipped: dict[str, str], df: pd.DataFrame,
          started: float, previous: dict[str, Any]) -> None:
    kept = {k: v for k, v in previous.get("rows", {}).items() if k not in rows} if args.merge else {}
    result = {
        "benchmark": "rhetorical_roles",
        "date": date.today().isoformat(),
        "protocol": "Indian SC rhetorical roles (Bhattacharya et al., JURIX 2019), 7 exclusive roles; document-"
                    "level 5-fold CV on the authors' `fold` column, each fold the test part once; accuracy and "
                    "macro-F1 over the pooled out-of-fold predictions and per fold",
        "data": {"path": str(args.data), "sentences": int(len(df)), "documents": int(df[GROUP].nunique()),
                 "smoke_docs_per_fold": args.smoke_docs or None},
        "machine": {"platform": platform.platform(), "cpu_cores": os.cpu_count(),
                    "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        "versions": versions(), "git": git_state(),
        "encoder": {"name": "minilm", **encoder_params(args), "window": args.encoder_window, "folds": args.folds},
        "blas_threads_tfidf_rows": args.blas_threads or "library default",
        "elapsed_seconds": round(time.perf_counter() - started, 1),
        "rows": {**kept, **rows}, "not_run": skipped,
        "published": published().get("rows", []),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def print_table(rows: dict[str, Any], skipped: dict[str, str], classes: list[str]) -> None:
    short = {c: "".join(w[0] for w in c.split()) for c in classes}
    head = f"{'row':18s} {'folds':>9s} {'acc':>6s} {'macroF1':>7s} {'mF1 mean±sd':>13s} {'vs base':>7s} " \
           f"{'wall s':>7s} {'cpu s':>7s}  " + " ".join(f"{short[c]:>5s}" for c in classes)
    print("\n" + head + "\n" + "-" * len(head))
    for name, r in rows.items():
        sd = r.get("macro_f1_sd")
        spread = f"{r['macro_f1_mean']:.3f}±{sd:.3f}" if sd is not None else f"{r['macro_f1_mean']:.3f}"
        ratio = r.get("macro_f1_vs_baseline")
        print(f"{name:18s} {','.join(map(str, r['folds'])):>9s} {r['pooled']['accuracy']:6.3f} "
              f"{r['pooled']['macro_f1']:7.3f} {spread:>13s} {'—' if ratio is None else f'{ratio:.3f}x':>7s} "
              f"{r['wall_seconds']:7.0f} {r['cpu_seconds']:7.0f}  "
              + " ".join(f"{r['pooled']['per_class_f1'][c]:5.3f}" for c in classes))
    ref = published()
    for p in ref.get("rows", []):
        print(f"published, not rerun: {p['model']}: macro-F1 {p.get('macro_f1')} ({p.get('where', '')})")
    if not ref.get("rows"):
        print(f"published figures: none recorded in {PUBLISHED.name} (see its 'source')")
    for name, why in skipped.items():
        print(f"{name}: not available — {why}")
    print("classes: " + ", ".join(f"{short[c]} = {c}" for c in classes))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    specs = row_specs(args.encoder_window, args.blend_tfidf)
    wanted = list(specs) if args.rows == "all" else [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in wanted if r not in specs]
    if unknown:
        raise SystemExit(f"unknown row(s) {unknown}; known: {', '.join(specs)}")
    for name in list(wanted):  # a blend needs the rows it averages, run before it
        for part in specs[name].parts:
            if part not in wanted:
                wanted.insert(wanted.index(name), part)
    wanted = ["baseline"] + [r for r in dict.fromkeys(wanted) if r != "baseline"]
    started = time.perf_counter()
    previous = json.loads(args.out.read_text(encoding="utf-8")) if args.merge and args.out.is_file() else {}
    df = load_data(args.data, args.smoke_docs)
    classes = sorted(df[LABEL].unique())
    no_context = context_available()
    with tempfile.TemporaryDirectory(prefix="bench_rr_") as tmp:
        work = args.work or Path(tmp)
        data_path = args.data
        if args.smoke_docs:
            data_path = work / "smoke.csv.gz"
            df.to_csv(data_path, index=False)
        outcomes: dict[str, Outcome] = {}
        rows: dict[str, Any] = {}
        skipped: dict[str, str] = {}

        def record(name: str, out: Outcome) -> None:
            outcomes[name] = out
            rows[name] = summarize(specs[name], out, df, classes, outcomes.get("baseline"))
            write(args, rows, skipped, df, started, previous)

        for name in wanted:
            spec = specs[name]
            if spec.window is not None and no_context:
                skipped[name] = no_context
                continue
            if spec.kind == "blend":
                missing = [p for p in spec.parts if p not in outcomes]
                if missing:
                    skipped[name] = f"needs rows {missing}, which did not run"
                    continue
                record(name, Outcome(np.mean([outcomes[p].P for p in spec.parts], axis=0)))
                continue
            logging.info("row %s: %s", name, spec.description)
            if spec.kind == "baseline":
                out = timed(lambda: run_baseline(df, classes), args.blas_threads)
            elif spec.kind == "stacked":
                make_base = (lambda: sklearn_base(df, classes)) if spec.window is None else \
                    (lambda: lexcoder_base(data_path, spec, df, classes))
                out = timed(lambda: run_stacked(df, classes, make_base()), args.blas_threads)
            elif spec.kind == "pipeline":
                out = timed(lambda: run_pipeline_row(data_path, spec, df, classes, work, name), args.blas_threads)
            else:
                out = run_encoder_row(data_path, spec, df, classes, args, lambda o: record(name, o))
            record(name, out)
        print_table(rows, skipped, classes)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
