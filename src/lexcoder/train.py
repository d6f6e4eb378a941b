"""The train stage: fit per partition, decide on validation, out-of-sample probabilities, metrics.

The 0/1 labels get one threshold each, tuned on validation (after an optional calibration); each categorical
variable a decision rule (:class:`~lexcoder.decide.ClassDecision`: temperature and optional class bias)
fitted on the same rows. How many networks learn them:

- a fine-tuned family (encoder, LLM) on a run with labels *and* categorical variables trains **one body**
  with a sigmoid per label and a softmax head per variable (:mod:`lexcoder.models.outputs`), saved once in
  ``models/<kind>/`` with the labels' thresholds and every variable's rule (``per_variable = true``: one
  network for the labels and one per variable instead);
- otherwise (TF-IDF, or only one kind of output) one model for the labels and one per variable, each in a
  folder of its own (:meth:`~lexcoder.rundir.RunDir.variable_model_dir`).

Either way the run writes the same columns, metrics and rules, and :meth:`RunDir.load_models
<lexcoder.rundir.RunDir.load_models>` reads either layout.
"""
from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .calibrate import CalibratedModel, calibrate_on_validation
from .config import Config
from .context import model_inputs, take
from .decide import ClassDecision
from .errors import DataError
from .evaluate import evaluate_options, evaluate_predictions
from .io import atomic_dir, write_json, write_table
from .models import TextClassifier, build_model
from .models.shared import SharedOutputs
from .rundir import THRESHOLDS_FILE, RunDir
from .rundir.folder import DECISION_FILE, LABELS_CALIBRATION_FILE, shared_decision_file
from .split import cv_partitions
from .thresholds import choose_thresholds

log = logging.getLogger(__name__)


def train_and_evaluate(cfg: Config, run: RunDir, df: pd.DataFrame, splits: pd.DataFrame) -> dict[str, Any]:
    """Train, decide, evaluate; write the models, ``predictions.parquet`` and ``metrics.json``.

    With a plain train/val/test split each model is fitted once. In k-fold mode every fold serves once as
    test (the next fold as validation), giving one out-of-fold prediction per row; the model saved for
    ``predict`` is then refitted on all folds but fold 0, which tunes its thresholds and rules.
    """
    preds = pd.DataFrame({"id": df["id"], "split": splits["split"], "fold": splits["fold"]})
    if shares_body(cfg):
        metrics = _train_shared(cfg, run, df, splits, preds)
    else:
        metrics = _train_labels(cfg, run, df, splits, preds) if cfg.data.label_columns else _no_labels(splits)
        for variable in cfg.data.class_columns:
            _train_variable(cfg, run, df, splits, variable, metrics, preds)
    write_json(metrics, run.metrics)
    write_table(preds, run.predictions)
    return metrics


def shares_body(cfg: Config) -> bool:
    """Whether the run trains one network for its labels and variables: a fine-tuned family (one with a
    ``per_variable`` setting) left at ``per_variable = false``, on a run with both kinds of output."""
    if not (cfg.data.label_columns and cfg.data.class_columns):
        return False
    return build_model(cfg.model.kind, cfg.model.name, cfg.model.params).get_params().get("per_variable") is False


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


def _new_model(cfg: Config, checkpoint_dir: Path | None = None) -> TextClassifier:
    model = build_model(cfg.model.kind, cfg.model.name, cfg.model.params)
    model.checkpoint_dir = checkpoint_dir
    return model


def _scored(part: dict[str, np.ndarray], single: bool) -> np.ndarray:
    """The rows a partition's model predicts out of sample: its test rows, and with a plain split (one
    partition) its training rows too — its validation rows keep the probabilities the decisions were tuned on."""
    return part["test"] | part["train"] if single else part["test"]


def _deployed_partition(splits: pd.DataFrame) -> dict[str, np.ndarray]:
    """k-fold mode: the partition of the model saved for ``predict`` (all folds but 0; fold 0 validates)."""
    folds = splits["fold"].to_numpy()
    return {"train": folds != 0, "val": folds == 0}


# -- the 0/1 labels ----------------------------------------------------------------------------------
def tune_labels(cfg: Config, model: Any, Y_val: np.ndarray, P_val: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray]:
    """Calibrate (``[calibration] method``) and tune the thresholds on the validation rows.

    Returns the (possibly calibrated) model, the thresholds (n_labels,) and the calibrated ``P_val``.
    """
    labels = cfg.data.label_columns
    model, P_val = calibrate_on_validation(model, Y_val, P_val, method=cfg.calibration.method, label_names=labels)
    thresholds = choose_thresholds(Y_val, P_val, method=cfg.thresholds.method, fixed=cfg.thresholds.fixed,
                                   label_names=labels)
    return model, thresholds, P_val


