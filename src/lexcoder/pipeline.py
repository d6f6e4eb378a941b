"""The whole pipeline: load → clean → split → train → thresholds → evaluate (→ audit → report).

Each stage reads and writes named artifacts in the run directory (:class:`~lexcoder.rundir.RunDir`), so a
run can be inspected, resumed (``resume=True`` skips finished stages) and continued stage by stage.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .calibrate import CalibratedModel, calibrate_on_validation
from .clean import clean
from .config import Config
from .context import model_inputs, take
from .data import load_dataset
from .errors import ConfigError, DataError
from .evaluate import evaluate_options, evaluate_predictions
from .io import atomic_dir, file_sha256, read_json, write_json, write_table
from .ledger import check_corrections, training_table
from .models import TextClassifier, build_model
from .notify import watch_run
from .rundir import (THRESHOLDS_FILE, RunDir, RunInputs, check_resumable, discard_run, ensure_dir, prepare_out,
                     set_status, stage, stage_done, start_run)
from .split import class_indicators, cv_partitions, make_splits, prevalence_table
from .thresholds import choose_thresholds

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What :func:`run_pipeline` produced (everything is also on disk in ``run.root``)."""

    run: RunDir
    metrics: dict[str, Any]
    prevalence: pd.DataFrame


def run_pipeline(cfg: Config, out: str | Path, *, resume: bool = False,
                 corrections: str | Path | None = None) -> RunResult:
    """Run every stage for ``cfg`` into the run directory ``out``.

    Nothing is written until the data (and the ledger) have been read, validated and split: bad input
    leaves ``out`` as it was. The run folder is then locked against a second writer, and its manifest
    records the run's inputs and how it ended (see :mod:`lexcoder.rundir`).

    Parameters
    ----------
    cfg : validated configuration
    out : run directory: new, empty, holding a run that failed before producing a model (replaced), or,
        with ``resume``, holding the run to continue
    resume : continue an interrupted run, skipping the stages its manifest marks as done; refused when
        the config, the data file, the ledger or the lexcoder version changed since it started
    corrections : a corrections ledger (``lexcoder corrections apply``) whose reviewed codes are used for
        training and evaluation; ``data.parquet`` keeps the original codes (see :mod:`lexcoder.ledger`)

    Raises
    ------
    LexcoderError
        For bad input (nothing written), a folder lexcoder may not write to, a busy folder, or a resume
        on changed inputs.
    """
    n = cfg.notify
    with watch_run(Path(out).name, enabled=n.enabled, on=n.on, timeout=n.timeout) as watch:
        result = _run_locked(cfg, RunDir(Path(out)), resume=resume, corrections=corrections)
        watch.finished(result.metrics)  # [notify]: message with macro-F1 and wall time (or the error)
    return result


def _run_locked(cfg: Config, run: RunDir, *, resume: bool, corrections: str | Path | None) -> RunResult:
    inputs = RunInputs.of(cfg, corrections)
    mode = prepare_out(run, resume=resume)
    if mode == "resume":
        check_resumable(run, inputs, cfg)
    prepared = None
    if not (mode == "resume" and stage_done(run, "split")):
        prepared = prepare_inputs(cfg, corrections, data_sha256=inputs.data_sha256)
    created = not run.root.exists()
    ensure_dir(run.root)
    with run.lock("run"):
        mode = prepare_out(run, resume=resume)  # again: another process may have written a run meanwhile
        if mode == "resume":
            check_resumable(run, inputs, cfg)
        start_run(run, cfg, inputs, mode=mode)
        with recorded_outcome(run, fresh=mode != "resume", created=created):
            if prepared is None and not stage_done(run, "split"):
                prepared = prepare_inputs(cfg, corrections, data_sha256=inputs.data_sha256)
            return _run_stages(cfg, run, prepared)


