"""Safe outputs from untrusted strings: file names that stay in their folder, spreadsheet cells that stay text.

Label names, ids and texts come from the user's data, so they can hold anything: ``/``, ``..``, ``\\``, NUL,
``:``, thousands of characters, any unicode, or a spreadsheet formula. Two rules keep them harmless:

- **File names** (:func:`safe_filename`, :func:`check_inside`): a data string that becomes part of a file
  name is reduced to ``[A-Za-z0-9._-]`` (plus a short hash of the original whenever anything had to change),
  and a writer checks that the final path is inside the folder it writes to.
- **Spreadsheet cells** (:func:`neutralise_formulas`): a text cell that Excel, LibreOffice or Google Sheets
  would run as a formula gets a leading ``'`` (the OWASP "CSV injection" rule), so it is shown as text.
  :func:`restore_quoted` undoes it when a reviewed file is read back.
- **Markdown** (:func:`md_cell`, :func:`md_fence`): a data string in a Markdown table stays in its cell and
  renders literally (no HTML, links, images, code or math from the data).
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import LexcoderError

#: Characters that make a spreadsheet read a cell as a formula (OWASP): ``= + - @``, tab and carriage return.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
#: The prefix that turns a would-be formula into text (Excel's "this cell is text" marker).
QUOTE = "'"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_DOTS = re.compile(r"\.{2,}")
# A plain decimal number ("-3", "+1.5", "-2e-3") is a number to every spreadsheet, never a formula.
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
# Windows refuses these names (with any extension) in every folder.
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                     *(f"LPT{i}" for i in range(1, 10))}
_HASH_CHARS = 8

# Markdown table cells: a data string may neither end the cell (|), nor the row (newlines), nor open
# HTML (<, &), code (`), links or images ([ ]), nor math ($, rendered by GitHub); a backslash is doubled
# so it cannot escape our "\|".
_MD_CELL = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\\": "\\\\", "|": "\\|", "`": "\\`",
                          "$": "\\$", "[": "\\[", "]": "\\]", "\n": " ", "\r": " ", "\u2028": " ",
                          "\u2029": " ", "\x00": "\ufffd"})


def safe_filename(name: Any, *, max_length: int = 80) -> str:
    """A readable, portable file-name part made from any string (a label name, an id, ...).

    The rule, in order:

    1. accents are dropped (``é`` → ``e``), then every run of characters outside ``[A-Za-z0-9._-]`` becomes
       one ``_`` (so ``/``, ``\\``, ``:``, NUL, spaces and other scripts can never form a path), and
       runs of dots one ``.``;
    2. leading and trailing ``.``, ``_`` and ``-`` are removed (no hidden file, no ``.``/``..``, no
       name that reads as a command-line option);
    3. if anything changed, the name is a Windows reserved device name (``CON``, ``nul.txt``, ``COM1`` ...;
       its dots then become ``_``) or longer than ``max_length``, it is cut to fit and ``-`` plus the
       first 8 hex digits of the SHA-256 of the original string is appended. Two different names
       therefore never give the same result unless one of them already looks exactly like another's
       hashed form.

    An unchanged name (``limitation_of_liability``) is returned as it is. Names that differ only in case
    stay distinct here but share a file on case-insensitive file systems (macOS, Windows).

    Parameters
    ----------
    name : any value; its ``str()`` is used
    max_length : longest result, at least 16 characters

    Returns
    -------
    str, never empty, never ``.`` or ``..``, never starting with ``.`` or ``-``, at most ``max_length`` long
    """
    if max_length < 16:
        raise ValueError(f"max_length must be at least 16 (got {max_length}).")
    text = str(name)
    decomposed = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    safe = _DOTS.sub(".", _UNSAFE.sub("_", decomposed)).strip("._-")
    reserved = safe.split(".")[0].upper() in _WINDOWS_RESERVED
    if safe and safe == text and not reserved and len(safe) <= max_length:
        return safe
    if reserved:  # "nul.txt-<hash>" would still be NUL to Windows: the part before the first dot counts
        safe = safe.replace(".", "_")
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]
    stem = safe[:max_length - _HASH_CHARS - 1].rstrip("._-")
    return f"{stem}-{digest}" if stem else digest


def check_inside(root: str | Path, path: str | Path) -> Path:
    """Return ``path`` if it lies inside the folder ``root`` (after resolving ``..`` and links), else raise.

    A guard for writers: a path built from data that points outside its run folder is refused.

    Raises
    ------
    LexcoderError
        If ``path`` resolves to a place outside ``root``.
    """
    base, target = Path(root).resolve(), Path(path).resolve()
    if target != base and base not in target.parents:
        raise LexcoderError(f"Refusing to write {path}: it lies outside {root}. A name taken from the data "
                            "formed the path; report this as a lexcoder bug.")
    return Path(path)


def neutralise_cell(value: Any) -> Any:
    """``value`` with a leading ``'`` if it is text that a spreadsheet would run as a formula.

    Text (``str``) starting with one of :data:`FORMULA_TRIGGERS` is prefixed, unless the whole text is a
    plain decimal number (``"-3"``, ``"+1.5"``, ``"-2e-3"``: spreadsheets read those as numbers, never
    as formulas). Everything else, numbers included, is returned unchanged.
    """
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS) and not _NUMBER.fullmatch(value):
        return QUOTE + value
    return value


def neutralise_formulas(df: pd.DataFrame, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """A copy of ``df`` safe to open in a spreadsheet: text cells that would be formulas become text.

    The rule (OWASP, "CSV injection"): a text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or
    a carriage return gets a single leading ``'``; see :func:`neutralise_cell` for the one exception
    (text that is a plain decimal number, like ``"-3"``). Cells stored as numbers (a negative number is
    not a formula), booleans, dates and missing values are never changed. The header cells (column
    names) of the chosen columns follow the same rule. Undo it with :func:`restore_quoted`.

    Parameters
    ----------
    df : the table to be written as CSV/TSV/XLSX
    columns : the columns to neutralise (default: all)

    Returns
    -------
    DataFrame, a new table (``df`` is not modified)
    """
    chosen = list(df.columns) if columns is None else list(columns)
    out = df.copy()
    for col in chosen:
        series = out[col]
        if series.dtype == object or isinstance(series.dtype, (pd.StringDtype, pd.CategoricalDtype)):
            # built as a list: Series.map would turn None into NaN
            out[col] = pd.Series([neutralise_cell(v) for v in series.astype(object)], index=out.index,
                                 dtype=object)
    return out.rename(columns={c: neutralise_cell(c) for c in chosen})


def unquote_cell(value: Any) -> Any:
    """Undo :func:`neutralise_cell`: drop exactly one leading ``'`` if it hides a formula trigger."""
    if isinstance(value, str) and value.startswith(QUOTE) and neutralise_cell(value[1:]) == value:
        return value[1:]
    return value


def restore_quoted(values: pd.Series, known: Iterable[Any]) -> pd.Series:
    """Values of a re-read column with the export's ``'`` removed where that gives a ``known`` value.

    A cell is changed only when it is not itself ``known``, :func:`unquote_cell` changes it, and the
    result is ``known``: a genuine value that starts with ``'`` is never altered.

    Parameters
    ----------
    values : a column read back from a file written with :func:`neutralise_formulas` (ids, labels)
    known : the values the column may hold (the run's ids as text, its label names)
    """
    known = {str(k) for k in known}

    def restore(value: Any) -> Any:
        if not isinstance(value, str) or value in known:
            return value
        bare = unquote_cell(value)
        return bare if bare in known else value

    return values.map(restore)


def md_cell(value: Any) -> str:
    """``value`` as text that stays inside one Markdown table cell (or list item) and renders literally."""
    return ("" if value is None else str(value)).translate(_MD_CELL)


def md_fence(text: str) -> str:
    """A code fence (backticks) longer than any run of backticks in ``text``, so ``text`` cannot close it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)
