"""Reading tables: :func:`read_table`, :func:`iter_table` (in chunks), :func:`count_rows`,
:func:`excel_sheet_columns`.

- every column that looks like text stays text (ids are never reformatted) and only an empty cell is
  missing ("NA" typed in a cell is text), in every format;
- a file is checked before it is parsed: it exists, is a readable non-empty file, and its first bytes agree
  with its extension (:mod:`lexcoder.io.formats`);
- every low-level failure (a parser error, a byte that is not UTF-8, a missing permission) becomes one
  :class:`~lexcoder.errors.DataError` naming the file (and the line, sheet or column) and the fix:
  :func:`_reading` is that boundary;
- a header that names a column twice is refused (pandas would silently rename the copy).
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import pandas as pd

from ..errors import DataError, did_you_mean, format_rows
from .formats import (_DELIMITERS, COMPRESSIONS, _check_signature, _kind, _pick_delimiter, _preview, _refuse,
                      _split_rows, bom_encoding, describe_undecodable, table_format)

log = logging.getLogger(__name__)

_SAMPLE_BYTES = 64 * 1024  # enough lines to tell the delimiter; smaller than csv's field size limit
_RESAVE_UTF8 = ("Re-save it as UTF-8 (Excel: 'CSV UTF-8'; LibreOffice: character set 'Unicode (UTF-8)'; "
                "Stata: `export delimited, replace`).")


def read_table(path: str | Path, *, sheet: str | int | None = None) -> pd.DataFrame:
    """Read a whole table; every column that looks like text stays text (ids are never reformatted).

    CSV/TSV: the encoding follows the byte-order mark (UTF-8 otherwise) and the delimiter is detected
    among ``, ; tab |`` (logged when it is not the one the extension implies). Excel: ``sheet`` is a
    name or a 0-based number (default: the first sheet).

    Raises
    ------
    DataError
        If the file is missing, a folder, unreadable, empty, not what its extension says, of an unknown
        type, has duplicate column names, or cannot be parsed; the message names the file (and line,
        sheet or column) and the fix.
    """
    p, fmt = _open_check(path)
    if fmt in ("csv", "tsv"):
        options = delimited_options(p, fmt)
        with _reading(p, fmt, options["sep"]):
            return pd.read_csv(p, **options)
    with _reading(p, fmt):
        if fmt == "jsonl":
            with contextlib.closing(_iter_jsonl(p, None)) as frames:
                return next(frames)
        if fmt == "xlsx":
            return _read_excel(p, sheet)
        df = pd.read_parquet(p) if fmt == "parquet" else _read_stata(p)
    _check_header(p, list(df.columns))
    return df


def iter_table(path: str | Path, *, chunksize: int = 10_000, sheet: str | int | None = None
               ) -> Iterator[pd.DataFrame]:
    """Yield ``path`` in chunks of at most ``chunksize`` rows (bounded memory for big corpora).

    Always yields at least one (possibly empty) chunk, so callers see the columns. Errors as in
    :func:`read_table`.
    """
    p, fmt = _open_check(path)
    if fmt in ("csv", "tsv"):
        options = delimited_options(p, fmt)
        with _reading(p, fmt, options["sep"]):
            yield from pd.read_csv(p, chunksize=chunksize, **options)
    elif fmt in ("parquet", "jsonl"):
        with _reading(p, fmt):
            yield from _iter_parquet(p, chunksize) if fmt == "parquet" else _iter_jsonl(p, chunksize)
    else:  # xlsx / dta: no streaming reader worth having
        df = read_table(p, sheet=sheet)
        for start in range(0, max(len(df), 1), chunksize):
            yield df.iloc[start:start + chunksize]


def count_rows(path: str | Path) -> int | None:
    """Cheap row count for progress bars (None where counting would mean reading everything).

    Never raises: a file that cannot be counted is reported by the reader that reads it.
    """
    try:
        if table_format(path) == "parquet":
            import pyarrow.parquet as pq
            return pq.ParquetFile(path).metadata.num_rows
    except Exception:  # noqa: BLE001 - only a progress bar depends on it
        return None
    return None


def excel_sheet_columns(path: str | Path) -> dict[str, list[str]]:
    """The column names (first row) of every sheet of an Excel workbook, in the workbook's order."""
    p, _ = _open_check(path)
    columns = {}
    with _reading(p, "xlsx"), pd.ExcelFile(p) as book:
        for name in book.sheet_names:
            first = pd.read_excel(book, sheet_name=name, header=None, nrows=1, dtype=object)
            columns[name] = [_header_name(v, i) for i, v in enumerate(first.iloc[0])] if len(first) else []
    return columns