@contextmanager
def recorded_outcome(run: RunDir, *, fresh: bool, created: bool):
    """Mark the run ``finished``, ``interrupted`` (Ctrl-C) or ``failed`` (with the error) in its manifest.

    A fresh run stopped by bad input (a :class:`~lexcoder.errors.DataError` or ``ConfigError`` that only
    training could detect, e.g. texts without a single word) before any model was saved leaves nothing:
    what it wrote is removed, and so is the folder if this run created it. A crash, a full disk or Ctrl-C
    keep the folder (marked), so that ``--resume`` can continue once the cause is fixed.
    """
    try:
        yield
    except KeyboardInterrupt:
        set_status(run, "interrupted")
        raise
    except (DataError, ConfigError) as err:
        if fresh and not run.has_model():
            discard_run(run, remove_folder=created)
        else:
            set_status(run, "failed", error=f"{type(err).__name__}: {err}")
        raise
    except BaseException as err:
        set_status(run, "failed", error=f"{type(err).__name__}: {err}")
        raise
    set_status(run, "finished")


def _run_stages(cfg: Config, run: RunDir, prepared: "PreparedInputs | None") -> RunResult:
    if prepared is not None:
        write_prepared(cfg, run, prepared)
    df = pd.read_parquet(run.data)
    splits = pd.read_parquet(run.splits)
    df = training_table(run.root, df, cfg.data.label_columns)  # + reviewed corrections, if any
    prevalence = prevalence_table(df, splits, cfg.data.label_columns)
    if not stage_done(run, "train"):
        with stage(run, "train"):
            train_and_evaluate(cfg, run, df, splits)
    if cfg.report.enabled and not stage_done(run, "report"):  # keep last: it shows every artifact
        report_stage(cfg, run)
    return RunResult(run=run, metrics=read_json(run.metrics), prevalence=prevalence)


def report_stage(cfg: Config, run: RunDir) -> None:
    """Write report.html and report.md (skipped with a warning without the ``report`` extra)."""
    from .report import build_report, report_available
    if not report_available():
        log.warning("No report written: install the 'report' extra (pip install 'lexcoder[report]').")
        return
    with stage(run, "report"):
        build_report(run, top_issues=cfg.report.top_issues)


@dataclass
class PreparedInputs:
    """The validated, cleaned and split data of a run, held in memory until the run folder is written."""

    data: pd.DataFrame
    conflicts: pd.DataFrame
    splits: pd.DataFrame
    manifest_data: dict[str, Any]
    ledger: pd.DataFrame | None = None
    manifest_corrections: dict[str, Any] | None = None


def prepare_inputs(cfg: Config, corrections: str | Path | None = None, *, data_sha256: str | None = None
                   ) -> PreparedInputs:
    """Load, validate and clean the table, check the ledger against it, and split it; nothing is written.

    With ``corrections`` the ledger must apply to the data (same ids, labels and old values); the split
    uses the original codes, so a run and its retrained twin split alike.
    """
    labels = cfg.data.label_columns
    df, load_report = load_dataset(cfg.data, context=cfg.context)
    df, conflicts, clean_report = clean(df, cfg.data.coded_columns, cfg.clean)
    ledger, corrections_block = (None, None) if corrections is None else check_corrections(
        df, corrections, labels, cfg.data.class_columns)
    t0 = time.perf_counter()
    indicators = class_indicators(df, cfg.data.class_columns)  # classes are stratified like labels
    splits = make_splits(df.join(indicators), [*labels, *indicators.columns], cfg.split,
                         group_column=cfg.data.group_column)
    manifest_data = {
        # (the caller usually hashed the file already, for the run's identity: a large file is read once)
        "path": str(cfg.data.path), "sha256": data_sha256 or file_sha256(cfg.data.path),
        "rows_read": load_report.rows_read, "rows_kept": load_report.rows_kept,
        "dropped_missing_labels": load_report.dropped_missing_labels,
        "dropped_empty_texts": load_report.dropped_empty_texts, "generated_ids": load_report.generated_ids,
        "duplicate_rows": clean_report.duplicate_rows, "duplicate_groups": clean_report.duplicate_groups,
        "conflicting_duplicate_groups": clean_report.conflicting_groups,
        "split_seconds": round(time.perf_counter() - t0, 3),
        "classes": {v: sorted(df[v].unique().tolist()) for v in cfg.data.class_columns},
    }
    if clean_report.conflicting_groups:
        log.warning("%d group(s) of identical texts carry conflicting labels (see %s).",
                    clean_report.conflicting_groups, RunDir.conflicts.name)
    return PreparedInputs(data=df, conflicts=conflicts, splits=splits, manifest_data=manifest_data,
                          ledger=ledger, manifest_corrections=corrections_block)