def _keep_calibration(tuned: Any, refitted: Any) -> Any:
    """The refitted model under the calibration map tuned on the first model's outputs, if there is one
    (as scikit-learn's CalibratedClassifierCV(ensemble=False) refits its estimator under one map)."""
    return CalibratedModel(refitted, tuned.calibrator) if isinstance(tuned, CalibratedModel) else refitted


def fit_partition(cfg: Config, texts: pd.Series | pd.DataFrame, Y: np.ndarray, part: dict[str, np.ndarray],
                  checkpoint_dir: Path | None = None) -> tuple[TextClassifier, np.ndarray, np.ndarray]:
    """Fit a fresh model of the 0/1 labels on the partition's train rows and tune thresholds on its val rows.

    ``checkpoint_dir``: where fine-tuned models checkpoint their training and resume it from (if set).
    With :func:`refits` the returned model is then refitted on train + val (the thresholds stay).

    Returns
    -------
    model, thresholds (n_labels,), and the validation probabilities the thresholds were tuned on
    """
    labels = cfg.data.label_columns
    model = _new_model(cfg, checkpoint_dir)
    tr, va = part["train"], part["val"]
    model.fit(take(texts, tr), Y[tr], take(texts, va), Y[va], label_names=labels)
    model, thresholds, P_val = tune_labels(cfg, model, Y[va], model.predict_proba(take(texts, va)))
    if refits(cfg):
        refitted = _new_model(cfg).fit(take(texts, tr | va), Y[tr | va], label_names=labels)
        model = _keep_calibration(model, refitted)
    return model, thresholds, P_val


def _train_labels(cfg: Config, run: RunDir, df: pd.DataFrame, splits: pd.DataFrame, preds: pd.DataFrame
                  ) -> dict[str, Any]:
    """The 0/1 labels' model: fit, thresholds, out-of-sample probabilities, metrics; adds to ``preds``."""
    texts, Y = model_inputs(df, cfg), df[cfg.data.label_columns].to_numpy()
    parts = cv_partitions(splits)
    codes = _LabelCodes(Y.shape)
    for i, part in enumerate(_progress(parts, "Training")):
        model, thresholds, P_val = fit_partition(cfg, texts, Y, part, run.checkpoints / f"part{i}")
        if len(parts) == 1:
            codes.add(part["val"], P_val, thresholds)
        scored = _scored(part, len(parts) == 1)
        codes.add(scored, model.predict_proba(take(texts, scored)), thresholds)
    if len(parts) > 1:  # k-fold: fit the deployable model; metrics use the out-of-fold predictions
        model, thresholds, _ = fit_partition(cfg, texts, Y, _deployed_partition(splits),
                                             run.checkpoints / f"part{len(parts)}")
    save_model(run, cfg, model, thresholds)
    return codes.finish(cfg, df, splits, preds, thresholds)


