""":func:`estimate_run`: the estimates of a run's labels and categorical variables, from files."""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from ..active.provenance import check_not_handed_out
from ..config import Config
from ..errors import LexcoderError, did_you_mean
from ..io import read_table
from ..rundir import RunDir, RunDirError
from .prevalence import MIN_GOLD_POSITIVES, estimate_prevalence
from .shares import estimate_shares

log = logging.getLogger(__name__)


def estimate_run(run_dir: str | Path, corpus_path: str | Path, gold_path: str | Path, *,
                 labels: list[str] | None = None, id_column: str | None = None, simultaneous: bool = True,
                 **options) -> pd.DataFrame:
    """Prevalence of each label and share of each class of each categorical variable, for files.

    :func:`~lexcoder.estimate.estimate_prevalence` for the run's 0/1 labels and
    :func:`~lexcoder.estimate.estimate_shares` for its categorical variables (``class_columns``, with the
    classes its model knows), in one table.

    Parameters
    ----------
    run_dir : str or Path
        The run whose model coded the corpus.
    corpus_path, gold_path : str or Path
        The coded corpus and the human-coded sample (any format :func:`lexcoder.io.read_table` reads).
    labels : list of str, optional
        Labels and/or categorical variables to estimate (default: all of the run's).
    id_column : str, optional
        Column identifying rows in both files (default: the run's).
    simultaneous : bool, default True
        Intervals of a variable's classes that hold for all its classes at once (see
        :func:`~lexcoder.estimate.estimate_shares`); labels are unaffected.
    **options
        Passed on to both (``by``, ``weight_column``, ``alpha``, ``yhat``, ``min_positives``).

    Returns
    -------
    pd.DataFrame
        The rows of the labels (column ``label``), then those of the variables' classes (columns
        ``variable`` and ``class``; in a table holding both, the other kind's columns are empty).
        Estimates with too few human-coded positives are also logged.

    Raises
    ------
    LexcoderError
        If a name in ``labels`` is not one of the run's, or neither ``id_column`` nor the run's config
        names an id column.
    """
    run = RunDir(Path(run_dir))
    cfg = run.load_config()
    chosen, variables = _chosen(cfg, labels, run_dir)
    id_column = id_column or cfg.data.id_column
    if not id_column:
        raise LexcoderError(f"The run in {run_dir} has no id column; give the column that identifies rows in "
                            "both files as id_column.")
    classes = {v: run_classes(run, v) for v in variables}
    corpus, gold = read_table(corpus_path), read_table(gold_path)
    if run.batches.is_file():  # texts active learning chose are never a random gold sample
        check_not_handed_out(gold, run.read_table(run.batches), id_column, str(gold_path))
    common = dict(id_column=id_column, names=(str(corpus_path), str(gold_path)), **options)
    parts = [estimate_prevalence(corpus, gold, chosen, **common)] if chosen else []
    if classes:
        parts.append(estimate_shares(corpus, gold, classes, simultaneous=simultaneous, **common))
    table = pd.concat(parts, ignore_index=True)
    first = [c for c in (options.get("by"), "label", "variable", "class") if c in table.columns]
    table = table[first + [c for c in table.columns if c not in first]]
    if not table["reliable"].all():
        log.warning("%d of %d estimates rest on fewer than %d human-coded positives; see the 'note' column.",
                    int((~table["reliable"]).sum()), len(table), options.get("min_positives", MIN_GOLD_POSITIVES))
    return table


def _chosen(cfg: Config, names: list[str] | None, run_dir) -> tuple[list[str], list[str]]:
    """The labels and the categorical variables among ``names`` (default: all of the run's)."""
    labels, variables = list(cfg.data.label_columns), list(cfg.data.class_columns)
    if not names:
        return labels, variables
    unknown = [n for n in names if n not in labels and n not in variables]
    if unknown:
        raise LexcoderError(f"{unknown[0]!r} is neither a label nor a categorical variable of the run in "
                            f"{run_dir}{did_you_mean(unknown[0], labels + variables)} (labels: {labels}; "
                            f"categorical variables: {variables}).")
    return [n for n in names if n in labels], [n for n in names if n in variables]


def run_classes(run: RunDir, variable: str) -> list[str]:
    """The classes of the run's categorical variable ``variable``, as its model (and ``lexcoder predict``'s
    ``<variable>_prob_<class>`` columns) names them: from the run's manifest."""
    classes = run.read_manifest().get("data", {}).get("classes", {}).get(variable)
    if not classes:
        raise RunDirError(f"{run.manifest} does not list the classes of {variable!r}: the run has not finished "
                          f"loading its data (finish it with `lexcoder run CONFIG --out {run.root} --resume`) or "
                          "its folder is damaged.")
    return [str(c) for c in classes]
