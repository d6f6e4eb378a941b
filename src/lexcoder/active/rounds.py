"""A round of coding on files: ``lexcoder next`` (the batch to code) and ``lexcoder add`` (the coded batch back).

One round::

    lexcoder next runs/exp1 --corpus uncoded.parquet --n 200 --out to_code.xlsx   # coders fill in the labels
    lexcoder add runs/exp1 to_code.xlsx --out round2.parquet                     # record it; next training table
    lexcoder run my.toml --set data.path=round2.parquet --out runs/exp2

What lives where (the user's files are only ever read):

- ``RUN/batches.parquet`` (:func:`next_batch`): every text a ``next`` of this run handed out: batch id, id,
  text, strategy, reason, score, inclusion probability (random rows), seed, time, the corpus file and its
  sha256. A later ``next`` never hands out a text again, and ``add`` accepts only these texts;
- ``RUN/coded_batches.parquet`` (:func:`add_batch`): the coded rows, with the same provenance plus the
  time they were added and the coded file's sha256;
- the training table (:func:`training_table`, ``add --out``): a *new* file holding the rows of the run's data
  file as they are plus every coded batch of the run, with :data:`~lexcoder.active.provenance.BATCH_COLUMN`
  and :data:`~lexcoder.active.provenance.STRATEGY_COLUMN` saying which rows came from which batch. The
  next run names it as its ``data.path``, so its sha256 is part of the run's identity (``--resume`` refuses
  a changed table) and the provenance travels with the rows to every later round.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import id_to_str, normalize_classes, normalize_labels
from ..errors import DataError, did_you_mean, format_rows
from ..io import file_sha256, read_table, table_format, write_table
from ..predict import SPREADSHEET_FORMATS, chunk_inputs, predict_frame
from ..rundir import RunDir, RunInputs, check_output_file, writes_to_run
from ..safety import neutralise_formulas as neutralise
from ..safety import restore_quoted
from .batches import COLD_START_BELOW, choose_batch, resolve_mix
from .provenance import BATCH_COLUMN, REASON_COLUMN, STRATEGY_COLUMN

log = logging.getLogger(__name__)

#: Provenance columns of the batch records (besides ``id``, ``text``, ``group`` and the coded columns).
RECORD_COLUMNS = ["batch", "id", "text", "group", "strategy", "reason", "score", "inclusion_probability", "seed",
                  "chosen_at", "corpus", "corpus_sha256"]


@dataclass(frozen=True)
class NextResult:
    """What :func:`next_batch` did: the batch id, the file written and the rows per strategy."""

    batch: str
    path: Path
    rows: int
    pool: int
    strategies: dict[str, int]


@dataclass(frozen=True)
class AddResult:
    """What :func:`add_batch` recorded: the batches, rows, positives per label and the training table."""

    batches: list[str]
    rows: int
    positives: dict[str, int]
    training_table: Path | None


@writes_to_run("next")
def next_batch(run_dir: str | Path, corpus_path: str | Path, out_path: str | Path, *, n: int = 200,
               strategy: str | Mapping[str, float] = "auto", keywords: Mapping[str, str] | None = None,
               seed: int = 0, text_column: str | None = None, id_column: str | None = None,
               overwrite: bool = False, neutralise_formulas: bool = True) -> NextResult:
    """Code ``corpus_path`` with the run's model, choose ``n`` texts to code next and write them for coders.

    The file (CSV, TSV, XLSX, Parquet, JSONL: by extension) holds the id, the text, one *empty* column per
    label and categorical variable, and :data:`~lexcoder.active.provenance.BATCH_COLUMN`,
    ``STRATEGY_COLUMN`` and ``REASON_COLUMN``. Texts already in the run's data, texts identical to a coded
    one, and texts an earlier ``next`` of the run handed out are never chosen. The batch is recorded in
    ``RUN/batches.parquet``; the file and the record are written together or not at all.

    Parameters
    ----------
    run_dir : a finished run (its model codes the corpus)
    corpus_path : the uncoded texts: an id column and a text column (any supported format)
    out_path : the file for the coders; an existing file is replaced only with ``overwrite``
    n : batch size
    strategy, keywords, seed : see :func:`~lexcoder.active.batches.choose_batch`
    text_column, id_column : the corpus's columns (default: the run's ``[data]`` names)
    neutralise_formulas : in CSV/TSV/XLSX, prefix ``'`` to text cells a spreadsheet would run as formulas

    Raises
    ------
    DataError
        For a missing column, an empty or duplicate id, an id of the run's data that names another text, a
        corpus with nothing left to choose, or an output that is an input, inside a run folder or exists.
    """
    corpus_path, out_path = Path(corpus_path), Path(out_path)
    check_output_file(out_path, inputs=[corpus_path], overwrite=overwrite)
    resolve_mix(strategy, has_model=True, n_coded=COLD_START_BELOW)  # an unknown strategy: before any work
    run = RunDir(Path(run_dir))
    cfg = run.load_config()
    text_column, id_column = text_column or cfg.data.text_column, id_column or cfg.data.id_column or "id"
    corpus = read_table(corpus_path)
    ids = corpus_ids(corpus, id_column, text_column, corpus_path)
    inputs = chunk_inputs(corpus, cfg, text_column, source=str(corpus_path), first_row=1)
    cleaned = pd.Series(list(inputs["text"] if isinstance(inputs, pd.DataFrame) else inputs), index=corpus.index)
    data = run.read_table(run.data)
    keep = _pool_mask(ids, cleaned, data, _issued(run), corpus_path)
    if not keep.any():
        raise DataError(f"{corpus_path}: no text left to choose from: every text is already coded in the run "
                        f"{run.root}, handed out by an earlier `lexcoder next`, or empty.")
    pool_inputs = inputs[keep] if isinstance(inputs, pd.DataFrame) else [t for t, k in zip(inputs, keep) if k]
    outputs = _model_outputs(run, cfg, pool_inputs)
    batch = choose_batch(cleaned[keep].tolist(), n, coded_texts=data["text"].tolist(), strategy=strategy,
                         keywords=keywords, seed=seed, **outputs, **_coded_counts(cfg, data))
    if len(batch) < n:
        log.warning("Only %d of the %d texts asked for could be chosen (the rest of the pool are near-duplicates "
                    "or there are too few texts).", len(batch), n)
    picked = corpus[keep].iloc[batch["row"].to_numpy()]
    batch_id = _new_batch_id(run)
    to_code = _to_code_table(picked, batch, batch_id, cfg, text_column, id_column)
    record = _issue_record(picked, batch, batch_id, cfg, text_column, id_column, seed, corpus_path)
    safe = neutralise_formulas and table_format(out_path) in SPREADSHEET_FORMATS
    with run.all_or_nothing([out_path, run.batches]):
        write_table(neutralise(to_code) if safe else to_code, out_path)
        write_table(pd.concat([_issued(run), record], ignore_index=True), run.batches)
    log.info("Batch %s: %d texts written to %s", batch_id, len(to_code), out_path)
    return NextResult(batch_id, out_path, len(to_code), int(keep.sum()),
                      batch["strategy"].value_counts().to_dict())


@writes_to_run("add")
def add_batch(run_dir: str | Path, coded_path: str | Path | None, *, training_out: str | Path | None = None,
              overwrite: bool = False) -> AddResult:
    """Read a coded batch back, check it against what ``next`` handed out, and record it in the run folder.

    Every row must name a text of a batch of this run (id and :data:`BATCH_COLUMN` as written by
    ``next``) that was not added before, and hold a code in every label column (0/1, true/false, yes/no)
    and categorical column (one of the run's classes). Rows you did not code: delete them from the file
    and add them later. The rows are appended to ``RUN/coded_batches.parquet``. With ``training_out``, the
    next round's training table is written too (:func:`training_table`); ``coded_path=None`` writes only
    that table, from the batches added before.

    Raises
    ------
    DataError
        Naming the file, the rows and the column: a missing column, an id that no batch of the run handed
        out, an id given twice or added before, an empty or invalid code. Nothing is recorded then.
    """
    run = RunDir(Path(run_dir))
    cfg = run.load_config()
    if training_out is not None:
        check_output_file(training_out, inputs=[p for p in (coded_path, cfg.data.path) if p], overwrite=overwrite)
    if coded_path is None:
        return _table_only(run, training_out)
    coded_path = Path(coded_path)
    issued = _issued(run)
    if issued.empty:
        raise DataError(f"The run {run.root} has handed out no batch yet: create one with `lexcoder next "
                        f"{run.root} --corpus CORPUS --out to_code.xlsx`, have it coded, then add it.")
    coded = read_table(coded_path)
    rows = _checked_rows(coded, issued, _added(run), cfg, run, coded_path)
    record = rows.assign(added_at=_now(), coded_file=str(coded_path.resolve()), coded_sha256=file_sha256(coded_path))
    combined = pd.concat([_added(run), record], ignore_index=True)
    paths = [run.coded_batches] + ([Path(training_out)] if training_out is not None else [])
    with run.all_or_nothing(paths):
        write_table(combined, run.coded_batches)
        if training_out is not None:
            write_table(training_table(run, combined), training_out)
    positives = {lab: int(rows[lab].sum()) for lab in cfg.data.label_columns}
    return AddResult(sorted(rows["batch"].unique()), len(rows), positives,
                     None if training_out is None else Path(training_out))


def _table_only(run: RunDir, training_out: str | Path | None) -> AddResult:
    """``add`` without a coded file: the training table from the batches added before."""
    added = _added(run)
    if training_out is None or added.empty:
        raise DataError(f"Nothing to do: give a coded file to add to {run.root}" + (
            "." if training_out is None else ", or add one first (the run has no coded batch yet)."))
    write_table(training_table(run, added), training_out)
    return AddResult(sorted(added["batch"].unique()), 0, {}, Path(training_out))


def training_table(run: RunDir, coded: pd.DataFrame | None = None) -> pd.DataFrame:
    """The next round's training data: the run's data file as it is, plus the coded batches.

    The data file's rows keep every column unchanged; the batch rows fill the id, text, group (when the
    corpus had the run's group column), label and class columns under the data file's names, and
    :data:`BATCH_COLUMN` / :data:`STRATEGY_COLUMN` (empty for the data file's own rows, unless they came
    from an earlier round).

    Raises
    ------
    DataError
        When the data file changed since the run (its sha256 differs from the one the run recorded), or the
        run's data has no id column (generated ids cannot be matched across rounds).
    """
    cfg = run.load_config()
    coded = _added(run) if coded is None else coded
    if not cfg.data.id_column:
        raise DataError(f"The run {run.root} generated its ids (no [data] id_column), so coded batches cannot be "
                        "matched to its rows. Add an id column to the data and name it in id_column.")
    recorded = RunInputs.recorded(run.read_manifest()).data_sha256
    if recorded and file_sha256(cfg.data.path) != recorded:
        raise DataError(f"The data file {cfg.data.path} changed since the run {run.root} read it, so the training "
                        "table would mix two versions. Build it from the run of the current data file.")
    data = read_table(cfg.data.path, sheet=cfg.data.sheet)
    d = cfg.data
    batch_rows = pd.DataFrame({d.id_column: coded["id"].to_numpy(), d.text_column: coded["text"].to_numpy()})
    if d.group_column:
        batch_rows[d.group_column] = coded["group"].to_numpy()
    for col in d.coded_columns:
        batch_rows[col] = coded[col].to_numpy()
    batch_rows[BATCH_COLUMN] = coded["batch"].to_numpy()
    batch_rows[STRATEGY_COLUMN] = coded["strategy"].to_numpy()
    table = pd.concat([data, batch_rows], ignore_index=True)
    return table.apply(_as_text_if_mixed)


def corpus_ids(corpus: pd.DataFrame, id_column: str, text_column: str, path: Path) -> pd.Series:
    """The corpus's ids as text; a :class:`DataError` naming the rows for a missing column, an empty or a
    duplicate id."""
    missing = [c for c in (id_column, text_column) if c not in corpus.columns]
    if missing:
        raise DataError(f"{path}: no column {missing[0]!r}{did_you_mean(missing[0], corpus.columns)} (columns: "
                        f"{', '.join(map(str, corpus.columns[:20]))}). Name the corpus's columns with --id-column "
                        "and --text-column.")
    empty = corpus[id_column].isna().to_numpy() | corpus[id_column].astype(str).str.strip().eq("").to_numpy()
    if empty.any():
        raise DataError(f"{path}: column {id_column!r} is empty in rows {format_rows(np.flatnonzero(empty) + 1)}. "
                        "Every text needs an id, so that its codes can be matched when the batch comes back.")
    ids = corpus[id_column].map(id_to_str)
    dup = ids.duplicated(keep=False).to_numpy()
    if dup.any():
        raise DataError(f"{path}: column {id_column!r} must identify texts uniquely, but rows "
                        f"{format_rows(np.flatnonzero(dup) + 1)} share ids {sorted(ids[dup].unique())[:5]}.")
    return ids


# -- next: the pool, the model's outputs, the records ------------------------------------------------------
def _pool_mask(ids: pd.Series, cleaned: pd.Series, data: pd.DataFrame, issued: pd.DataFrame,
               path: Path) -> np.ndarray:
    """Which corpus rows may be chosen: not coded in the run, not handed out before, not empty, and not the
    very text of a coded row."""
    coded = data.set_index(data["id"].astype(str))["text"]
    known = ids.isin(coded.index).to_numpy()
    clash = known & (coded.reindex(ids).to_numpy() != cleaned.to_numpy())
    if clash.any():
        rows = format_rows(np.flatnonzero(clash) + 1)
        raise DataError(f"{path}: the ids {ids[clash].head(3).tolist()} (rows {rows}) "
                        "name other texts in the run's data. An id must mean one text across the project; give the "
                        "corpus ids of its own (e.g. with a prefix).")
    handed_out = ids.isin(set(issued["id"].astype(str))).to_numpy() if len(issued) else np.zeros(len(ids), bool)
    empty = cleaned.str.strip().eq("").to_numpy()
    same_text = cleaned.isin(set(coded)).to_numpy() & ~known
    for count, what in ((known.sum(), "are in the run's data"), (handed_out.sum(), "were handed out before"),
                        (same_text.sum(), "repeat the text of a coded row"), (empty.sum(), "are empty")):
        if count:
            log.info("%d corpus texts %s: not chosen.", count, what)
    return ~(known | handed_out | empty | same_text)


def active_ranks(run_dir: str | Path, table: pd.DataFrame, texts: pd.Series, *, n: int | None = None,
                 strategy: str | Mapping[str, float] = "auto", seed: int = 0) -> np.ndarray:
    """The rank of each text in :func:`choose_batch`'s order, the run's model scoring them (the review
    desk's "code new texts" queue in active-learning order, ``lexcoder review --order active``).

    Parameters
    ----------
    run_dir : a finished run (its model and its coded data: what makes a label rare, which topics are covered)
    table : the rows of the texts (with the run's context columns when its model uses context)
    texts : (n_texts,) the texts, aligned with ``table``'s rows
    n : how many texts :func:`choose_batch` chooses (default: all); the others follow in their order
    strategy, seed : see :func:`choose_batch`

    Returns
    -------
    np.ndarray of float, shape (n_texts,): 0 for the first text chosen, 1 for the second, ...
    """
    run = RunDir(Path(run_dir))
    cfg = run.load_config()
    chunk = table.assign(**{cfg.data.text_column: np.asarray(texts)}).reset_index(drop=True)
    inputs = chunk_inputs(chunk, cfg, cfg.data.text_column, source="the texts to code", first_row=1)
    cleaned = list(inputs["text"] if isinstance(inputs, pd.DataFrame) else inputs)
    data = run.read_table(run.data)
    batch = choose_batch(cleaned, n or len(cleaned), coded_texts=data["text"].tolist(), strategy=strategy,
                         seed=seed, **_model_outputs(run, cfg, inputs), **_coded_counts(cfg, data))
    rest = np.setdiff1d(np.arange(len(cleaned)), batch["row"].to_numpy())  # near-duplicates, or beyond n
    ranks = np.empty(len(cleaned))
    ranks[np.concatenate([batch["row"].to_numpy(), rest]).astype(int)] = np.arange(len(cleaned))
    return ranks


def _model_outputs(run: RunDir, cfg, inputs) -> dict:
    """``probs``/``thresholds``/``labels`` and ``class_probs`` of the pool, as :func:`choose_batch` takes them."""
    labels = list(cfg.data.label_columns)
    model, thresholds, variables = run.load_models()
    coded = predict_frame(model, thresholds, labels, inputs, variables=variables)
    out = {"labels": labels, "thresholds": thresholds,
           "probs": coded[[f"{lab}_prob" for lab in labels]].to_numpy() if labels else None}
    out["class_probs"] = {v: ([str(c) for c in m.classes_], coded[[f"{v}_prob_{c}" for c in m.classes_]].to_numpy())
                          for v, m in variables.items()}
    return out


def _coded_counts(cfg, data: pd.DataFrame) -> dict:
    """Coded positives per label and texts per class in the run's data (what makes a label rare)."""
    return {"n_positive": [int(pd.to_numeric(data[lab]).sum()) for lab in cfg.data.label_columns],
            "class_counts": {v: data[v].astype(str).value_counts().to_dict() for v in cfg.data.class_columns}}


def _to_code_table(picked: pd.DataFrame, batch: pd.DataFrame, batch_id: str, cfg, text_column: str,
                   id_column: str) -> pd.DataFrame:
    d = cfg.data
    table = pd.DataFrame({d.id_column or "id": picked[id_column].map(id_to_str).to_numpy(),
                          d.text_column: picked[text_column].astype(str).to_numpy()})
    for col in d.coded_columns:
        table[col] = pd.Series([None] * len(table), dtype=object)
    table[BATCH_COLUMN] = batch_id
    table[STRATEGY_COLUMN] = batch["strategy"].to_numpy()
    table[REASON_COLUMN] = batch["reason"].to_numpy()
    return table


def _issue_record(picked: pd.DataFrame, batch: pd.DataFrame, batch_id: str, cfg, text_column: str,
                  id_column: str, seed: int, corpus_path: Path) -> pd.DataFrame:
    group = cfg.data.group_column
    return pd.DataFrame({
        "batch": batch_id, "id": picked[id_column].map(id_to_str).to_numpy(),
        "text": picked[text_column].astype(str).to_numpy(),
        "group": picked[group].map(lambda v: None if pd.isna(v) else str(v)).to_numpy()
        if group and group in picked.columns else None,
        "strategy": batch["strategy"].to_numpy(), "reason": batch["reason"].to_numpy(),
        "score": batch["score"].to_numpy(), "inclusion_probability": batch["inclusion_probability"].to_numpy(),
        "seed": int(seed), "chosen_at": _now(), "corpus": str(corpus_path.resolve()),
        "corpus_sha256": file_sha256(corpus_path)}, columns=RECORD_COLUMNS)


def _new_batch_id(run: RunDir) -> str:
    """``<run folder name>-b<k>``, k = 1 + the batches the run handed out so far."""
    return f"{run.root.resolve().name}-b{_issued(run)['batch'].nunique() + 1}"


def _issued(run: RunDir) -> pd.DataFrame:
    if not run.batches.is_file():
        return pd.DataFrame(columns=RECORD_COLUMNS)
    return run.read_table(run.batches)


def _added(run: RunDir) -> pd.DataFrame:
    if not run.coded_batches.is_file():
        return pd.DataFrame(columns=RECORD_COLUMNS)
    return run.read_table(run.coded_batches)


# -- add: checking a coded file ------------------------------------------------------------------------------
def _checked_rows(coded: pd.DataFrame, issued: pd.DataFrame, added: pd.DataFrame, cfg, run: RunDir,
                  path: Path) -> pd.DataFrame:
    """The coded rows joined to what ``next`` handed out, every code checked."""
    id_column = cfg.data.id_column or "id"
    needed = [id_column, BATCH_COLUMN, *cfg.data.coded_columns]
    missing = [c for c in needed if c not in coded.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}{did_you_mean(missing[0], coded.columns)}. Add the file "
                        f"`lexcoder next` wrote (columns {needed}) with the codes filled in.")
    coded = coded[~_blank_rows(coded, needed)].reset_index(drop=True)
    if coded.empty:
        raise DataError(f"{path}: no coded rows. Fill in the label columns of the file `lexcoder next` wrote.")
    ids = restore_quoted(coded[id_column].map(lambda v: None if pd.isna(v) else id_to_str(v)), issued["id"])
    batches = restore_quoted(coded[BATCH_COLUMN].astype(str).str.strip(), issued["batch"])
    _check_known(ids, batches, issued, added, run, path, id_column)
    source = issued.drop_duplicates("id").set_index("id").loc[ids.to_numpy()]
    rows = pd.DataFrame({"batch": batches.to_numpy(), "id": ids.to_numpy()})
    for col in ("text", "group", "strategy", "reason", "score", "inclusion_probability", "seed", "chosen_at",
                "corpus", "corpus_sha256"):
        rows[col] = source[col].to_numpy()
    for col in cfg.data.label_columns:
        rows[col] = _codes(coded[col], col, path, normalize_labels, "0 or 1").astype("int8").to_numpy()
    classes = {v: [str(c) for c in m.classes_] for v, m in run.load_variable_models().items()}
    for col in cfg.data.class_columns:
        rows[col] = _class_codes(coded[col], col, classes[col], path).to_numpy()
    return rows


def _blank_rows(coded: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Rows empty in every one of ``columns`` (a spreadsheet's trailing empty lines)."""
    blank = np.ones(len(coded), dtype=bool)
    for col in columns:
        blank &= (coded[col].isna() | coded[col].astype(str).str.strip().eq("")).to_numpy()
    return blank


def _check_known(ids: pd.Series, batches: pd.Series, issued: pd.DataFrame, added: pd.DataFrame, run: RunDir,
                 path: Path, id_column: str) -> None:
    """Every (batch, id) handed out by this run, none twice in the file, none added before."""
    handed = set(zip(issued["batch"].astype(str), issued["id"].astype(str)))
    unknown = np.array([(b, i) not in handed for b, i in zip(batches, ids)])
    if unknown.any():
        example = [f"{i} ({b})" for b, i in zip(batches[unknown], ids[unknown])][:3]
        raise DataError(f"{path}: rows {format_rows(np.flatnonzero(unknown) + 1)} name texts that no batch of the "
                        f"run {run.root} handed out (e.g. {', '.join(example)}; columns {id_column!r} and "
                        f"{BATCH_COLUMN!r}). Add the file `lexcoder next {run.root}` wrote, to the same run, without "
                        f"editing those two columns; the run's batches are {sorted(issued['batch'].unique())}.")
    dup = ids.duplicated(keep=False).to_numpy()
    if dup.any():
        raise DataError(f"{path}: rows {format_rows(np.flatnonzero(dup) + 1)} give the same ids "
                        f"{sorted(ids[dup].unique())[:5]} more than once. Keep one row per text.")
    before = ids.isin(set(added["id"].astype(str))).to_numpy()
    if before.any():
        raise DataError(f"{path}: rows {format_rows(np.flatnonzero(before) + 1)} (ids {ids[before].head(3).tolist()}) "
                        f"were added to {run.root} before. Remove them from the file; nothing was recorded.")


def _codes(values: pd.Series, column: str, path: Path, normalize, expected: str) -> pd.Series:
    """``values`` normalised, with a :class:`DataError` naming the rows where a code is missing."""
    codes = normalize(values, column=column, source=str(path))
    empty = codes.isna().to_numpy()
    if empty.any():
        raise DataError(f"{path}: column {column!r} is empty in rows {format_rows(np.flatnonzero(empty) + 1)}. Fill "
                        f"in {expected} for every text you coded, or delete the rows you did not code (add them "
                        "later); nothing was recorded.")
    return codes


def _class_codes(values: pd.Series, column: str, classes: list[str], path: Path) -> pd.Series:
    codes = _codes(values, column, path, normalize_classes, f"one of {classes}").astype(str)
    unknown = ~codes.isin(classes).to_numpy()
    if unknown.any():
        raise DataError(f"{path}: column {column!r} holds {sorted(set(codes[unknown]))[:5]} in rows "
                        f"{format_rows(np.flatnonzero(unknown) + 1)}, which are not classes of the run; its classes "
                        f"are {classes}. Recode those cells (the spelling and case must match).")
    return codes.astype(object)


def _as_text_if_mixed(column: pd.Series) -> pd.Series:
    """An object column holding values of several types (text from the data file, numbers from the batches)
    as text, so every format (Parquet included) can store it; other columns unchanged."""
    if column.dtype != object:
        return column
    kinds = {type(v) for v in column if not (v is None or (isinstance(v, float) and np.isnan(v)))}
    if len(kinds) <= 1:
        return column
    return column.map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else id_to_str(v)
                      if isinstance(v, (int, np.integer, float, np.floating)) else str(v)).astype(object)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
