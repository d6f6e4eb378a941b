"""Code new texts with a trained run: streamed in chunks, written atomically, never over an input."""
from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from .clean import clean_text
from .context import check_context_columns, context_columns, context_on, document_column, model_inputs, \
    whole_documents
from .errors import DataError
from .io import (atomic_path, compression_of, count_rows, iter_table, open_text_output, table_format, write_table,
                 write_text_table)
from .progress import track
from .decide import decide_classes
from .rundir import RunDir, check_output_file
from .safety import neutralise_formulas as neutralise

log = logging.getLogger(__name__)

# formats a spreadsheet opens, whose cells are neutralised against formula injection
SPREADSHEET_FORMATS = ("csv", "tsv", "xlsx")


def chunk_inputs(chunk: pd.DataFrame, cfg, text_column: str, *, source: str, first_row: int
                 ) -> list[str] | pd.DataFrame:
    """The model inputs of a chunk of the input: its texts cleaned exactly as at training, with their
    context (:func:`lexcoder.context.model_inputs`) when the run has one; ``first_row`` (1-based) for
    messages."""
    cleaned = [clean_text("" if pd.isna(t) else str(t), cfg.clean) for t in chunk[text_column]]
    if not context_on(cfg.context):
        return cleaned
    columns = check_context_columns(chunk.reset_index(drop=True), cfg.data, cfg.context, source=source,
                                    first_row=first_row)
    table = pd.DataFrame({"text": cleaned, **{name: values.to_numpy() for name, values in columns.items()}})
    return model_inputs(table, cfg)


def predict_frame(model, thresholds: np.ndarray, labels: list[str], inputs: list[str] | pd.DataFrame, *,
                  variables: dict | None = None, index: pd.Index | None = None) -> pd.DataFrame:
    """The coded columns for the model ``inputs`` (:func:`chunk_inputs`): ``<label>_prob`` /
    ``<label>_pred`` for the 0/1 labels (``model`` may be None without labels), and for each categorical
    variable's model in ``variables`` (:meth:`~lexcoder.rundir.RunDir.load_variable_models`)
    ``<variable>_pred`` (the class its saved rule chooses: the most probable one, or with a per-class bias)
    and ``<variable>_prob_<class>`` per class (temperature-scaled where the run saved a temperature); rows
    indexed by ``index``."""
    out = {}
    if labels:
        P = model.predict_proba(inputs)
        for j, lab in enumerate(labels):
            out[f"{lab}_prob"] = P[:, j]
            out[f"{lab}_pred"] = (P[:, j] >= thresholds[j]).astype("int8")
    for variable, vmodel in (variables or {}).items():
        P = vmodel.predict_proba(inputs)
        out[f"{variable}_pred"] = np.asarray(vmodel.classes_, dtype=object)[decide_classes(vmodel, P)]
        for j, value in enumerate(vmodel.classes_):
            out[f"{variable}_prob_{value}"] = P[:, j]
    return pd.DataFrame(out, index=index)


def coded_columns(labels: list[str], variables: dict) -> list[str]:
    """The columns :func:`predict_frame` adds, in order."""
    return [f"{lab}_{kind}" for lab in labels for kind in ("prob", "pred")] + \
        [c for v, m in variables.items() for c in (f"{v}_pred", *(f"{v}_prob_{c}" for c in m.classes_))]


class Coder:
    """Codes pandas batches with a run's models: the one batch function of every prediction path.

    :func:`predict_file`, sharded prediction (:mod:`lexcoder.distributed.shards`), the Ray engine
    (:mod:`lexcoder.distributed.ray_engine`) and a Spark ``mapInPandas`` all load a ``Coder`` once per
    process and call :meth:`code` on each batch, so every engine writes the same codes.

    Parameters
    ----------
    run_dir : a finished run directory (its models are loaded once, here)
    text_column, id_column : column names in the input (default: those of the run's config)
    """

    def __init__(self, run_dir: str | Path, *, text_column: str | None = None, id_column: str | None = None):
        run = RunDir(Path(run_dir))
        self.cfg = run.load_config()
        self.model, self.thresholds, self.variables = run.load_models()  # each saved model loaded once
        self.labels = list(self.cfg.data.label_columns)
        self.text_column = text_column or self.cfg.data.text_column
        self.id_column = id_column or self.cfg.data.id_column
        self.added = coded_columns(self.labels, self.variables)

    def check(self, chunk: pd.DataFrame, source: str | Path) -> None:
        """Refuse an input without the text column or a column the run's context reads (``chunk``: its
        first rows); warn about a missing id column and about columns the codes replace."""
        _check_input_columns(chunk, Path(source), self.text_column, self.id_column, self.added)
        _check_context_columns(chunk, Path(source), self.cfg)

    def code(self, chunk: pd.DataFrame, *, source: str = "batch", first_row: int = 1) -> pd.DataFrame:
        """``chunk`` (a pandas batch of the input, shape (n, k)) with the coded columns
        (:func:`coded_columns`) appended, replacing input columns of those names; same index, same row
        order. ``source`` and ``first_row`` (1-based) only name the rows in error messages."""
        chunk = chunk.drop(columns=[c for c in self.added if c in chunk.columns])
        inputs = chunk_inputs(chunk, self.cfg, self.text_column, source=source, first_row=first_row)
        return pd.concat([chunk, predict_frame(self.model, self.thresholds, self.labels, inputs,
                                               variables=self.variables, index=chunk.index)], axis=1)

    def coded_schema(self):
        """The Arrow types of the coded columns (``pyarrow.Schema``), the same for every batch: float64
        probabilities, int8 0/1 codes, the class of a categorical variable as text."""
        import pyarrow as pa
        variable_preds = {f"{v}_pred" for v in self.variables}
        return pa.schema([(c, pa.string() if c in variable_preds else pa.int8() if c.endswith("_pred")
                           else pa.float64()) for c in self.added])