def _check_header(p: str | Path, names: list[Any], where: str = "") -> None:
    """Refuse a table whose header names a column twice (pandas would silently rename the copy ``x.1``)."""
    named = [str(n) for n in names if str(n).strip() and not str(n).startswith("Unnamed: ")]
    dupes = sorted({n for n in named if named.count(n) > 1})
    if dupes:
        positions = [i + 1 for i, n in enumerate(names) if str(n) == dupes[0]]
        raise DataError(
            f"{p}{where}: the header names the column {dupes[0]!r} {len(positions)} times (columns "
            f"{format_rows(positions)})" + (f"; also {dupes[1:]}" if len(dupes) > 1 else "")
            + ". Each column needs its own name: rename or delete the copies.")


# -- reader helpers -----------------------------------------------------------------------------------
def _open_check(path: str | Path) -> tuple[Path, str]:
    """``path`` and its format, after checking that it is a readable, non-empty file of that format."""
    p = Path(path)
    if p.is_dir():
        raise DataError(f"{p}: is a folder, not a file. Give the path of the table file{_tables_in(p)}.")
    if not p.exists():
        raise DataError(f"{p}: file not found{_similar_file(p)}. Check data.path in your config (relative "
                        "paths are resolved against the config file's folder).")
    if not p.is_file():
        raise DataError(f"{p}: is not a regular file (a pipe or a device?). Save the table to a file first.")
    fmt = table_format(p)
    if not os.access(p, os.R_OK):
        raise DataError(_no_permission(p))
    if p.stat().st_size == 0:
        raise DataError(f"{p}: the file is empty (0 bytes). Check that it was saved completely and that "
                        "this is the file you meant.")
    _check_signature(p, fmt, _head(p, 4096))
    return p, fmt


def _no_permission(p: Path) -> str:
    return (f"{p}: you have no permission to read this file. Ask its owner for read access, or copy it "
            "to a folder of your own.")


def _tables_in(folder: Path) -> str:
    try:
        names = sorted(f.name for f in folder.iterdir() if f.is_file() and _is_table_name(f))[:5]
    except OSError:
        return ""
    return f" inside it, e.g. {folder / names[0]} (it holds {', '.join(names)})" if names else " inside it"


def _is_table_name(p: Path) -> bool:
    try:
        table_format(p)
    except DataError:
        return False
    return True


def _similar_file(p: Path) -> str:
    if not p.parent.is_dir():
        return f" (the folder {p.parent} does not exist either)"
    try:
        siblings = [f.name for f in p.parent.iterdir()]
    except OSError:
        return ""
    return did_you_mean(p.name, siblings)


def _head(p: Path, n: int) -> bytes:
    """The first ``n`` bytes of the file as stored (compressed or not)."""
    try:
        with open(p, "rb") as fh:
            return fh.read(n)
    except PermissionError:
        raise DataError(_no_permission(p)) from None
    except OSError as err:
        raise DataError(f"{p}: could not be opened ({err.strerror or err}).") from None


def _open_binary(p: Path) -> IO[bytes]:
    """The file's bytes, decompressed according to its last suffix (as pandas does)."""
    method = COMPRESSIONS.get(p.suffix.lower()) if table_format(p) in ("csv", "tsv", "jsonl") else None
    if method is None:
        return open(p, "rb")
    if method == "zip":
        import zipfile
        archive = zipfile.ZipFile(p)
        members = [m for m in archive.namelist() if not m.endswith("/")]
        if len(members) != 1:
            raise DataError(f"{p}: a .zip must hold exactly one table file; this one holds {len(members)}. "
                            "Unzip it and point data.path at the table.")
        return archive.open(members[0])
    if method == "zstd":
        try:
            import zstandard
        except ImportError:
            raise DataError(f"{p}: reading .zst needs the zstandard package (pip install zstandard).") from None
        return zstandard.open(p, "rb")
    import bz2
    import gzip
    import lzma
    return {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open}[method](p, "rb")


