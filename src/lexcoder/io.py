"""Reading and writing tables in the formats researchers use, safely.

Readers turn every low-level failure into a :class:`~lexcoder.errors.DataError` naming the file;
writers go through a temporary file and an atomic rename so no half-written output is ever left.
"""
from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import pandas as pd

from .errors import DataError, LexcoderError, did_you_mean, format_rows

log = logging.getLogger(__name__)

FORMATS = {
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".txt": "tsv", ".parquet": "parquet", ".pq": "parquet",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".xlsx": "xlsx", ".xlsm": "xlsx", ".dta": "dta",
}
_FORMAT_NAMES = {"csv": "CSV", "tsv": "TSV", "parquet": "Parquet", "jsonl": "JSON lines", "xlsx": "an Excel workbook",
                 "dta": "a Stata file"}
# formats lexcoder does not read, with the way to get a readable file out of them
_OTHER_FORMATS = {
    ".xls": "an Excel 97-2003 workbook: open it in Excel and save it as Excel Workbook (.xlsx)",
    ".ods": "a LibreOffice spreadsheet: save it as Excel 2007-365 (.xlsx) or as CSV (UTF-8)",
    ".sav": "an SPSS file: save it as Stata (.dta) or CSV",
    ".rds": "an R object: write it with write.csv() or arrow::write_parquet()",
    ".rdata": "an R workspace: write the table with write.csv() or arrow::write_parquet()",
    ".docx": "a Word document: lexcoder reads tables with one row per text (CSV, Excel, ...)",
    ".pdf": "a PDF document: lexcoder reads tables with one row per text (CSV, Excel, ...)",
}
_DELIMITERS = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "vertical bars"}
_SAMPLE_BYTES = 64 * 1024  # enough lines to tell the delimiter; smaller than csv's field size limit
_CONTROL_BYTES = bytes([*range(0, 9), *range(14, 32), 127])  # not tab, newline, form feed, carriage return
# what a file is, from its first bytes: kind -> (signature, description, extension that reads it)
_SIGNATURES = {
    "zip": (b"PK\x03\x04", "a zip archive (an .xlsx workbook is one)", ".xlsx"),
    "parquet": (b"PAR1", "a Parquet file", ".parquet"),
    "dta": (b"<stata_dta>", "a Stata file", ".dta"),
    "ole2": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel 97-2003 (.xls) workbook or a password-protected "
             "Office file", None),
    "gzip": (b"\x1f\x8b", "gzip-compressed", None),
    "bz2": (b"BZh", "bz2-compressed", None),
    "xz": (b"\xfd7zXZ\x00", "xz-compressed", None),
    "zstd": (b"\x28\xb5\x2f\xfd", "zstd-compressed", None),
    "pdf": (b"%PDF-", "a PDF document", None),
}
_BOMS = ((b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe\x00\x00", "utf-32"), (b"\xef\xbb\xbf", "utf-8-sig"),
         (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))
_RESAVE_UTF8 = ("Re-save it as UTF-8 (Excel: 'CSV UTF-8'; LibreOffice: character set 'Unicode (UTF-8)'; "
                "Stata: `export delimited, replace`).")


def table_format(path: str | Path) -> str:
    """The format of ``path`` from its extension (``.gz`` etc. allowed for text formats)."""
    p = Path(path)
    suffixes = [s.lower() for s in p.suffixes]
    if suffixes and suffixes[-1] in {".gz", ".bz2", ".zip", ".xz", ".zst"}:
        suffixes = suffixes[:-1]
    fmt = FORMATS.get(suffixes[-1] if suffixes else "")
    if fmt is None:
        other = _OTHER_FORMATS.get(suffixes[-1] if suffixes else "")
        raise DataError(
            f"{p}: unsupported file type {''.join(p.suffixes) or '(no extension)'}"
            + (f" ({other})" if other else "")
            + f". Use one of: {', '.join(sorted(set(FORMATS)))} (CSV/TSV/JSONL may be gzipped).")
    return fmt


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
        options = _delimited_options(p, fmt)
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
        options = _delimited_options(p, fmt)
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


def bom_encoding(head: bytes) -> str:
    """The text encoding a byte-order mark at the start of ``head`` announces (``"utf-8"`` without one)."""
    return next((enc for bom, enc in _BOMS if head.startswith(bom)), "utf-8")


def describe_undecodable(lines: Iterable[bytes]) -> str:
    """Where the first line of ``lines`` that is not valid UTF-8 is, in words, for an error message.

    Shows the line read as Windows-1252/Latin-1 (what a file that is not UTF-8 usually is).
    """
    for number, line in enumerate(lines, 1):
        try:
            line.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as err:
            shown = line.rstrip(b"\r\n").decode("cp1252", errors="replace")
            return (f"line {number} has the byte 0x{line[err.start]:02X} (character {err.start + 1}), which "
                    f"is not UTF-8; read as Windows-1252/Latin-1 the line says {_preview(shown)}")
    return "it is not valid UTF-8"


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


def _kind(head: bytes) -> str:
    """What the first bytes say a file is: a key of ``_SIGNATURES``, ``"text"`` or ``"binary"``."""
    for kind, (signature, _, _) in _SIGNATURES.items():
        if head.startswith(signature):
            return kind
    if bom_encoding(head) != "utf-8":
        return "text"
    # text has next to no control characters (a stray one in a cell is fine); binary data has ~10 %
    control = len(head) - len(head.translate(None, _CONTROL_BYTES))
    return "binary" if control > 0.05 * len(head) else "text"


def _check_signature(p: Path, fmt: str, head: bytes) -> None:
    """Refuse a file whose first bytes show that it is not what its extension says."""
    kind = _kind(head)
    compression = COMPRESSIONS.get(p.suffix.lower()) if fmt in ("csv", "tsv", "jsonl") else None
    if compression is not None:
        if kind == "text":
            raise DataError(f"{p}: could not be read as {fmt.upper()}: the name ends in {p.suffix} but the "
                            f"file is not {compression}-compressed (it is plain text). Rename it to {p.stem}.")
        return  # what the decompressed bytes are is checked when they are read
    expected = {"xlsx": {"zip"}, "parquet": {"parquet"}, "dta": {"dta", "binary"}}.get(fmt, {"text"})
    if kind not in expected:  # ("binary": Stata files before version 13 have no signature)
        _refuse(p, fmt, kind)


def _refuse(p: Path, fmt: str, kind: str) -> None:
    """Raise the error for a file of ``kind`` (see :func:`_kind`) that was to be read as ``fmt``."""
    problem = f"could not be read as {fmt.upper()}: the file is"
    if kind == "text":
        raise DataError(f"{p}: {problem} plain text, not {_FORMAT_NAMES[fmt]}. If it is a CSV (or TSV) "
                        "table, rename it to end in .csv (or .tsv).")
    if kind == "binary":
        raise DataError(f"{p}: {problem} binary data, not {_FORMAT_NAMES[fmt]} text: check that it is the "
                        "file you meant. (Text saved as UTF-16 without a byte-order mark looks like this too: "
                        "re-save it as UTF-8.)")
    _, what, extension = _SIGNATURES[kind]
    compressed = next((s for s, m in COMPRESSIONS.items() if m == kind), None)
    fix = {"ole2": "Open it in Excel and save it as Excel Workbook (.xlsx), without a password.",
           "pdf": "lexcoder reads tables with one row per text: export the texts to CSV or Excel first."}.get(
        kind, f"Rename it to end in {extension}." if extension else f"Rename it to {p.name}{compressed}.")
    raise DataError(f"{p}: {problem} {what}, not {_FORMAT_NAMES[fmt]}. {fix}")


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


def _delimited_options(p: Path, fmt: str) -> dict[str, Any]:
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


def _split_rows(text: str, delimiter: str, *, truncated: bool) -> list[list[str]]:
    """The non-blank rows of ``text`` split by ``delimiter`` (the last dropped if the sample cut it)."""
    try:
        rows = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) if r]
    except csv.Error:
        return []
    return rows[:-1] if truncated and len(rows) > 1 else rows