def write_prepared(cfg: Config, run: RunDir, prepared: PreparedInputs) -> None:
    """Write data.parquet, the duplicate conflicts, the applied ledger and splits.parquet (stages load, split)."""
    with stage(run, "load"):
        write_table(prepared.data, run.data)
        conflicts = prepared.conflicts
        write_table(conflicts.assign(ids=conflicts["ids"].map(list), values=conflicts["values"].map(list)),
                    run.conflicts)
        if prepared.ledger is not None:
            write_table(prepared.ledger.assign(id=prepared.ledger["id"].astype(str)), run.corrections_applied)
        run.update_manifest(data=prepared.manifest_data, corrections=prepared.manifest_corrections)
    with stage(run, "split"):
        write_table(prepared.splits, run.splits)
        run.update_manifest(split=prepared.splits.attrs.get("split_facts"))


def fit_partition(cfg: Config, texts: pd.Series | pd.DataFrame, Y: np.ndarray, part: dict[str, np.ndarray],
                  checkpoint_dir: Path | None = None) -> tuple[TextClassifier, np.ndarray, np.ndarray]:
    """Fit a fresh model on the partition's train rows and tune thresholds on its val rows.

    ``checkpoint_dir``: where fine-tuned models checkpoint their training and resume it from (if set).
    With :func:`refits` the returned model is then refitted on train + val (the thresholds stay).

    Returns
    -------
    model, thresholds (n_labels,), and the validation probabilities the thresholds were tuned on
    """
    labels = cfg.data.label_columns
    model = build_model(cfg.model.kind, cfg.model.name, cfg.model.params)
    model.checkpoint_dir = checkpoint_dir
    tr, va = part["train"], part["val"]
    model.fit(take(texts, tr), Y[tr], take(texts, va), Y[va], label_names=labels)
    P_val = model.predict_proba(take(texts, va))
    model, P_val = calibrate_on_validation(model, Y[va], P_val, method=cfg.calibration.method, label_names=labels)
    thresholds = choose_thresholds(Y[va], P_val, method=cfg.thresholds.method, fixed=cfg.thresholds.fixed,
                                   label_names=labels)
    if refits(cfg):
        refitted = build_model(cfg.model.kind, cfg.model.name, cfg.model.params)
        refitted.fit(take(texts, tr | va), Y[tr | va], label_names=labels)
        # the thresholds were tuned on calibrated probabilities: the refitted model keeps the calibrator
        # (as scikit-learn's CalibratedClassifierCV(ensemble=False) refits its estimator under one map)
        model = CalibratedModel(refitted, model.calibrator) if isinstance(model, CalibratedModel) else refitted
    return model, thresholds, P_val


def refits(cfg: Config) -> bool:
    """Whether the model is refitted on train + val once the thresholds are tuned.

    Measured on the ToS protocol, refitting TF-IDF on the extra 20% of data gains about +0.03 macro-F1
    (benchmarks/bench_tfidf_cv.py). Off by default for fine-tuned models (early stopping needs the
    validation split) and with post-hoc calibration (its map was fitted to the first model's outputs); when
    asked for together with calibration, the refitted model keeps that map (see :func:`fit_partition`).
    """
    if cfg.model.refit_on_val is not None:
        return cfg.model.refit_on_val
    return cfg.model.kind == "tfidf" and cfg.calibration.method == "none"


