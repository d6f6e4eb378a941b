"""The audit workflow on a run directory: cross-fit → score → review queue → summary; apply a review.

Files written into the run directory:

- ``audit_oof.parquet`` (+ ``audit_oof.json``): out-of-fold probabilities and the settings that made
  them (reused when the settings and labels are unchanged, so other views of the queue are instant)
- ``label_issues.parquet``: the full review queue; ``label_issues.csv`` (or ``label_issues_<label>.csv``
  with a label filter, the label made file-name safe by :func:`lexcoder.safety.safe_filename`): the view
  to review in a spreadsheet, with would-be formulas neutralised (:func:`lexcoder.safety.neutralise_formulas`)
- ``audit_summary.json``: per label issues, estimated noise, reviewed / flipped counts, out-of-fold
  agreement with the human codes before and after the corrections, and the conflicting duplicates
  (groups and rows as defined in :func:`lexcoder.clean.conflict_counts`, counted on the codes audited);
  per categorical variable (``variables``) its rows, issues, estimated noise, reviewed / kept / changed
  counts and out-of-fold accuracy and macro-F1 before and after the corrections;
  ``conflicting_near_duplicate_groups`` and ``blocks`` (clusters of flags in a document, coder or batch:
  :mod:`lexcoder.audit.blocks`)

Categorical variables (``class_columns``) are audited beside the 0/1 labels: one multi-class model per
variable and fold, the same folds and held-out test rows, the same two rankings (see
:mod:`lexcoder.audit.scoring`), and queue rows that name the class the model suggests instead (see
:mod:`lexcoder.audit.queue`). Their reviewed decisions (keep, or change to a class) are recorded in the
ledger with class values (see :mod:`lexcoder.ledger`).
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..clean import conflict_counts, find_conflicts
from ..config import Config
from ..context import canonical_name, document_column, model_inputs
from ..errors import ConfigError
from ..evaluate import evaluate_predictions, evaluate_variable
from ..io import read_json, read_table, write_json, write_table
from ..ledger import append_ledger, apply_ledger, read_ledger, review_entries, training_table
from ..rundir import RunDir, writes_to_run
from ..safety import check_inside, restore_quoted
from ..split import class_indicators
from .crossfit import (BLEND, audit_folds, estimate_seconds, log_time_estimate, out_of_fold_class_proba,
                       out_of_fold_proba)
from .explain import explain_queue
from .blocks import block_columns as _block_columns
from .blocks import find_blocks, mark_blocks
from .queue import (ORDERS, ClassScores, build_queue, conflict_groups, conflict_mask, group_mask,
                    interleave_weights, select, write_queue)
from .ranking import check_quota
from .scoring import (RANKERS, class_noise_estimates, noise_estimates, score_classes,
                      score_pairs)

log = logging.getLogger(__name__)


@dataclass
class AuditResult:
    """What :func:`audit_run` produced (also on disk in the run directory)."""

    queue: pd.DataFrame
    view: pd.DataFrame
    summary: dict[str, Any]
    csv_path: Path


@writes_to_run("audit")
def audit_run(run_dir: str | Path, *, n_folds: int | None = None, kind: str | None = None,
              name: str | None = None, params: dict[str, Any] | None = None, method: str | None = None,
              top: int | None = None, label: str | None = None, isolate_test: bool | None = None,
              neutralise_formulas: bool = True, order: str | None = None,
              quota: int | dict[str, int] | None = None, block_columns: list[str] | None = None) -> AuditResult:
    """Find likely human coding errors in a run's data with out-of-fold predictions.

    The 0/1 labels and the categorical variables (``class_columns``) are audited together. The queue
    files and ``audit_summary.json`` change together or not at all. The run's report is not rebuilt here:
    ``lexcoder audit`` rebuilds it afterwards (in Python: :func:`lexcoder.report.build_report`).

    Every setting left at None is taken from the run's ``[audit]`` config section
    (:class:`lexcoder.config.AuditConfig`: ``folds``, ``model``, ``method``, ``order``, ``quota``,
    ``block_columns``, ``isolate_test``), whose defaults are the ones given below.

    Parameters
    ----------
    run_dir : a finished run directory (``lexcoder run`` / ``lexcoder demo``)
    n_folds : cross-fitting folds K (each text is scored by a model trained on the other K-1 folds)
    kind, name, params : model family for cross-fitting (default: the run's ``[model]``)
    method : the score, ``"calibrated"`` (default: the probability of the human code after per-label
        temperature scaling, comparable across labels), ``"loss"`` (uncalibrated; the ranking before),
        ``"cleanlab"`` or ``"posterior"`` (see :mod:`lexcoder.audit.scoring`)
    order : the queue after the conflicting (near-)duplicates: ``"interleave"`` (default: labels in turn,
        in proportion to their expected wrong codes under the calibrated probabilities,
        :func:`lexcoder.audit.queue.interleave_weights`; ``audit_summary.json`` records them as
        ``expected_wrong_codes``) or ``"score"`` (all labels by score)
    quota : at most this many flagged rows per label or variable in the queue (``{label: cap}`` for
        some only); conflicting duplicates are always kept
    block_columns : columns naming a document, coder or coding batch, to look for clusters of flags in
        (:mod:`lexcoder.audit.blocks`; the input's column names). Default: the document column
        (``[context] document_column``, else ``[data] group_column``) when the data has one.
    top : keep only the ``top`` highest-ranked rows in the CSV view
    label : only this label's (or categorical variable's) rows in the CSV view (written to
        ``label_issues_<label>.csv``, with the name made safe for a file name:
        :func:`lexcoder.safety.safe_filename`)
    isolate_test : keep the run's test rows out of every cross-fitting model's training data (they are
        scored by a model trained on all other rows). Then the flags on training rows, and so a retrained
        run's corrections, carry no information from the test codes, and the retrained run's test
        figures stay an honest comparison (see :func:`~lexcoder.audit.compare_runs`). No effect in
        k-fold mode, where every row is a test row once.
    neutralise_formulas : write text cells of the CSV view that start with ``= + - @``, tab or CR with a
        leading ``'``, so that a spreadsheet shows them as text instead of running them as formulas
        (:func:`lexcoder.safety.neutralise_formulas`). :func:`apply_review` removes the prefix again.
    """
    t0 = time.perf_counter()
    run = RunDir(Path(run_dir))
    cfg = run.load_config()
    labels, variables = cfg.data.label_columns, cfg.data.class_columns
    n_folds, kind, method, order, quota, block_columns, isolate_test = _audit_settings(
        cfg, n_folds=n_folds, kind=kind, method=method, order=order, quota=quota, block_columns=block_columns,
        isolate_test=isolate_test)
    if label is not None and label not in (*labels, *variables):
        raise ConfigError(f"label {label!r} is not one of the run's labels or categorical variables: "
                          f"{', '.join([*labels, *variables])}.")
    if n_folds < 2:
        raise ConfigError(f"The audit needs at least 2 folds (got {n_folds}).")
    if method not in RANKERS:  # checked before any work, so a typo costs nothing and changes nothing
        raise ConfigError(f"method {method!r} is not a ranking; use one of {', '.join(RANKERS)}.")
    if top is not None and top < 1:
        raise ConfigError(f"top must be a positive number of rows (got {top}).")
    if order not in ORDERS:
        raise ConfigError(f"order {order!r} is not a queue order; use one of {', '.join(ORDERS)}.")
    check_quota(quota, [*labels, *variables])
    model = _model_settings(cfg, kind, name, params)
    csv_path = run.label_issues if label is None else run.label_issues_for(label)
    outputs = [run.label_issues_table, run.audit_summary, run.audit_oof, run.audit_oof_key]
    # the queue, its views and the summary change together (the report is the caller's to rebuild)
    with run.all_or_nothing([*outputs, check_inside(run.root, csv_path)]):
        df = training_table(run.root, pd.read_parquet(run.data), labels, variables)
        columns, names = _blocks_to_test(cfg, df, block_columns)  # a missing column stops before any work
        holdout = _test_rows(run, df) if isolate_test else np.zeros(len(df), dtype=bool)
        P, class_P = _oof(run, cfg, df, n_folds, model, holdout)
        Y = df[labels].to_numpy().astype(int)
        score, flagged = (score_pairs(Y, P, method=method, folds=_oof_folds(run, df)) if labels
                          else (P, np.zeros(P.shape, dtype=bool)))
        conflict_table = _conflicts(df, [*labels, *variables])
        groups = conflict_groups(df, [*labels, *variables])  # identical and near-identical copies
        conflicts = conflict_mask(df, conflict_table, labels) | group_mask(df, groups, labels)
        scored = {v: _score_variable(df, v, *class_P[v], method, group_mask(df, groups, [v])[:, 0])
                  for v in variables}
        weights = interleave_weights(labels, score, scored)  # expected wrong codes (calibrated by default)
        queue = build_queue(df, labels, P, score, flagged, conflicts, variables=scored, groups=groups,
                            order=order, quota=quota, weights=weights)
        blocks = find_blocks(df, queue, columns, names=names)
        queue = mark_blocks(queue, df, blocks, names=names)
        # why each row is there, from the fold models that scored it (lexcoder.audit.explain)
        queue = explain_queue(queue, df, model_inputs(df, cfg), _oof_folds(run, df), labels=labels, P=P,
                              variables=class_P, **model)
        write_table(queue, run.label_issues_table)
        view = select(queue, label=label, top=top)
        write_queue(view, csv_path, neutralise_formulas=neutralise_formulas)
        summary = _summary(run, cfg, Y, P, flagged, conflict_counts(conflict_table), queue,
                           settings={"folds": n_folds, "method": method, "order": order, "quota": quota,
                                     "block_columns": [names.get(c, c) for c in columns],
                                     "test_rows_held_out": int(holdout.sum()), **model},
                           seconds=time.perf_counter() - t0)
        summary["conflicting_near_duplicate_groups"] = int(groups.loc[~groups["exact"], "group"].nunique())
        summary["expected_wrong_codes"] = {k: round(v, 2) for k, v in weights.items()}  # the interleaving weights
        summary["blocks"] = [{**b, "column": names.get(b["column"], b["column"])} for b in blocks]
        if variables:
            summary["variables"] = {v: _variable_summary(df, v, s, queue, conflict_counts(conflict_table))
                                    for v, s in scored.items()}
        write_json(summary, run.audit_summary)
    return AuditResult(queue=queue, view=view, summary=summary, csv_path=csv_path)


def _audit_settings(cfg: Config, **given: Any) -> tuple:
    """``(n_folds, kind, method, order, quota, block_columns, isolate_test)``: each setting given, else the
    run's ``[audit]`` value (runs written before that section existed read its defaults)."""
    section = cfg.audit
    fallback = {"n_folds": section.folds, "kind": section.model, "method": section.method, "order": section.order,
                "quota": section.quota, "block_columns": section.block_columns,
                "isolate_test": section.isolate_test}
    return tuple(fallback[key] if given[key] is None else given[key] for key in fallback)


def _model_settings(cfg: Config, kind: str | None, name: str | None, params: dict[str, Any] | None
                    ) -> dict[str, Any]:
    """The run's ``[model]`` unless another family is asked for (its settings then start from defaults)."""
    if kind is None or kind == cfg.model.kind:
        return {"kind": cfg.model.kind, "name": name or cfg.model.name,
                "params": dict(cfg.model.params if params is None else params)}
    if kind == BLEND and cfg.model.kind == "encoder":  # the run's encoder settings, blended with TF-IDF
        return {"kind": kind, "name": name or cfg.model.name,
                "params": dict(cfg.model.params if params is None else params)}
    return {"kind": kind, "name": name, "params": dict(params or {})}


def _conflicts(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Identical texts coded differently on a label or given different classes of a variable."""
    if "dup_group" not in df:
        return find_conflicts(df.iloc[:0], columns)
    sizes = df["dup_group"].map(df["dup_group"].value_counts())
    return find_conflicts(df[sizes > 1], columns)


def _oof_folds(run: RunDir, df: pd.DataFrame) -> np.ndarray:
    """The cross-fitting fold of every row of ``df`` (-1: held out), from the out-of-fold cache just written."""
    folds = pd.read_parquet(run.audit_oof, columns=["id", "fold"]).set_index("id")["fold"]
    return folds.reindex(df["id"]).fillna(-1).to_numpy().astype(int)


def _blocks_to_test(cfg: Config, df: pd.DataFrame, wanted: list[str] | None
                    ) -> tuple[list[str], dict[str, str]]:
    """The canonical block columns and their input names (the group column is ``group`` in the table)."""
    names = {canonical_name(cfg.data, c): c for c in wanted or []}
    default = document_column(cfg.data, cfg.context)
    if default:
        names.setdefault(canonical_name(cfg.data, default), default)
    columns = _block_columns(df, [canonical_name(cfg.data, c) for c in wanted or []],
                             default=default and canonical_name(cfg.data, default))
    return columns, names


def _score_variable(df: pd.DataFrame, variable: str, classes: np.ndarray, P: np.ndarray, method: str,
                    conflicts: np.ndarray) -> ClassScores:
    """Score and flag one categorical variable's rows; ``conflicts``: rows with a copy given another class."""
    y = np.searchsorted(classes, df[variable].astype(str).to_numpy())
    score, flagged = score_classes(y, P, method=method)
    return ClassScores(classes=classes, P=P, score=score, flagged=flagged, conflicts=conflicts)


def _test_rows(run: RunDir, df: pd.DataFrame) -> np.ndarray:
    """Boolean mask of the run's test rows (none in k-fold mode), in ``df``'s order."""
    if not run.splits.is_file():
        return np.zeros(len(df), dtype=bool)
    return df["id"].astype(str).map(run.split_by_id()).eq("test").to_numpy()


def _classes(df: pd.DataFrame, variable: str) -> np.ndarray:
    """The sorted classes of a categorical variable in the audited table."""
    return np.asarray(sorted(df[variable].astype(str).unique()), dtype=object)


def _prob_columns(variable: str, classes: np.ndarray) -> list[str]:
    return [f"{variable}_prob_{c}" for c in classes]


def _oof(run: RunDir, cfg: Config, df: pd.DataFrame, n_folds: int, model: dict[str, Any],
         holdout: np.ndarray) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Out-of-fold probabilities, from cache when the same settings and codes produced them before.

    Rows in ``holdout`` get fold -1: no model trains on them, one model of all other rows scores them.

    Returns
    -------
    (n, n_labels) probabilities of the 0/1 labels, and ``{variable: (classes, (n, k) probabilities)}``
    """
    labels, variables = cfg.data.label_columns, cfg.data.class_columns
    key = {"folds": n_folds, "seed": cfg.split.seed, **model, "holdout_rows": int(holdout.sum()),
           "labels_sha256": hashlib.sha256(df[["id", *labels, *variables]].to_csv(index=False).encode()).hexdigest()}
    classes = {v: _classes(df, v) for v in variables}
    cache, meta = run.audit_oof, run.audit_oof_key
    if cache.is_file() and meta.is_file() and read_json(meta) == _jsonable(key):
        log.info("Reusing the out-of-fold probabilities in %s (same settings and labels).", cache.name)
        oof = pd.read_parquet(cache)
        return (oof[[f"{lab}_prob" for lab in labels]].to_numpy(),
                {v: (c, oof[_prob_columns(v, c)].to_numpy()) for v, c in classes.items()})
    folds = _folds(cfg, df, n_folds, holdout)
    inputs = model_inputs(df, cfg)
    settings = {"kind": model["kind"], "name": model["name"], "params": model["params"], "holdout": holdout}
    # fine-tuning on a CPU can take hours: say how long before it starts (None for TF-IDF)
    log_time_estimate(estimate_seconds(inputs, df[labels].to_numpy(), folds, n_variables=len(classes), **settings),
                      model["kind"])
    P = (out_of_fold_proba(inputs, df[labels].to_numpy(), folds, label_names=labels, **settings) if labels
         else np.zeros((len(df), 0)))
    class_P = {v: (c, out_of_fold_class_proba(inputs, df[v].astype(str).to_numpy(), folds, classes=c,
                                              variable=v, **settings)) for v, c in classes.items()}
    oof = pd.DataFrame({"id": df["id"], "fold": folds}).assign(**{f"{lab}_prob": P[:, j] for j, lab in enumerate(labels)})
    for v, (c, Pv) in class_P.items():
        oof = oof.assign(**dict(zip(_prob_columns(v, c), Pv.T)))
    write_table(oof, cache)
    write_json(key, meta)
    return P, class_P


def _folds(cfg: Config, df: pd.DataFrame, n_folds: int, holdout: np.ndarray) -> np.ndarray:
    """Cross-fitting folds of the rows not held out (-1 for held-out rows), stratified by the 0/1 labels
    and the classes of the categorical variables."""
    indicators = class_indicators(df, cfg.data.class_columns)
    strat = df.join(indicators)[~holdout].reset_index(drop=True)
    folds = np.full(len(df), -1)
    folds[~holdout] = audit_folds(strat, [*cfg.data.label_columns, *indicators.columns], n_folds=n_folds,
                                  seed=cfg.split.seed, n_clusters=cfg.split.n_clusters,
                                  min_stratum=cfg.split.min_stratum)
    return folds


def _jsonable(obj: Any) -> Any:
    import json
    return json.loads(json.dumps(obj, default=str))


def _thresholds(run: RunDir, cfg: Config) -> np.ndarray:
    return run.thresholds(cfg.model.kind, cfg.data.label_columns, default=0.5)


def _summary(run: RunDir, cfg: Config, Y: np.ndarray, P: np.ndarray, flagged: np.ndarray,
             conflicts: dict[str, Any], queue: pd.DataFrame, *, settings: dict[str, Any], seconds: float
             ) -> dict[str, Any]:
    """``conflicts``: :func:`lexcoder.clean.conflict_counts` of the audited codes."""
    labels = cfg.data.label_columns
    noise = noise_estimates(Y, P, labels) if labels else {}
    per_label = {}
    for j, lab in enumerate(labels):
        dup = conflicts["labels"].get(lab, {})
        per_label[lab] = {"positives": int(Y[:, j].sum()), "flagged": int(flagged[:, j].sum()),
                          "conflicting_duplicate_groups": dup.get("groups", 0),
                          "conflicting_duplicate_rows": dup.get("rows", 0),
                          "in_queue": int((queue["label"] == lab).sum()),
                          **noise[lab], "reviewed": 0, "kept": 0, "flipped": 0}
    before = evaluate_predictions(Y, P, _thresholds(run, cfg), labels) if labels else None
    return {"run": str(run.root), "n_rows": int(len(Y)), "settings": settings, "seconds": round(seconds, 2),
            "labels": per_label, "total_in_queue": int(len(queue)),
            # on the audited codes (original + recorded corrections); the manifest counts the original ones
            "conflicting_duplicate_groups": conflicts["groups"], "conflicting_duplicate_rows": conflicts["rows"],
            "out_of_fold": {"thresholds": "the run's validation-tuned thresholds", "before": before, "after": None}}


_AGREEMENT = ("accuracy", "macro_f1", "weighted_f1", "cohen_kappa")  # out-of-fold figures in the summary


def _agreement(codes: pd.Series, classes: np.ndarray, P: np.ndarray) -> dict[str, Any] | None:
    """Out-of-fold accuracy, macro-/weighted-F1 and κ of the most probable class against ``codes`` (None
    if a code is not among ``classes``, the columns of ``P``)."""
    if not np.isin(codes.astype(str).to_numpy(), classes).all():
        return None
    figures = evaluate_variable(np.searchsorted(classes, codes.astype(str).to_numpy()), P, list(map(str, classes)))
    return {k: figures[k] for k in _AGREEMENT}


def _variable_summary(df: pd.DataFrame, variable: str, s: ClassScores, queue: pd.DataFrame,
                      conflicts: dict[str, Any]) -> dict[str, Any]:
    """One categorical variable's block of ``audit_summary.json``."""
    y = np.searchsorted(s.classes, df[variable].astype(str).to_numpy())
    dup = conflicts["labels"].get(variable, {})
    return {"rows": int(len(y)), "classes": [str(c) for c in s.classes],
            "counts": {str(c): int(n) for c, n in zip(s.classes, np.bincount(y, minlength=len(s.classes)))},
            "flagged": int(s.flagged.sum()), "in_queue": int((queue["label"] == variable).sum()),
            "conflicting_duplicate_groups": dup.get("groups", 0), "conflicting_duplicate_rows": dup.get("rows", 0),
            **class_noise_estimates(y, s.P, s.classes), "reviewed": 0, "kept": 0, "changed": 0,
            "out_of_fold": {"before": _agreement(df[variable], s.classes, s.P), "after": None}}


@dataclass
class ReviewResult:
    """What :func:`apply_review` recorded."""

    ledger: Path
    added: pd.DataFrame
    skipped: int
    summary: dict[str, Any] | None


@writes_to_run("corrections apply")
def apply_review(run_dir: str | Path, reviewed: str | Path, *, reviewer: str,
                 ledger: str | Path = "corrections.csv") -> ReviewResult:
    """Append the decisions of a reviewed queue to the corrections ledger (idempotent).

    Parameters
    ----------
    run_dir : the run whose ``label_issues.csv`` was reviewed
    reviewed : the reviewed queue (CSV, Excel, ...): ``decision`` = keep / flip / empty for a 0/1 label;
        keep / change / empty for a categorical variable, with the new class in ``new_value`` (empty:
        the ``suggested_value``; see :mod:`lexcoder.ledger`)
    reviewer : name recorded with every entry
    ledger : the append-only corrections ledger (created if missing)

    Nothing in ``run_dir`` or in the original data is modified except ``audit_summary.json``, which
    gains the reviewed/flipped (changed) counts and the out-of-fold figures against the corrected codes.
    The run's report shows them once rebuilt (``lexcoder corrections apply`` does that; in Python
    :func:`lexcoder.report.build_report`).

    Raises
    ------
    DataError
        Naming the review file's row, e.g. for a class that is not one of the variable's classes (the
        message lists them); nothing is written then.
    """
    if not str(reviewer).strip():
        raise ConfigError("The reviewer must be named (who reviewed the codes).")
    run = RunDir(Path(run_dir))
    cfg = run.load_config()
    labels, variables = cfg.data.label_columns, cfg.data.class_columns
    original = pd.read_parquet(run.data)
    classes = {v: list(_classes(original, v)) for v in variables}
    existing = read_ledger(ledger, variables)
    current = apply_ledger(original, existing, labels, class_columns=variables, source=str(ledger))
    table = _unquoted(read_table(reviewed), current, [*labels, *variables], classes)
    added = review_entries(table, current, existing, labels, classes=classes, reviewer=str(reviewer).strip(),
                           source_run=str(run.root.resolve()), source=str(reviewed))
    if len(added):
        append_ledger(added, ledger)
    summary = _update_summary(run, cfg, original, read_ledger(ledger, variables), ledger)
    return ReviewResult(ledger=Path(ledger), added=added, skipped=_decided(table, variables) - len(added),
                        summary=summary)


def _decided(table: pd.DataFrame, variables: list[str]) -> int:
    """Rows of a reviewed queue with a decision (a class written in ``new_value`` is one, for variables)."""
    def filled(column: str) -> pd.Series:
        if column not in table:
            return pd.Series(False, index=table.index)
        return table[column].astype("string").fillna("").str.strip().ne("").astype(bool)
    return int((filled("decision") | (filled("new_value") if variables else False)).sum())


def _unquoted(table: pd.DataFrame, current: pd.DataFrame, columns: list[str], classes: dict[str, list[str]]
              ) -> pd.DataFrame:
    """The review file with the ``'`` that :func:`~lexcoder.safety.neutralise_formulas` put before ids,
    labels and classes like ``=1`` removed again (only where the bare value is one of the run's ids, label
    or variable names, or classes)."""
    out = table.copy()
    known_classes = sorted({c for cs in classes.values() for c in cs})
    for column, known in (("id", current["id"].astype(str)), ("label", columns), ("human_value", known_classes),
                          ("suggested_value", known_classes), ("new_value", known_classes)):
        if column in out and (column in ("id", "label") or known_classes):
            out[column] = restore_quoted(out[column], known)
    return out


def _update_summary(run: RunDir, cfg: Config, original: pd.DataFrame, ledger: pd.DataFrame,
                    ledger_path) -> dict[str, Any] | None:
    path = run.audit_summary
    if not path.is_file():
        return None
    labels, variables = cfg.data.label_columns, cfg.data.class_columns
    summary = read_json(path)
    mine = ledger[ledger["source_run"] == str(run.root.resolve())]
    changed = mine["old_value"].astype(str) != mine["new_value"].astype(str)
    for lab in labels:
        part = mine["label"] == lab
        summary["labels"].setdefault(lab, {}).update(reviewed=int(part.sum()), flipped=int((part & changed).sum()),
                                                     kept=int((part & ~changed).sum()))
    for v in variables:
        part = mine["label"] == v
        summary.setdefault("variables", {}).setdefault(v, {}).update(
            reviewed=int(part.sum()), changed=int((part & changed).sum()), kept=int((part & ~changed).sum()))
    oof = run.audit_oof
    if oof.is_file():
        corrected = apply_ledger(original, ledger, labels, class_columns=variables, source=str(ledger_path))
        table = pd.read_parquet(oof).set_index("id").loc[corrected["id"]]
        if labels:
            P = table[[f"{lab}_prob" for lab in labels]].to_numpy()
            summary["out_of_fold"]["after"] = evaluate_predictions(corrected[labels].to_numpy(), P,
                                                                   _thresholds(run, cfg), labels)
        for v in variables:
            block = summary["variables"][v]
            classes = np.asarray(block.get("classes") or _classes(corrected, v), dtype=object)
            if all(c in table for c in _prob_columns(v, classes)):
                block.setdefault("out_of_fold", {})["after"] = _agreement(
                    corrected[v], classes, table[_prob_columns(v, classes)].to_numpy())
    summary["ledger"] = str(Path(ledger_path).resolve())
    write_json(summary, path)
    return summary