def _text_sample(p: Path, fmt: str) -> bytes:
    """The first (decompressed) bytes of a text table."""
    with _reading(p, fmt), _open_binary(p) as fh:
        return fh.read(_SAMPLE_BYTES)


def delimited_options(p: Path, fmt: str) -> dict[str, Any]:
    """``pandas.read_csv`` arguments for ``p``: encoding from the byte-order mark, detected delimiter."""
    sample = _text_sample(p, fmt)
    encoding = bom_encoding(sample)
    if _kind(sample) != "text":  # e.g. a compressed file that holds no text
        _refuse(p, fmt, _kind(sample))
    text = sample.decode(encoding, errors="replace")
    rows = {d: _split_rows(text, d, truncated=len(sample) == _SAMPLE_BYTES) for d in _DELIMITERS}
    sep = _pick_delimiter(p, fmt, {d: [len(r) for r in rs] for d, rs in rows.items()})
    if rows[sep]:
        _check_header(p, rows[sep][0])
    return {"sep": sep, "encoding": encoding, "dtype": str, "keep_default_na": False, "na_values": [""],
            "encoding_errors": "strict"}


@contextlib.contextmanager
def _reading(p: Path, fmt: str, sep: str | None = None) -> Iterator[None]:
    """Turn any failure of a parser into one :class:`DataError` that names the file and the fix."""
    try:
        yield
    except DataError:
        raise
    except UnicodeDecodeError as err:
        raise DataError(f"{p}: not UTF-8 text: {_where_undecodable(p, err)}. {_RESAVE_UTF8}") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{p}: no column names: the file holds only blank lines. Check that this is the "
                        "file you meant.") from None
    except PermissionError:
        raise DataError(_no_permission(p)) from None
    except Exception as err:  # any parser failure becomes one clear message
        raise DataError(_parse_failure(p, fmt, sep, err)) from None


def _where_undecodable(p: Path, err: UnicodeDecodeError) -> str:
    if err.encoding.replace("_", "-").lower() not in ("utf-8", "utf8", "utf-8-sig"):
        return f"{err.reason} at byte {err.start}"
    try:
        with _open_binary(p) as fh:
            return describe_undecodable(fh)
    except Exception:  # noqa: BLE001 - the message without the line is still right
        return f"{err.reason} at byte {err.start}"


def _parse_failure(p: Path, fmt: str, sep: str | None, err: Exception) -> str:
    fields = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(err))
    if fields and sep:
        header, line, found = (int(g) for g in fields.groups())
        return (f"{p}: could not be read as {fmt.upper()}: data row {line - 1} has {found} fields but the "
                f"header has {header}. A text that contains {_DELIMITERS[sep]} must be in double quotes "
                "(spreadsheet programs do this when they save a CSV): fix that row, or re-save the file "
                "from a spreadsheet program.")
    detail = str(err).strip().replace("\n", " ")
    return (f"{p}: could not be read as {fmt.upper()} ({type(err).__name__}: {detail}). Check that the file "
            "is complete and of the type its extension says.")


def _iter_jsonl(p: Path, chunksize: int | None) -> Iterator[pd.DataFrame]:
    """JSON lines (one object per line; a ``.json`` file may also hold one array of objects)."""
    sample = _text_sample(p, "jsonl")
    encoding = bom_encoding(sample)
    if _kind(sample) != "text":
        _refuse(p, "jsonl", _kind(sample))
    with _open_binary(p) as raw, io.TextIOWrapper(raw, encoding=encoding) as fh:
        if sample.decode(encoding, errors="replace").lstrip().startswith("["):
            yield from _frames(_json_array(p, fh.read()), chunksize)
        else:
            yield from _frames((_json_record(p, line, n) for n, line in enumerate(fh, 1) if line.strip()),
                               chunksize)