def train_and_evaluate(cfg: Config, run: RunDir, df: pd.DataFrame, splits: pd.DataFrame) -> dict[str, Any]:
    """Train, decide, evaluate; write the models, ``predictions.parquet`` and ``metrics.json``.

    The 0/1 labels share one model (thresholds tuned on validation); each categorical variable gets a model
    of its own over its classes (the decision is the most probable class). With a plain train/val/test
    split each model is fitted once. In k-fold mode every fold serves once as test (the next fold as
    validation), giving one out-of-fold prediction per row; the model saved for ``predict`` is then
    refitted on all folds but fold 0, which tunes its thresholds.
    """
    preds = pd.DataFrame({"id": df["id"], "split": splits["split"], "fold": splits["fold"]})
    metrics = _train_labels(cfg, run, df, splits, preds) if cfg.data.label_columns else _no_labels(splits)
    for variable in cfg.data.class_columns:
        _train_variable(cfg, run, df, splits, variable, metrics, preds)
    write_json(metrics, run.metrics)
    write_table(preds, run.predictions)
    return metrics


def _train_labels(cfg: Config, run: RunDir, df: pd.DataFrame, splits: pd.DataFrame, preds: pd.DataFrame
                  ) -> dict[str, Any]:
    """The 0/1 labels' model: fit, thresholds, out-of-sample probabilities, metrics; adds to ``preds``."""
    labels = cfg.data.label_columns
    texts, Y = model_inputs(df, cfg), df[labels].to_numpy()
    parts = cv_partitions(splits)
    P = np.full(Y.shape, np.nan)
    T = np.full(Y.shape, np.nan)  # threshold in force for each row's prediction
    for i, part in enumerate(_progress(parts, "Training")):
        model, thresholds, P_val = fit_partition(cfg, texts, Y, part, run.checkpoints / f"part{i}")
        scored = part["test"]
        if len(parts) == 1:  # plain split: val keeps the probabilities its thresholds were tuned on
            P[part["val"]], T[part["val"]] = P_val, thresholds
            scored = scored | part["train"]
        P[scored] = model.predict_proba(take(texts, scored))
        T[scored] = thresholds
    if len(parts) > 1:  # k-fold: fit the deployable model; metrics use the out-of-fold predictions
        folds = splits["fold"].to_numpy()
        model, thresholds, _ = fit_partition(cfg, texts, Y, {"train": folds != 0, "val": folds == 0},
                                             run.checkpoints / f"part{len(parts)}")
    save_model(run, cfg, model, thresholds)
    for j, lab in enumerate(labels):
        preds[f"{lab}_prob"] = P[:, j]
        preds[f"{lab}_pred"] = (P[:, j] >= T[:, j]).astype("int8")
    return _metrics(cfg, Y, P, T, splits, thresholds, df)


def _no_labels(splits: pd.DataFrame) -> dict[str, Any]:
    """The metrics skeleton of a run without 0/1 labels (categorical variables only)."""
    split = splits["split"].to_numpy()
    if (split == "cv").all():
        return {"split": "cv", "n_folds": int(splits["fold"].max() + 1), "labels": {}}
    return {"split": "test", "labels": {}, "val": {"split": "val", "labels": {}}}