class _LabelCodes:
    """The labels' out-of-sample probabilities and the threshold in force for each row's prediction."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self.P, self.T = np.full(shape, np.nan), np.full(shape, np.nan)

    def add(self, rows: np.ndarray, P_rows: np.ndarray, thresholds: np.ndarray) -> None:
        self.P[rows], self.T[rows] = P_rows, thresholds

    def finish(self, cfg: Config, df: pd.DataFrame, splits: pd.DataFrame, preds: pd.DataFrame,
               thresholds: np.ndarray) -> dict[str, Any]:
        """Add ``<label>_prob`` / ``<label>_pred`` to ``preds``; the metrics (``thresholds``: the deployed
        model's)."""
        labels = cfg.data.label_columns
        for j, lab in enumerate(labels):
            preds[f"{lab}_prob"] = self.P[:, j]
            preds[f"{lab}_pred"] = (self.P[:, j] >= self.T[:, j]).astype("int8")
        return _metrics(cfg, df[labels].to_numpy(), self.P, self.T, splits, thresholds, df)


def _no_labels(splits: pd.DataFrame) -> dict[str, Any]:
    """The metrics skeleton of a run without 0/1 labels (categorical variables only)."""
    split = splits["split"].to_numpy()
    if (split == "cv").all():
        return {"split": "cv", "n_folds": int(splits["fold"].max() + 1), "labels": {}}
    return {"split": "test", "labels": {}, "val": {"split": "val", "labels": {}}}


# -- categorical variables ---------------------------------------------------------------------------
def _variable_classes(df: pd.DataFrame, variable: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The variable's codes as text, its classes (sorted) and each row's class index."""
    y = df[variable].astype(str).to_numpy(dtype=object)
    classes = np.asarray(sorted(set(y)), dtype=object)
    return y, classes, np.searchsorted(classes, y)


def _new_rule(cfg: Config, variable: str) -> ClassDecision:
    return ClassDecision(calibration=cfg.calibration.classes, class_bias=cfg.thresholds.class_bias, name=variable)


def _check_classes(model_classes: Any, classes: np.ndarray) -> None:
    """The split puts every class into training; say so if a model still misses one."""
    if list(model_classes) != list(classes):
        missing = sorted(set(classes) - set(model_classes))
        raise DataError(f"Class(es) {missing} never occur in the training rows; code more examples of them.")


class _VariableCodes:
    """A variable's out-of-sample probabilities (temperature-scaled, and the raw softmax for the figures
    before temperature), the decisions, and each fold's rule."""

    def __init__(self, n: int, classes: np.ndarray) -> None:
        self.classes = classes
        self.raw = np.full((n, len(classes)), np.nan)
        self.P, self.decided, self.rules = self.raw.copy(), np.zeros(n, dtype=int), []

    def add(self, rows: np.ndarray, P_rows: np.ndarray, rule: ClassDecision) -> None:
        self.raw[rows], self.P[rows] = P_rows, rule.transform(P_rows)
        self.decided[rows] = rule.decide(self.P[rows])

    def finish(self, cfg: Config, df: pd.DataFrame, splits: pd.DataFrame, variable: str, codes: np.ndarray,
               metrics: dict[str, Any], preds: pd.DataFrame, rule: ClassDecision) -> None:
        """Add ``<variable>_pred`` / ``<variable>_prob_<class>`` to ``preds`` and its ``variables`` block
        to ``metrics`` (``rule``: the deployed model's)."""
        preds[f"{variable}_pred"] = self.classes[self.decided]
        for j, value in enumerate(self.classes):
            preds[f"{variable}_prob_{value}"] = self.P[:, j]
        k_fold = len(self.rules) > 1
        _variable_metrics(cfg, df, splits, variable, codes, self.P, self.classes, metrics, decided=self.decided,
                          raw=self.raw, rule=rule, fold_rules=self.rules if k_fold else [])


def _train_variable(cfg: Config, run: RunDir, df: pd.DataFrame, splits: pd.DataFrame, variable: str,
                    metrics: dict[str, Any], preds: pd.DataFrame) -> None:
    """One categorical variable: a model over its classes per partition, its decision rule fitted on that
    partition's validation rows (:mod:`lexcoder.decide`: ``[calibration] classes`` temperature, ``[thresholds]
    class_bias``), out-of-sample temperature-scaled probabilities and the rule's decisions, and its
    ``variables`` block in ``metrics`` (and ``metrics["val"]``). The model saved for ``predict`` (in k-fold
    mode: fold 0's partition) keeps its rule beside it, written together with it."""
    texts = model_inputs(df, cfg)
    y, classes, codes = _variable_classes(df, variable)
    parts = cv_partitions(splits)
    found = _VariableCodes(len(y), classes)
    checkpoints = run.checkpoints / run.variable_model_dir(cfg.model.kind, variable).name
    for i, part in enumerate(_progress(parts, f"Training {variable}")):
        model, P_val = _fit_classes(cfg, texts, y, classes, part, checkpoints / f"part{i}")
        found.rules.append(rule := _new_rule(cfg, variable).fit(codes[part["val"]], P_val, classes))
        if len(parts) == 1:  # val keeps the probabilities of the model that did not see it (before a refit)
            found.add(part["val"], P_val, rule)
        scored = _scored(part, len(parts) == 1)
        found.add(scored, model.predict_proba(take(texts, scored)), rule)
    if len(parts) > 1:
        deployed = _deployed_partition(splits)
        model, P_val = _fit_classes(cfg, texts, y, classes, deployed, checkpoints / f"part{len(parts)}")
        rule = _new_rule(cfg, variable).fit(codes[deployed["val"]], P_val, classes)
    directory = run.variable_model_dir(cfg.model.kind, variable)
    with atomic_dir(directory) as tmp:  # model and rule, or neither
        model.save(tmp)
        rule.save(tmp / DECISION_FILE)
    record_inference_precision(run, directory, model)
    found.finish(cfg, df, splits, variable, codes, metrics, preds, rule)


def _fit_classes(cfg: Config, texts: pd.Series, y: np.ndarray, classes: np.ndarray, part: dict[str, np.ndarray],
                 checkpoint_dir: Path) -> tuple[TextClassifier, np.ndarray]:
    """A model of one categorical variable fitted on the partition's train rows (early stopping on val),
    refitted on train + val when :func:`refits` says so (it must know every class), and the validation
    probabilities of the model fitted on train only."""
    tr, va = part["train"], part["val"]
    model = _new_model(cfg, checkpoint_dir)
    model.fit(take(texts, tr), y[tr], take(texts, va), y[va])
    P_val = model.predict_proba(take(texts, va)) if va.any() else np.zeros((0, len(classes)))
    if refits(cfg):
        model = _new_model(cfg).fit(take(texts, tr | va), y[tr | va])
    _check_classes(model.classes_, classes)
    return model, P_val


# -- one body for labels and variables ---------------------------------------------------------------
class _SharedFit:
    """One partition's shared model, read as the labels' model (calibrated, with thresholds) and one model
    per variable (with its rule), and the validation probabilities they were tuned on."""

    def __init__(self, cfg: Config, model: TextClassifier, Y_val: np.ndarray, codes_val: dict[str, np.ndarray],
                 val_texts: Any, classes: dict[str, np.ndarray]) -> None:
        self.shared = SharedOutputs(model)
        for variable, known in classes.items():
            _check_classes(self.shared.variable(variable).classes_, known)
        P_val, P_val_vars = self.shared.probabilities(val_texts)
        self.labels, self.thresholds, self.P_val = tune_labels(cfg, self.shared.labels(), Y_val, P_val)
        self.P_val_vars = P_val_vars
        self.rules = {v: _new_rule(cfg, v).fit(codes_val[v], P_val_vars[v], classes[v]) for v in classes}
        self.variables = {v: self.shared.variable(v) for v in classes}

    def refitted(self, model: TextClassifier) -> None:
        """Read ``model`` (refitted on train + val) under the thresholds, calibration and rules tuned here."""
        self.shared = SharedOutputs(model)
        self.labels = _keep_calibration(self.labels, self.shared.labels())
        self.variables = {v: self.shared.variable(v) for v in self.variables}


def _coded_table(df: pd.DataFrame, cfg: Config, codes_as_text: dict[str, np.ndarray]) -> pd.DataFrame:
    """The multi-output target: the 0/1 labels as integers, then each variable's codes as text."""
    return df[cfg.data.label_columns].astype(int).assign(**codes_as_text)


def _fit_shared(cfg: Config, texts: Any, target: pd.DataFrame, part: dict[str, np.ndarray],
                checkpoint_dir: Path, classes: dict[str, np.ndarray], codes: dict[str, np.ndarray]) -> _SharedFit:
    """The shared model of one partition, its labels' thresholds and its variables' rules tuned on val
    (``codes``: each variable's class index per row)."""
    tr, va = part["train"], part["val"]
    variables = cfg.data.class_columns
    model = _new_model(cfg, checkpoint_dir).fit(take(texts, tr), target[tr], take(texts, va), target[va],
                                                categorical=variables)
    fitted = _SharedFit(cfg, model, target[cfg.data.label_columns].to_numpy()[va],
                        {v: codes[v][va] for v in variables}, take(texts, va), classes)
    if refits(cfg):
        fitted.refitted(_new_model(cfg).fit(take(texts, tr | va), target[tr | va], categorical=variables))
    return fitted


def _train_shared(cfg: Config, run: RunDir, df: pd.DataFrame, splits: pd.DataFrame, preds: pd.DataFrame
                  ) -> dict[str, Any]:
    """Labels and variables from one network per partition (:func:`shares_body`): the same thresholds,
    rules, columns and metrics as separate models, one fit and one forward pass per partition."""
    labels, variables = cfg.data.label_columns, cfg.data.class_columns
    found_vars = {v: _variable_classes(df, v) for v in variables}  # (y, classes, codes)
    classes = {v: found[1] for v, found in found_vars.items()}
    codes = {v: found[2] for v, found in found_vars.items()}
    texts = model_inputs(df, cfg)
    target = _coded_table(df, cfg, {v: found[0] for v, found in found_vars.items()})
    parts = cv_partitions(splits)
    single = len(parts) == 1
    found_labels = _LabelCodes((len(df), len(labels)))
    found = {v: _VariableCodes(len(df), classes[v]) for v in variables}
    for i, part in enumerate(_progress(parts, "Training")):
        fitted = _fit_shared(cfg, texts, target, part, run.checkpoints / f"part{i}", classes, codes)
        for v in variables:
            found[v].rules.append(fitted.rules[v])
        if single:
            found_labels.add(part["val"], fitted.P_val, fitted.thresholds)
            for v in variables:
                found[v].add(part["val"], fitted.P_val_vars[v], fitted.rules[v])
        scored = _scored(part, single)
        inputs = take(texts, scored)  # the views below share one forward pass over it
        found_labels.add(scored, fitted.labels.predict_proba(inputs), fitted.thresholds)
        for v in variables:
            found[v].add(scored, fitted.variables[v].predict_proba(inputs), fitted.rules[v])
    if not single:
        fitted = _fit_shared(cfg, texts, target, _deployed_partition(splits), run.checkpoints / f"part{len(parts)}",
                             classes, codes)
    save_shared_model(run, cfg, fitted)
    metrics = found_labels.finish(cfg, df, splits, preds, fitted.thresholds)
    for v in variables:
        found[v].finish(cfg, df, splits, v, codes[v], metrics, preds, fitted.rules[v])
    return metrics


# -- metrics -----------------------------------------------------------------------------------------
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


# -- saving ------------------------------------------------------------------------------------------
def _write_thresholds(cfg: Config, thresholds: np.ndarray, path: Path) -> None:
    write_json({"method": cfg.thresholds.method, "tuned_on": "val",
                "thresholds": dict(zip(cfg.data.label_columns, map(float, thresholds)))}, path)


def save_model(run: RunDir, cfg: Config, model: TextClassifier, thresholds: np.ndarray) -> Path:
    """Save the model and its ``thresholds.json`` under ``models/<kind>/``."""
    directory = run.model_dir(cfg.model.kind)
    with atomic_dir(directory) as tmp:  # model, calibration and thresholds appear together or not at all
        model.save(tmp)
        _write_thresholds(cfg, thresholds, tmp / THRESHOLDS_FILE)
    record_inference_precision(run, directory, model)
    return directory


def save_shared_model(run: RunDir, cfg: Config, fitted: _SharedFit) -> Path:
    """Save a shared model under ``models/<kind>/`` with everything that reads it: the labels' thresholds
    and calibration (:data:`~lexcoder.rundir.folder.LABELS_CALIBRATION_FILE`: it maps the labels' block
    only) and each variable's rule (:func:`~lexcoder.rundir.folder.shared_decision_file`)."""
    directory = run.model_dir(cfg.model.kind)
    with atomic_dir(directory) as tmp:  # all of it or none of it
        fitted.shared.model.save(tmp)
        _write_thresholds(cfg, fitted.thresholds, tmp / THRESHOLDS_FILE)
        if isinstance(fitted.labels, CalibratedModel):
            fitted.labels.calibrator.save(tmp / LABELS_CALIBRATION_FILE)
        for variable, rule in fitted.rules.items():
            rule.save(tmp / shared_decision_file(variable))
    record_inference_precision(run, directory, fitted.shared.model)
    return directory


def record_inference_precision(run: RunDir, directory: Path, model: TextClassifier) -> None:
    """Copy a fine-tuned model's precision decisions into the manifest, under ``inference_precision`` (CPU
    prediction in bf16 or float32, and the validation check behind it:
    :func:`lexcoder.models.torch_runtime.bf16_decision`) and ``training_precision``
    (:func:`lexcoder.models.torch_runtime.bf16_training_decision`) → the model folder relative to the run.
    Models without them (TF-IDF) add nothing."""
    inner = getattr(model, "model", model)  # unwraps CalibratedModel
    manifest, where = run.read_manifest(), directory.relative_to(run.root).as_posix()
    updates = {key: {**(manifest.get(key) or {}), where: getattr(inner, f"{key}_")}
               for key in ("inference_precision", "training_precision") if getattr(inner, f"{key}_", None)}
    if updates:
        run.update_manifest(**updates)


def _progress(items, description: str):
    from .progress import track
    return track(items, description=description)
