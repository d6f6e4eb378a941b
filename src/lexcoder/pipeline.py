"""The whole pipeline: load → clean → split → train → thresholds → evaluate (→ audit → report).

Each stage reads and writes named artifacts in the run directory (:class:`~lexcoder.rundir.RunDir`), so a
run can be inspected, resumed (``resume=True`` skips finished stages) and continued stage by stage.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .clean import clean
from .config import Config
from .data import load_dataset
from .errors import ConfigError, DataError
from .io import file_sha256, read_json, write_table
from .ledger import check_corrections, training_table
from .notify import watch_run
from .rundir import (RunDir, RunInputs, check_resumable, discard_run, ensure_dir, prepare_out,
                     set_status, stage, stage_done, start_run)
from .split import class_indicators, make_splits, prevalence_table
from .train import train_and_evaluate

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