def _train_variable(cfg: Config, run: RunDir, df: pd.DataFrame, splits: pd.DataFrame, variable: str,
                    metrics: dict[str, Any], preds: pd.DataFrame) -> None:
    """One categorical variable: a model over its classes per partition, its decision rule fitted on that
    partition's validation rows (:mod:`lexcoder.decide`: ``[calibration] classes`` temperature, ``[thresholds]
    class_bias``), out-of-sample temperature-scaled probabilities and the rule's decisions, and its
    ``variables`` block in ``metrics`` (and ``metrics["val"]``). The model saved for ``predict`` (in k-fold
    mode: fold 0's partition) keeps its rule beside it, written together with it."""
    from .decide import ClassDecision
    from .rundir.folder import DECISION_FILE
    new_rule = partial(ClassDecision, calibration=cfg.calibration.classes, class_bias=cfg.thresholds.class_bias,
                       name=variable)
    texts, y = model_inputs(df, cfg), df[variable].astype(str).to_numpy(dtype=object)
    classes = np.asarray(sorted(set(y)), dtype=object)
    codes, parts, rules = np.searchsorted(classes, y), cv_partitions(splits), []
    raw = np.full((len(y), len(classes)), np.nan)  # the model's softmax (for the figures before temperature)
    P, decided = raw.copy(), np.zeros(len(y), dtype=int)

    def record(rows: np.ndarray, P_rows: np.ndarray, rule: ClassDecision) -> None:
        raw[rows], P[rows] = P_rows, rule.transform(P_rows)
        decided[rows] = rule.decide(P[rows])
    checkpoints = run.checkpoints / run.variable_model_dir(cfg.model.kind, variable).name
    for i, part in enumerate(_progress(parts, f"Training {variable}")):
        model, P_val = _fit_classes(cfg, texts, y, classes, part, checkpoints / f"part{i}")
        rules.append(rule := new_rule().fit(codes[part["val"]], P_val, classes))
        scored = part["test"]
        if len(parts) == 1:  # val keeps the probabilities of the model that did not see it (before a refit)
            record(part["val"], P_val, rule)
            scored = scored | part["train"]
        record(scored, model.predict_proba(take(texts, scored)), rule)
    if len(parts) > 1:
        folds = splits["fold"].to_numpy()
        model, P_val = _fit_classes(cfg, texts, y, classes, {"train": folds != 0, "val": folds == 0},
                                    checkpoints / f"part{len(parts)}")
        rule = new_rule().fit(codes[folds == 0], P_val, classes)
    with atomic_dir(run.variable_model_dir(cfg.model.kind, variable)) as tmp:  # model and rule, or neither
        model.save(tmp)
        rule.save(tmp / DECISION_FILE)
    record_inference_precision(run, run.variable_model_dir(cfg.model.kind, variable), model)
    preds[f"{variable}_pred"] = classes[decided]
    for j, value in enumerate(classes):
        preds[f"{variable}_prob_{value}"] = P[:, j]
    _variable_metrics(cfg, df, splits, variable, codes, P, classes, metrics, decided=decided, raw=raw,
                      rule=rule, fold_rules=rules if len(parts) > 1 else [])


def _fit_classes(cfg: Config, texts: pd.Series, y: np.ndarray, classes: np.ndarray, part: dict[str, np.ndarray],
                 checkpoint_dir: Path) -> tuple[TextClassifier, np.ndarray]:
    """A model of one categorical variable fitted on the partition's train rows (early stopping on val),
    refitted on train + val when :func:`refits` says so (it must know every class), and the validation
    probabilities of the model fitted on train only."""
    tr, va = part["train"], part["val"]
    model = build_model(cfg.model.kind, cfg.model.name, cfg.model.params)
    model.checkpoint_dir = checkpoint_dir
    model.fit(take(texts, tr), y[tr], take(texts, va), y[va])
    P_val = model.predict_proba(take(texts, va)) if va.any() else np.zeros((0, len(classes)))
    if refits(cfg):
        model = build_model(cfg.model.kind, cfg.model.name, cfg.model.params)
        model.fit(take(texts, tr | va), y[tr | va])
    if list(model.classes_) != list(classes):  # the split puts every class into training; say so if not
        missing = sorted(set(classes) - set(model.classes_))
        raise DataError(f"Class(es) {missing} never occur in the training rows; code more examples of them.")
    return model, P_val


