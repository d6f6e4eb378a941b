"""Code new texts with a trained run: streamed in chunks, written atomically."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .clean import clean_text
from .errors import DataError
from .io import atomic_path, count_rows, iter_table, table_format, write_table
from .pipeline import load_run_model
from .progress import track
from .rundir import RunDir

log = logging.getLogger(__name__)


def predict_frame(model, thresholds: np.ndarray, labels: list[str], texts: pd.Series, clean_cfg
                  ) -> pd.DataFrame:
    """``<label>_prob`` / ``<label>_pred`` columns for ``texts`` (cleaned exactly as at training)."""
    cleaned = [clean_text("" if pd.isna(t) else str(t), clean_cfg) for t in texts]
    P = model.predict_proba(cleaned)
    out = {}
    for j, lab in enumerate(labels):
        out[f"{lab}_prob"] = P[:, j]
        out[f"{lab}_pred"] = (P[:, j] >= thresholds[j]).astype("int8")
    return pd.DataFrame(out, index=texts.index)


def predict_file(run_dir: str | Path, input_path: str | Path, output_path: str | Path, *,
                 text_column: str | None = None, id_column: str | None = None, chunksize: int = 5_000
                 ) -> Path:
    """Code every row of ``input_path`` with the model of ``run_dir``; write ``output_path``.

    The output keeps the input's columns (ids included) and adds ``<label>_prob`` and ``<label>_pred``.
    CSV/TSV/Parquet/JSONL inputs are streamed in chunks of ``chunksize`` rows (bounded memory); the output
    appears only once complete (temporary file + rename).

    Parameters
    ----------
    run_dir : a finished run directory
    input_path, output_path : tables in any supported format (by extension)
    text_column, id_column : column names in the input (default: those of the run's config)
    """
    model, thresholds, cfg = load_run_model(RunDir(Path(run_dir)))
    text_column = text_column or cfg.data.text_column
    id_column = id_column or cfg.data.id_column
    labels = cfg.data.label_columns
    out_fmt = table_format(output_path)
    total = count_rows(input_path)
    chunks = iter_table(input_path, chunksize=chunksize)
    n_done = 0
    with atomic_path(output_path) as tmp:
        writer = _ChunkWriter(tmp, out_fmt, Path(output_path))
        for chunk in track(chunks, description="Coding texts", total=_n_chunks(total, chunksize)):
            if text_column not in chunk.columns:
                raise DataError(f"{input_path}: no column {text_column!r} to code. Name the text column "
                                "with --text-column.")
            if id_column and id_column not in chunk.columns:
                log.warning("%s has no id column %r; rows are kept in input order.", input_path, id_column)
                id_column = None
            coded = pd.concat([chunk, predict_frame(model, thresholds, labels, chunk[text_column], cfg.clean)],
                              axis=1)
            writer.write(coded)
            n_done += len(chunk)
        writer.close()
    log.info("Coded %d rows into %s", n_done, output_path)
    return Path(output_path)


def _n_chunks(total: int | None, chunksize: int) -> int | None:
    return None if total is None else max(1, -(-total // chunksize))


class _ChunkWriter:
    """Append chunks to one file; formats without appending are collected and written at the end."""

    def __init__(self, tmp: Path, fmt: str, final: Path) -> None:
        self.tmp, self.fmt, self.final = tmp, fmt, final
        self.parquet = None
        self.pending: list[pd.DataFrame] = []
        self.first = True

    def write(self, df: pd.DataFrame) -> None:
        if self.fmt in ("csv", "tsv"):
            df.to_csv(self.tmp, mode="w" if self.first else "a", header=self.first, index=False,
                      sep="," if self.fmt == "csv" else "\t")
        elif self.fmt == "jsonl":
            with open(self.tmp, "w" if self.first else "a", encoding="utf-8") as fh:
                df.to_json(fh, orient="records", lines=True, force_ascii=False)
        elif self.fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq
            table = pa.Table.from_pandas(df, preserve_index=False)
            if self.parquet is None:
                self.parquet = pq.ParquetWriter(self.tmp, table.schema)
            self.parquet.write_table(table.cast(self.parquet.schema))
        else:
            self.pending.append(df)
        self.first = False

    def close(self) -> None:
        if self.parquet is not None:
            self.parquet.close()
        if self.pending:
            df = pd.concat(self.pending, ignore_index=True)
            suffix = self.final.suffix
            staged = self.tmp.with_name(self.tmp.name + suffix)  # writer picks the format by extension
            write_table(df, staged)
            staged.replace(self.tmp)