def _frames(records: Iterable[dict], chunksize: int | None) -> Iterator[pd.DataFrame]:
    """``records`` as DataFrames of at most ``chunksize`` rows (at least one frame, maybe empty)."""
    batch: list[dict] = []
    done = False
    for record in records:
        batch.append(record)
        if chunksize and len(batch) >= chunksize:
            yield pd.DataFrame.from_records(batch)
            batch, done = [], True
    if batch or not done:
        yield pd.DataFrame.from_records(batch)


def _json_record(p: Path, line: str, number: int) -> dict:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as err:
        hint = " (a pretty-printed JSON file is not JSON lines)" if line.strip() == "{" else ""
        raise DataError(f"{p}: line {number} is not valid JSON ({err.msg.removesuffix(' at')} at character "
                        f"{err.colno}): {_preview(line)}. Each line must be one complete JSON object such as "
                        f'{{"id": "a1", "text": "...", "remorse": 0}}{hint}: fix or delete that line.') from None
    if not isinstance(value, dict):
        raise DataError(f"{p}: line {number} holds a JSON {type(value).__name__}, not an object: "
                        f"{_preview(line)}. Each line must be one JSON object with the column names as keys.")
    return value


def _json_array(p: Path, text: str) -> list[dict]:
    try:
        records = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{p}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}). Fix it, "
                        "or write JSON lines (one object per line).") from None
    bad = next((i for i, r in enumerate(records) if not isinstance(r, dict)), None)
    if bad is not None:
        raise DataError(f"{p}: element {bad + 1} of the JSON array is a {type(records[bad]).__name__}, "
                        "not an object: every element must be one row, with the column names as keys.")
    return records


def _iter_parquet(p: Path, chunksize: int) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq
    source = pq.ParquetFile(p)
    _check_header(p, source.schema_arrow.names)
    done = False
    for batch in source.iter_batches(batch_size=chunksize):
        done = True
        yield batch.to_pandas()
    if not done:
        yield source.schema_arrow.empty_table().to_pandas()


def _read_excel(p: Path, sheet: str | int | None) -> pd.DataFrame:
    with pd.ExcelFile(p) as book:
        name = _pick_sheet(p, book.sheet_names, sheet)
        # only an empty cell is missing: "NA", "None" or "null" typed in a cell are text (as in CSV)
        cells = pd.read_excel(book, sheet_name=name, header=None, dtype=object, keep_default_na=False,
                              na_values=[""])
    if cells.empty:
        return pd.DataFrame()
    names = [_header_name(v, i) for i, v in enumerate(cells.iloc[0])]
    _check_header(p, names, f" (sheet {name!r})")
    body = cells.iloc[1:].reset_index(drop=True)
    body.columns = names
    return body


def _header_name(value: Any, position: int) -> str:
    """A header cell as a column name: text as it is, ``2020.0`` as ``"2020"``, empty as pandas names it."""
    if value is None or (isinstance(value, float) and value != value):
        return f"Unnamed: {position}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _pick_sheet(p: Path, names: list[str], sheet: str | int | None) -> str:
    if sheet is None:
        return names[0]
    listed = ", ".join(repr(n) for n in names)
    if isinstance(sheet, int) and not isinstance(sheet, bool):
        if 0 <= sheet < len(names):
            return names[sheet]
        raise DataError(f"{p}: sheet = {sheet}, but the workbook has {len(names)} sheet(s): {listed} "
                        "(numbered from 0). Set sheet = \"<name>\" in [data].")
    if sheet in names:
        return sheet
    raise DataError(f"{p}: the workbook has no sheet named {sheet!r}{did_you_mean(sheet, names)}. Its sheets "
                    f"are: {listed}. Set sheet = \"<name>\" in [data].")


def _read_stata(p: Path) -> pd.DataFrame:
    try:
        return pd.read_stata(p, convert_categoricals=True)
    except ValueError as err:
        if "value label" not in str(err).lower():
            raise
        log.warning("%s: the Stata value labels cannot be used (%s); reading the numeric codes instead.",
                    p.name, str(err).splitlines()[0])
        return pd.read_stata(p, convert_categoricals=False)