def _variable_metrics(cfg: Config, df: pd.DataFrame, splits: pd.DataFrame, variable: str, y: np.ndarray,
                      P: np.ndarray, classes: np.ndarray, metrics: dict[str, Any], *, decided: np.ndarray,
                      raw: np.ndarray, rule: Any, fold_rules: list[Any]) -> None:
    """The ``variables`` block of the decisions made (``decided``) and the written probabilities ``P``, with
    the deployed rule's ``temperature`` and ``class_bias``, the probability figures before temperature
    (``before_temperature``: from ``raw``), ``decision_in_sample`` (true on validation, where the rule was
    fitted) and, in k-fold mode, each fold's temperature (``temperature_folds``)."""
    from .evaluate import evaluate_variable, fold_majorities, probability_metrics
    split = splits["split"].to_numpy()
    # the baseline answers the training rows' most frequent class (in k-fold: each row's, that of the other folds)
    if (split == "cv").all():
        majority = fold_majorities(y, splits["fold"].to_numpy(), len(classes))
    else:
        majority = int(np.bincount(y[split == "train"], minlength=len(classes)).argmax())
    groups = df["group"].to_numpy() if "group" in df.columns else None

    def block(rows: np.ndarray, *, in_sample: bool) -> dict[str, Any]:
        out = evaluate_variable(y[rows], P[rows], [str(c) for c in classes], pred=decided[rows],
                                groups=None if groups is None else groups[rows], bootstrap=cfg.evaluate.bootstrap,
                                seed=cfg.evaluate.seed, ece_bins=cfg.evaluate.ece_bins, majority=majority)
        before = probability_metrics(y[rows], raw[rows], ece_bins=cfg.evaluate.ece_bins, pred=decided[rows])
        return {**out, **rule.summary(), "before_temperature": before, "decision_in_sample": in_sample}
    if (split == "cv").all():
        out = block(np.ones(len(y), bool), in_sample=False)  # each fold's rule was fitted on another fold
        metrics.setdefault("variables", {})[variable] = {
            **out, "temperature_folds": [r.summary()["temperature"] for r in fold_rules]}
        return
    metrics.setdefault("variables", {})[variable] = block(split == "test", in_sample=False)
    metrics["val"].setdefault("variables", {})[variable] = block(split == "val", in_sample=True)


def _metrics(cfg: Config, Y, P, T, splits: pd.DataFrame, thresholds: np.ndarray, df: pd.DataFrame
             ) -> dict[str, Any]:
    labels = cfg.data.label_columns
    split = splits["split"].to_numpy()
    evaluate = partial(evaluate_options, cfg, df)
    if (split == "cv").all():  # out-of-fold predictions pooled over the folds, each with its fold's thresholds
        block = evaluate_predictions(Y, P, T, labels, **evaluate(np.ones(len(Y), bool)))
        for j, lab in enumerate(labels):
            block["labels"][lab]["threshold"] = float(thresholds[j])  # the deployed model's threshold
        return {"split": "cv", "n_folds": int(splits["fold"].max() + 1), **block}
    test, val = split == "test", split == "val"
    out = {"split": "test", **evaluate_predictions(Y[test], P[test], thresholds, labels, **evaluate(test))}
    out["val"] = {"split": "val", **evaluate_predictions(Y[val], P[val], thresholds, labels, **evaluate(val))}
    return out


def save_model(run: RunDir, cfg: Config, model: TextClassifier, thresholds: np.ndarray) -> Path:
    """Save the model and its ``thresholds.json`` under ``models/<kind>/``."""
    directory = run.model_dir(cfg.model.kind)
    with atomic_dir(directory) as tmp:  # model, calibration and thresholds appear together or not at all
        model.save(tmp)
        write_json({"method": cfg.thresholds.method, "tuned_on": "val",
                    "thresholds": dict(zip(cfg.data.label_columns, map(float, thresholds)))},
                   tmp / THRESHOLDS_FILE)
    record_inference_precision(run, directory, model)
    return directory


def record_inference_precision(run: RunDir, directory: Path, model: TextClassifier) -> None:
    """Copy a fine-tuned model's CPU inference precision decision (bf16 or float32, and the validation check
    behind it: :func:`lexcoder.models.torch_runtime.bf16_decision`) into the manifest, under
    ``inference_precision`` → the model folder relative to the run. Models without one (TF-IDF) add nothing."""
    decision = getattr(getattr(model, "model", model), "inference_precision_", None)  # unwraps CalibratedModel
    if decision is None:
        return
    known = run.read_manifest().get("inference_precision") or {}
    run.update_manifest(inference_precision={**known, directory.relative_to(run.root).as_posix(): decision})


def _progress(items, description: str):
    from .progress import track
    return track(items, description=description)
