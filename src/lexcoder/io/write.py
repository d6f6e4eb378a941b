"""Writing files: tables in every format lexcoder reads, JSON and text, each one atomically
(:mod:`lexcoder.io.atomic`); and the two small readers that go with them, :func:`read_json` and
:func:`file_sha256`.

- a table is written in the format its extension names, compressed when the name ends in ``.gz``, ``.zip``
  ..., so every table lexcoder writes reads back with :func:`~lexcoder.io.read_table`;
- text in an Excel cell is stored as text, never as a live formula;
- JSON has ``null`` for NaN and infinities (other tools cannot read ``NaN``) and plain numbers for numpy
  values.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import DataError
from .atomic import atomic_path
from .formats import compression_of, table_format


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` atomically in the format given by the extension of ``path``.

    ``.gz``, ``.bz2``, ``.xz``, ``.zip`` (and ``.zst`` with the zstandard package) compress CSV, TSV and
    JSON-lines output, so every file lexcoder writes reads back with :func:`read_table`.
    """
    path = Path(path)
    fmt = table_format(path)
    method = compression_of(path)
    with atomic_path(path) as tmp:
        if fmt in ("csv", "tsv", "jsonl"):
            inner = path.name[: -len(path.suffix)] if method else path.name
            with open_text_output(tmp, method, inner_name=inner) as fh:
                write_text_table(df, fh, fmt)
        elif fmt == "parquet":
            df.to_parquet(tmp, index=False)
        elif fmt == "xlsx":
            _write_xlsx(df, tmp)
        else:
            df.to_stata(tmp, write_index=False, version=118)
    return path


def write_text_table(df: pd.DataFrame, fh: Any, fmt: str, *, header: bool = True) -> None:
    """Append ``df`` to an open text handle as CSV, TSV or JSON lines (no index)."""
    if fmt == "jsonl":
        if len(df):  # pandas ends JSON lines with a newline (and writes a bare one for no rows)
            df.to_json(fh, orient="records", lines=True, force_ascii=False)
    else:
        df.to_csv(fh, index=False, header=header, sep="," if fmt == "csv" else "\t", lineterminator="\n")


@contextlib.contextmanager
def open_text_output(path: Path, method: str | None, *, inner_name: str) -> Iterator[Any]:
    """A text handle on ``path`` that compresses with ``method`` (None, gzip, bz2, xz, zip, zstd)."""
    if method is None:
        with open(path, "w", encoding="utf-8", newline="") as fh:
            yield fh
        return
    if method == "zip":
        import zipfile
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, \
                archive.open(inner_name, "w") as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as fh:
            yield fh
        return
    if method == "zstd":
        try:
            import zstandard
        except ImportError:
            raise DataError(f"{path}: writing .zst needs the zstandard package (pip install zstandard); "
                            "or use .gz.") from None
        with open(path, "wb") as raw, zstandard.ZstdCompressor().stream_writer(raw) as z, \
                io.TextIOWrapper(z, encoding="utf-8", newline="") as fh:
            yield fh
        return
    import bz2
    import gzip
    import lzma
    opener = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open}[method]
    with opener(path, "wt", encoding="utf-8", newline="") as fh:
        yield fh


def _write_xlsx(df: pd.DataFrame, path: Path) -> None:
    """Write ``df`` to one sheet; text is always stored as text, never as a live formula.

    (openpyxl stores any string starting with ``=`` as a formula; a text read from data that Excel would
    run is still text to lexcoder. :func:`lexcoder.safety.neutralise_formulas` guards the cells users edit.)
    """
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        df.to_excel(writer, index=False)
        for row in writer.sheets[next(iter(writer.sheets))].iter_rows():
            for cell in row:
                if cell.data_type == "f":
                    cell.data_type = "s"


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


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (recorded in the manifest as the data hash)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
