"""What the desk reviews: a run's audit queue, and new texts to code from a table.

- :func:`open_run_store` opens (or creates) the run's store, ``review.sqlite`` in the run folder
  (:attr:`lexcoder.rundir.RunDir.review_store`), with the run's labels and categorical variables as the
  codebook, and loads the run's audit queue (``label_issues.parquet``) whenever it changed;
- :func:`load_texts` adds the texts of a table as items to code, in a random order or stratified by the
  model's predicted codes (so that the first hundred texts already cover every predicted combination), or in
  active-learning order (``lexcoder next``'s choice, :func:`~lexcoder.active.rounds.active_ranks`).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data import id_to_str
from ..errors import DataError
from ..io import file_sha256, read_table
from ..rundir import RunDir
from .store import Field, ReviewStore

log = logging.getLogger(__name__)

ORDERS = ("random", "stratified", "active")
#: The ``reason`` of a new text loaded in active-learning order; the coded table then carries
#: :data:`lexcoder.active.provenance.BATCH_COLUMN` / ``STRATEGY_COLUMN``, so `lexcoder estimate` refuses it as gold.
ACTIVE_REASON = "chosen by active learning (lexcoder review --order active)"


def run_fields(run: RunDir) -> list[Field]:
    """The run's 0/1 labels, then its categorical variables with their classes (as text, sorted)."""
    cfg = run.load_config()
    fields = [Field(label) for label in cfg.data.label_columns]
    if cfg.data.class_columns:
        data = run.read_table(run.data)[cfg.data.class_columns]
        fields += [Field(v, tuple(sorted(data[v].dropna().astype(str).unique()))) for v in cfg.data.class_columns]
    return fields


def open_run_store(run_dir: str | Path, *, settings: dict[str, Any] | None = None) -> ReviewStore:
    """The review store of a run (created on first use), with the run's current audit queue loaded.

    Parameters
    ----------
    run_dir : a finished run (``lexcoder run`` / ``lexcoder demo``), audited or not
    settings : settings to store (see :data:`lexcoder.review.store.DEFAULT_SETTINGS`)
    """
    run = RunDir(Path(run_dir))
    run.load_config()  # a clear error for a folder that is not a run
    store = ReviewStore(run.review_store, fields=run_fields(run), settings=settings)
    refresh_audit_queue(store, run)
    return store


def refresh_audit_queue(store: ReviewStore, run: RunDir) -> int:
    """Load the run's audit queue into the store if it changed since the last time; returns the new items.

    The queue replaces the previous one: its rows are served in its order, rows no longer in it are not
    served any more (their decisions are kept).
    """
    path = run.label_issues_table
    if not path.is_file():
        return 0
    digest = file_sha256(path)
    if store.meta("audit_queue_sha256") == digest:
        return 0
    queue = run.read_table(path)
    added = store.load_items(queue, "audit", replace=True)
    store.set_meta("audit_queue_sha256", digest)
    log.info("Review queue %s: %d rows (%d new).", path.name, len(queue), added)
    return added


def load_texts(store: ReviewStore, run_dir: str | Path, path: str | Path, *, order: str = "random", seed: int = 0,
               limit: int | None = None, text_column: str | None = None, id_column: str | None = None,
               suggest: bool | None = None) -> int:
    """Add the texts of a table as new items to code (every label of the codebook on one screen).

    Parameters
    ----------
    store : the run's store (:func:`open_run_store`)
    run_dir : the run (its config names the text and id columns; its model makes suggestions)
    path : a table of texts (CSV, Excel, Parquet, ...); texts already in the store keep their decisions
    order : ``"random"``, ``"stratified"`` (interleaves the model's predicted label combinations) or
        ``"active"`` (the order in which :func:`lexcoder.active.choose_batch` chooses them, the run's model
        scoring them: :func:`lexcoder.active.rounds.active_ranks`)
    seed : seed of the order
    limit : add at most this many texts (after ordering)
    text_column, id_column : columns of the table (default: the run's); without an id column the texts
        are numbered ``row_1, row_2, ...`` by their row in the file
    suggest : store the model's codes as suggestions (default: when the review shows suggestions, or for
        the stratified order); they are shown only while the ``suggestions`` setting is on

    Returns
    -------
    the number of texts added
    """
    if order not in ORDERS:
        raise DataError(f"order {order!r} is not one of {', '.join(ORDERS)}.")
    run = RunDir(Path(run_dir))
    cfg = run.load_config()
    table = read_table(path)
    frame = _texts(table, Path(path), text_column or cfg.data.text_column, id_column or cfg.data.id_column)
    suggest = store.settings["suggestions"] or order == "stratified" if suggest is None else suggest
    suggestions = _suggestions(run, table.loc[frame.index], frame["text"]) if suggest else None
    rng = np.random.default_rng(seed)
    if order == "stratified":
        ranks = stratified_ranks(_strata(suggestions), rng)
    elif order == "active":  # what `lexcoder next` would choose first comes first
        from ..active.rounds import active_ranks
        ranks = active_ranks(run_dir, table.loc[frame.index], frame["text"], n=limit, seed=seed)
        frame["reason"] = ACTIVE_REASON  # exported as lexcoder_batch/strategy: never a gold sample
    else:
        ranks = rng.permutation(len(frame)).astype(float)
    frame = frame.assign(rank=ranks + store.max_rank("code") + 1)
    if suggestions is not None:
        frame["suggestion"] = suggestions
    frame = frame.sort_values("rank")
    if limit is not None:
        frame = frame.head(limit)
    return store.load_items(frame, "code")