def predict_file(run_dir: str | Path, input_path: str | Path, output_path: str | Path, *,
                 text_column: str | None = None, id_column: str | None = None, chunksize: int = 5_000,
                 overwrite: bool = False, neutralise_formulas: bool = True) -> Path:
    """Code every row of ``input_path`` with the model of ``run_dir``; write ``output_path``.

    The output keeps the input's columns (ids included) and adds ``<label>_prob`` and ``<label>_pred``
    per 0/1 label, ``<variable>_pred`` and ``<variable>_prob_<class>`` per categorical variable (input
    columns of those names are replaced, with a warning). CSV/TSV/Parquet/JSONL inputs are streamed
    in chunks of ``chunksize`` rows (bounded memory); the output appears only once complete (temporary
    file + rename), compressed when its name ends in ``.gz``, ``.bz2``, ``.xz``, ``.zip`` (or ``.zst``).

    A run with ``[context]`` needs the input to hold its document, order and metadata columns. Its texts
    are read with their neighbours, so each document is coded whole: the rows of a document must be next
    to each other in the input (sorted by document; in any order within it), and the chunks are re-cut at
    document boundaries (memory holds one chunk plus one document; :func:`lexcoder.context.whole_documents`).
    Neighbours and positions come from the rows of the input: code whole documents, not samples of them.

    Parameters
    ----------
    run_dir : a finished run directory
    input_path, output_path : tables in any supported format (by extension)
    text_column, id_column : column names in the input (default: those of the run's config)
    overwrite : replace an existing ``output_path`` (never the input itself)
    neutralise_formulas : in CSV/TSV/XLSX outputs, prefix ``'`` to text cells a spreadsheet would run as a
        formula (see :func:`lexcoder.safety.neutralise_formulas`); Parquet/JSONL are written as they are

    Raises
    ------
    DataError
        When ``output_path`` is the input, lies inside a run folder, exists (without ``overwrite``) or has
        an unsupported extension, or the input lacks the text column or a column the run's context reads;
        nothing is written then. With context, also when a document's rows are not together (or a
        document/order cell is invalid), found while coding: the partial output is then removed.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    check_output_file(output_path, inputs=[input_path], overwrite=overwrite)
    check_chunksize(chunksize)
    coder = Coder(run_dir, text_column=text_column, id_column=id_column)
    fmt = table_format(output_path)
    safe = neutralise_formulas and fmt in SPREADSHEET_FORMATS
    chunks = checked_chunks(coder, iter_table(input_path, chunksize=chunksize), input_path)
    with atomic_path(output_path) as tmp, _writer(tmp, output_path, input_path, coder.added) as write:
        n_done = code_chunks(coder, chunks, (lambda df: write(neutralise(df))) if safe else write,
                             source=input_path, total=_n_chunks(count_rows(input_path), chunksize))
        if n_done == 0:
            raise DataError(f"{input_path}: no rows to code.")
    log.info("Coded %d rows into %s", n_done, output_path)
    return output_path


def check_chunksize(chunksize: int) -> None:
    if chunksize < 1:
        raise DataError(f"chunksize must be at least 1 row (got {chunksize}).")


def checked_chunks(coder: Coder, chunks: Iterator[pd.DataFrame], source: Path) -> Iterator[pd.DataFrame]:
    """``chunks`` (at least one, maybe empty) after checking the first one's columns; with context
    neighbours re-cut into whole documents (:func:`lexcoder.context.whole_documents`)."""
    first = next(chunks)
    coder.check(first, source)
    chunks = itertools.chain([first], chunks)
    if coder.cfg.context.order_column:  # neighbours: whole documents at a time
        chunks = whole_documents(chunks, document_column(coder.cfg.data, coder.cfg.context), source=str(source))
    return chunks


def code_chunks(coder: Coder, chunks: Iterable[pd.DataFrame], write: Callable[[pd.DataFrame], None], *,
                source: str | Path, total: int | None = None) -> int:
    """Code each chunk with :meth:`Coder.code` and pass it to ``write``; the number of rows coded."""
    n_done = 0
    for chunk in track(chunks, description="Coding texts", total=total):
        if not len(chunk):  # e.g. a header without rows: nothing to code
            continue
        write(coder.code(chunk, source=str(source), first_row=n_done + 1))
        n_done += len(chunk)
    return n_done


def _check_input_columns(chunk: pd.DataFrame, input_path: Path, text_column: str, id_column: str | None,
                         added: list[str]) -> None:
    if text_column not in chunk.columns:
        raise DataError(f"{input_path}: no column {text_column!r} to code (columns: "
                        f"{', '.join(map(str, chunk.columns[:20]))}). Name the text column (--text-column on the command line, text_column in Python).")
    if id_column and id_column not in chunk.columns:
        log.warning("%s has no id column %r; rows are kept in input order.", input_path, id_column)
    replaced = [c for c in added if c in chunk.columns]
    if replaced:
        log.warning("%s already holds %s: replaced by this run's predictions in the output (the input file is "
                    "unchanged).", input_path, ", ".join(replaced))


def _check_context_columns(chunk: pd.DataFrame, input_path: Path, cfg) -> None:
    """The input holds every column the run's context reads (one message naming all that are missing)."""
    missing = [(key, col) for key, col in context_columns(cfg.data, cfg.context) if col not in chunk.columns]
    if missing:
        named = ", ".join(f"{col!r} ([context] {key})" for key, col in missing)
        raise DataError(f"{input_path}: the run's model reads its texts with context, but the input has no column "
                        f"{named} (columns: {', '.join(map(str, chunk.columns[:20]))}). Add the column(s), "
                        "holding what they held in the training data.")