def _pick_delimiter(p: Path, fmt: str, counts: dict[str, list[int]]) -> str:
    """The delimiter that splits every sampled row into as many fields as the header (≥ 2 of them).

    The extension's own delimiter wins if it fits; another one is used (and logged) if exactly one fits;
    if none fits, the one that splits the header most (pandas then names the row that does not fit).
    """
    default = "," if fmt == "csv" else "\t"
    fits = [d for d, c in counts.items() if c and c[0] >= 2 and len(set(c)) == 1]
    if default in fits:
        return default
    if len(fits) > 1:
        options = " and ".join(f"{_DELIMITERS[d]} ({counts[d][0]} columns)" for d in fits)
        raise DataError(f"{p}: cannot tell which character separates the columns: {options} both give a "
                        "consistent table. Re-save the file with commas (.csv) or tabs (.tsv) between the "
                        "columns.")
    sep = fits[0] if fits else max(counts, key=lambda d: (counts[d][0] if counts[d] else 0, d == default))
    if sep != default:
        log.info("%s: the columns are separated by %s, not %s as in a %s file; reading it that way.",
                 p.name, _DELIMITERS[sep], _DELIMITERS[default], fmt.upper())
    return sep


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


def _preview(line: str, width: int = 80) -> str:
    line = line.rstrip("\r\n")
    return repr(line if len(line) <= width else line[:width] + "…")


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


COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zip": "zip", ".zst": "zstd"}
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


def compression_of(path: str | Path) -> str | None:
    """The compression a file name asks for (``coded.csv.gz`` → ``"gzip"``), or None.

    Raises
    ------
    DataError
        For a compression suffix on a format that has its own (Parquet, Excel, Stata).
    """
    p = Path(path)
    method = COMPRESSIONS.get(p.suffix.lower())
    if method is not None and table_format(p) in ("parquet", "xlsx", "dta"):
        raise DataError(f"{p}: {table_format(p)} files cannot be {method}-compressed by lexcoder. Drop the "
                        f"{p.suffix} suffix (Parquet is compressed already) or write CSV/TSV/JSONL.")
    return method


def current_umask() -> int:
    """The process umask (read without changing it for longer than two system calls)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_path(path: Path) -> None:
    """Flush a file's (or directory's) data to disk; directories are not fsync-able everywhere."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _as_write_error(err: OSError, path: Path) -> LexcoderError:
    reason = err.strerror or str(err)
    hint = {errno.ENOSPC: "Free some disk space", errno.EDQUOT: "Free some of your disk quota",
            errno.EFBIG: "Write to a file system that allows larger files"}.get(
        err.errno, "Choose a folder you can write to")
    return LexcoderError(f"Cannot write {path}: {reason}. {hint}, then run the command again (nothing "
                         "half-written was left behind; `--resume` continues an interrupted run).")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` only if the block succeeds.

    The temporary file lives in the same folder (so the final ``os.replace`` is atomic), is flushed to
    disk before the rename, and gets the permissions the user's umask gives a new file (``mkstemp``
    alone would leave 0600, unreadable for colleagues on a shared drive). A failed block leaves nothing.
    A full disk, a read-only folder or a missing permission raise one :class:`LexcoderError` naming
    ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:100]}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as err:
        raise _as_write_error(err, path) from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            _fsync_path(tmp_path)
            os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, path)
        _fsync_path(path.parent)
    except OSError as err:
        if err.errno in _WRITE_ERRNOS:
            raise _as_write_error(err, path) from None
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; it replaces ``path`` (a folder) only if the block succeeds.

    Used for saved models: a reader sees the old complete model or the new complete one, never a mix,
    and a failure (disk full, interrupted save) leaves the old one in place and no debris.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name[:100]}.", suffix=".tmp", dir=path.parent))
    except OSError as err:
        raise _as_write_error(err, path) from None
    old = path.with_name(f".{path.name[:100]}.{tmp.name.rsplit('.', 2)[-2]}.old")
    try:
        yield tmp
        _finish_tree(tmp)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        _fsync_path(path.parent)
    except OSError as err:
        if old.exists() and not path.exists():
            os.replace(old, path)  # put the previous complete version back
        if err.errno in _WRITE_ERRNOS:
            raise _as_write_error(err, path) from None
        raise
    finally:
        for leftover in (tmp, old):
            if leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)


def _finish_tree(root: Path) -> None:
    """fsync every file under ``root`` and give folders the umask's permissions (mkdtemp makes 0700)."""
    mask = current_umask()
    for folder, _, files in os.walk(root):
        os.chmod(folder, 0o777 & ~mask)
        for name in files:
            _fsync_path(Path(folder) / name)
        _fsync_path(Path(folder))


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


def write_text_table(df: pd.DataFrame, fh: Any, fmt: str, *, header: bool = True) -> None:
    """Append ``df`` to an open text handle as CSV, TSV or JSON lines (no index)."""
    if fmt == "jsonl":
        if len(df):  # pandas ends JSON lines with a newline (and writes a bare one for no rows)
            df.to_json(fh, orient="records", lines=True, force_ascii=False)
    else:
        df.to_csv(fh, index=False, header=header, sep="," if fmt == "csv" else "\t", lineterminator="\n")


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
