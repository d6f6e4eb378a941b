"""What a table file is: its format, compression, encoding and delimiter, told from its name and first bytes.

- the format follows the extension (:data:`FORMATS`; ``.gz``, ``.zip`` ... :data:`COMPRESSIONS` may follow
  a text format); a file type lexcoder does not read is refused with the way to convert it;
- the first bytes must agree with the extension (a workbook renamed ``.csv``, a PDF, a ``.gz`` that is not
  compressed): the error says what the file really is and how to fix its name;
- text is UTF-8 unless a byte-order mark says otherwise; a byte that is not UTF-8 is described by line and
  character, so the user can find it;
- a CSV/TSV's delimiter is the one that splits every sampled row into as many fields as the header.

Nothing here parses a whole file: :mod:`lexcoder.io.read` does, after these checks.
"""
from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable
from pathlib import Path

from ..errors import DataError

log = logging.getLogger(__name__)

FORMATS = {
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".txt": "tsv", ".parquet": "parquet", ".pq": "parquet",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".xlsx": "xlsx", ".xlsm": "xlsx", ".dta": "dta",
}
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zip": "zip", ".zst": "zstd"}
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


def _preview(line: str, width: int = 80) -> str:
    line = line.rstrip("\r\n")
    return repr(line if len(line) <= width else line[:width] + "…")