def _n_chunks(total: int | None, chunksize: int) -> int | None:
    return None if total is None else max(1, -(-total // chunksize))


@contextmanager
def _writer(tmp: Path, final: Path, input_path: Path, added: list[str]) -> Iterator:
    """A function that appends a coded chunk to ``tmp`` in the format (and compression) of ``final``."""
    fmt = table_format(final)
    if fmt in ("csv", "tsv", "jsonl"):
        method = compression_of(final)
        inner = final.name[: -len(final.suffix)] if method else final.name
        with open_text_output(tmp, method, inner_name=inner) as fh:
            first = [True]

            def write_text(df: pd.DataFrame) -> None:
                write_text_table(df, fh, fmt, header=first[0])
                first[0] = False
            yield write_text
    elif fmt == "parquet":
        with parquet_writer(tmp, input_path, added) as write_parquet:
            yield write_parquet
    else:  # xlsx / dta cannot be appended to: collect, then write once
        pending: list[pd.DataFrame] = []
        yield pending.append
        if pending:
            staged = tmp.with_name(tmp.name + final.suffix)  # write_table picks the format by extension
            write_table(pd.concat(pending, ignore_index=True), staged)
            staged.replace(tmp)


@contextmanager
def parquet_writer(tmp: Path, input_path: Path, added: list[str], schema=None) -> Iterator:
    """Append chunks to one Parquet file under a schema fixed up front, so no later chunk can break it.

    A Parquet input keeps its own column types. Other inputs are text (CSV) or typed chunk by chunk
    (JSONL, Excel), where a column can be empty in the first chunk and filled later: their columns are
    written as text, the predicted columns as float64 / int8. ``schema`` (a ``pyarrow.Schema``) fixes the
    types before the first chunk (shards of one input must agree even where a shard has no rows). What the
    block puts in ``write.footer`` (a dict of bytes/str) is stored in the file's key-value metadata.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    typed = table_format(input_path) == "parquet"
    writer = None

    def open_writer(fixed) -> None:
        nonlocal writer
        writer = pq.ParquetWriter(tmp, fixed.remove_metadata())
    try:
        if schema is not None:
            open_writer(schema)

        def write(df: pd.DataFrame) -> None:
            if not typed:
                df = df.assign(**{c: _as_text(df[c]) for c in df.columns if c not in added})
            table = pa.Table.from_pandas(df, preserve_index=False)
            if writer is None:
                open_writer(pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f
                                       for f in table.schema]))
            writer.write_table(table.select(writer.schema.names).cast(writer.schema))
        write.footer = {}
        yield write
        if writer is not None and write.footer:
            writer.add_key_value_metadata(write.footer)
    finally:
        if writer is not None:
            writer.close()


def output_schema(coder: Coder, input_path: Path):
    """The Arrow schema of the Parquet file :func:`predict_file` writes for ``input_path``, known before
    any row is coded: a Parquet input's own column types (text for other formats), then the coded columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    if table_format(input_path) == "parquet":
        fields = [f for f in pq.ParquetFile(input_path).schema_arrow if f.name not in coder.added]
        fields = [f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in fields]
    else:
        names = [c for c in next(iter_table(input_path, chunksize=1)).columns if c not in coder.added]
        fields = [pa.field(str(name), pa.string()) for name in names]
    return pa.schema(fields + list(coder.coded_schema()))


def _as_text(values: pd.Series) -> pd.Series:
    """Cells as text (missing stays missing): one type for a column, whatever each chunk holds."""
    return values.map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA
                      else str(v)).astype(object)
