"""Reading and writing tables in the formats researchers use, safely.

Readers turn every low-level failure into a :class:`~lexcoder.errors.DataError` naming the file;
writers go through a temporary file and an atomic rename so no half-written output is ever left.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import DataError

FORMATS = {
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".txt": "tsv", ".parquet": "parquet", ".pq": "parquet",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".xlsx": "xlsx", ".xlsm": "xlsx", ".dta": "dta",
}


def table_format(path: str | Path) -> str:
    """The format of ``path`` from its extension (``.gz`` etc. allowed for text formats)."""
    p = Path(path)
    suffixes = [s.lower() for s in p.suffixes]
    if suffixes and suffixes[-1] in {".gz", ".bz2", ".zip", ".xz", ".zst"}:
        suffixes = suffixes[:-1]
    fmt = FORMATS.get(suffixes[-1] if suffixes else "")
    if fmt is None:
        raise DataError(
            f"{p}: unsupported file type {''.join(p.suffixes) or '(no extension)'}. "
            f"Use one of: {', '.join(sorted(set(FORMATS)))} (CSV/TSV/JSONL may be gzipped)."
        )
    return fmt


def read_table(path: str | Path, *, sheet: str | int | None = None) -> pd.DataFrame:
    """Read a whole table; every column that looks like text stays text (ids are never reformatted).

    Raises
    ------
    DataError
        If the file is missing, of an unknown type, or cannot be parsed.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: file not found. Check data.path in your config (relative paths are "
                        "resolved against the config file's folder).")
    fmt = table_format(p)
    try:
        if fmt in ("csv", "tsv"):
            return pd.read_csv(p, sep="," if fmt == "csv" else "\t", dtype=str, keep_default_na=False,
                               na_values=[""], encoding_errors="strict")
        if fmt == "parquet":
            return pd.read_parquet(p)
        if fmt == "jsonl":
            return pd.read_json(p, lines=True, dtype=False)
        if fmt == "xlsx":
            return pd.read_excel(p, sheet_name=0 if sheet is None else sheet, dtype=object)
        return pd.read_stata(p, convert_categoricals=True)
    except UnicodeDecodeError as err:
        raise DataError(f"{p}: not UTF-8 text ({err.reason} at byte {err.start}). Re-save it as UTF-8 "
                        "(Excel: 'CSV UTF-8'; Stata: `export delimited, replace`).") from None
    except Exception as err:  # any parser failure becomes one clear message
        raise DataError(f"{p}: could not be read as {fmt.upper()} ({type(err).__name__}: {err}). "
                        "Check that the file is complete and of the type its extension says.") from None


def iter_table(path: str | Path, *, chunksize: int = 10_000, sheet: str | int | None = None
               ) -> Iterator[pd.DataFrame]:
    """Yield ``path`` in chunks of at most ``chunksize`` rows (bounded memory for big corpora)."""
    p = Path(path)
    fmt = table_format(p) if p.is_file() else None
    try:
        if fmt in ("csv", "tsv"):
            yield from pd.read_csv(p, sep="," if fmt == "csv" else "\t", dtype=str, keep_default_na=False,
                                   na_values=[""], chunksize=chunksize)
            return
        if fmt == "parquet":
            import pyarrow.parquet as pq
            for batch in pq.ParquetFile(p).iter_batches(batch_size=chunksize):
                yield batch.to_pandas()
            return
        if fmt == "jsonl":
            yield from pd.read_json(p, lines=True, dtype=False, chunksize=chunksize)
            return
    except DataError:
        raise
    except Exception as err:
        raise DataError(f"{p}: could not be read ({type(err).__name__}: {err}).") from None
    df = read_table(p, sheet=sheet)  # xlsx / dta: no streaming reader worth having
    for start in range(0, max(len(df), 1), chunksize):
        yield df.iloc[start:start + chunksize]


def count_rows(path: str | Path) -> int | None:
    """Cheap row count for progress bars (None where counting would mean reading everything)."""
    p = Path(path)
    fmt = table_format(p)
    if fmt == "parquet":
        import pyarrow.parquet as pq
        return pq.ParquetFile(p).metadata.num_rows
    return None


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` atomically in the format given by the extension of ``path``."""
    path = Path(path)
    fmt = table_format(path)
    with atomic_path(path) as tmp:
        if fmt in ("csv", "tsv"):
            df.to_csv(tmp, index=False, sep="," if fmt == "csv" else "\t",
                      compression="gzip" if path.suffix == ".gz" else None)
        elif fmt == "parquet":
            df.to_parquet(tmp, index=False)
        elif fmt == "jsonl":
            df.to_json(tmp, orient="records", lines=True, force_ascii=False)
        elif fmt == "xlsx":
            df.to_excel(tmp, index=False, engine="openpyxl")
        else:
            df.to_stata(tmp, write_index=False, version=118)
    return path


def write_json(obj: Any, path: str | Path) -> Path:
    """Write JSON atomically (NaN written as null, so other tools can read it)."""
    text = json.dumps(_json_safe(obj), indent=2, ensure_ascii=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return Path(path)


def write_text(text: str, path: str | Path) -> Path:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _json_safe(obj: Any) -> Any:
    import math

    import numpy as np
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (recorded in the manifest as the data hash)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