def _texts(table: pd.DataFrame, path: Path, text_column: str, id_column: str | None) -> pd.DataFrame:
    """``id`` and ``text`` of a table of new texts (empty texts left out, with a warning)."""
    if text_column not in table.columns:
        raise DataError(f"{path}: no text column {text_column!r} (columns: {', '.join(map(str, table.columns[:20]))}). "
                        "Name it with --text-column.")
    if id_column and id_column in table.columns:
        ids = table[id_column].map(id_to_str)
    else:
        ids = pd.Series([f"row_{i + 1}" for i in range(len(table))], index=table.index)
    texts = table[text_column].fillna("").astype(str)
    empty = texts.str.strip().eq("")
    if empty.any():
        log.warning("%s: %d empty text(s) left out.", path, int(empty.sum()))
    dup = ids[~empty].duplicated(keep=False)
    if dup.any():
        raise DataError(f"{path}: the ids {sorted(ids[~empty][dup].unique())[:5]} appear more than once; every "
                        "text needs its own id.")
    return pd.DataFrame({"id": ids, "text": texts})[~empty]


def _suggestions(run: RunDir, table: pd.DataFrame, texts: pd.Series) -> list[dict[str, Any]]:
    """The run's model's codes of each text: ``{label: probability}`` and ``{variable: class}``."""
    from ..predict import chunk_inputs, predict_frame
    cfg = run.load_config()
    labels = cfg.data.label_columns
    model, thresholds, variables = run.load_models()
    chunk = table.assign(**{cfg.data.text_column: texts.to_numpy()}).reset_index(drop=True)
    inputs = chunk_inputs(chunk, cfg, cfg.data.text_column, source="the texts to code", first_row=1)
    coded = predict_frame(model, thresholds, labels, inputs, variables=variables)
    return [{**{lab: round(float(row[f"{lab}_prob"]), 3) for lab in labels},
             **{f"{lab}_decision": int(row[f"{lab}_pred"]) for lab in labels},
             **{v: str(row[f"{v}_pred"]) for v in variables}} for _, row in coded.iterrows()]


def _strata(suggestions: list[dict[str, Any]] | None) -> list[str]:
    """A stratum per text: the model's predicted codes, joined."""
    return ["|".join(f"{k}={v}" for k, v in sorted(s.items()) if not isinstance(v, float)) for s in suggestions or []]


def stratified_ranks(strata: list[str], rng: np.random.Generator) -> np.ndarray:
    """Ranks that interleave the strata: one text of each stratum in turn (strata and texts in random order),
    so that any first n texts hold about n / (number of strata) of each stratum while it lasts."""
    keys = np.asarray(strata, dtype=object)
    order = rng.permutation(len(keys))
    names = list(dict.fromkeys(keys[order]))  # the strata in the random order of their first text
    turn = np.empty(len(keys))
    position = {name: 0 for name in names}
    for i in order:
        turn[i] = position[keys[i]] * len(names) + names.index(keys[i])
        position[keys[i]] += 1
    return np.argsort(np.argsort(turn, kind="stable"), kind="stable").astype(float)
