"""Text cleaning and duplicate detection.

Cleaning never touches labels. Exact duplicates (after cleaning) get one ``dup_group`` so that the split
keeps them together; duplicates whose human labels disagree are reported (they feed the audit).
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import pandas as pd

from .config import CleanConfig

_WS = re.compile(r"\s+")
# invisible characters that PDF/web/Word extraction leaves inside words: control characters (other than
# whitespace), soft hyphen, zero-width space, word joiner, byte-order mark. They split words for TF-IDF.
_INVISIBLE = re.compile("[\x00-\x08\x0e-\x1f\x7f\u00ad\u200b\u2060\ufeff]")


def clean_text(text: str, cfg: CleanConfig | None = None) -> str:
    """NFKC-normalise, drop invisible characters and collapse whitespace (optional through ``cfg``).

    A missing value (None, NaN) becomes ``""``; any other non-string is cleaned as its text.
    """
    cfg = cfg or CleanConfig()
    if not isinstance(text, str):
        text = "" if text is None or text is pd.NA or (isinstance(text, float) and text != text) else str(text)
    if cfg.unicode_nfkc:
        text = unicodedata.normalize("NFKC", text)
    if cfg.normalize_whitespace:
        text = _WS.sub(" ", _INVISIBLE.sub("", text)).strip()
    return text


@dataclass
class CleanReport:
    """Counts of duplicates; ``conflicting_groups``/``conflicting_rows`` as defined in :func:`conflict_counts`."""

    duplicate_rows: int
    duplicate_groups: int
    conflicting_groups: int
    conflicting_rows: int = 0


def clean(df: pd.DataFrame, label_columns: list[str], cfg: CleanConfig | None = None
          ) -> tuple[pd.DataFrame, pd.DataFrame, CleanReport]:
    """Clean texts and mark duplicates.

    Parameters
    ----------
    df : canonical table from :func:`lexcoder.data.load_dataset`
    label_columns : the coded columns (0/1 labels and categorical variables), to find conflicting duplicates

    Returns
    -------
    cleaned : ``df`` with cleaned ``text`` and an int ``dup_group`` column (same value = same text)
    conflicts : one row per (duplicate group, coded column) whose copies carry different human codes, with
        columns ``dup_group, label, ids, values, text`` (``values``: the codes as text, ``"0"``/``"1"``
        for a 0/1 label, the class for a categorical variable)
    report : counts of duplicates and conflicts
    """
    out = df.copy()
    out["text"] = out["text"].map(lambda t: clean_text(t, cfg))
    out["dup_group"] = out.groupby("text", sort=False).ngroup().astype("int64")
    sizes = out["dup_group"].map(out["dup_group"].value_counts())
    dups = out[sizes > 1]
    conflicts = find_conflicts(dups, label_columns)
    counts = conflict_counts(conflicts)
    report = CleanReport(duplicate_rows=int(len(dups)),
                         duplicate_groups=int(dups["dup_group"].nunique()),
                         conflicting_groups=counts["groups"], conflicting_rows=counts["rows"])
    return out, conflicts, report


_PUNCT = re.compile(r"[^\w\s]|_")
_NUMBER = re.compile(r"\d+(?:[.,:/-]\d+)*")  # 3, 3.1, 1,000, 12/05/2020: one number each


def near_duplicate_key(text: str) -> str:
    """The text with case, whitespace, punctuation and numbers normalised away (near-duplicates share it).

    ``"Section 3.1: Fees"`` and ``"section 4 fees"`` both become ``"section 0 fees"``. A text with no
    letter left (``"1."``, ``"(2)"``) gets ``""``: numbering lines are not near-duplicates of each other in
    any useful sense, and callers leave texts with an empty key out.
    """
    key = _WS.sub(" ", _PUNCT.sub(" ", _NUMBER.sub("0", clean_text(text).casefold()))).strip()
    return key if any(c.isalpha() for c in key) else ""


def find_conflicts(dups: pd.DataFrame, label_columns: list[str], *, group_column: str = "dup_group"
                   ) -> pd.DataFrame:
    """Rows of ``dups`` (duplicates only) grouped by ``group_column`` whose labels disagree.

    ``group_column`` is ``dup_group`` (identical cleaned texts) or any other grouping of near-identical
    texts (e.g. by :func:`near_duplicate_key`); the output names the group ``dup_group`` either way.
    """
    rows = []
    if len(dups):
        nunique = dups.groupby(group_column)[label_columns].nunique()
        for group, label in zip(*(nunique > 1).to_numpy().nonzero()):
            g = nunique.index[group]
            part = dups[dups[group_column] == g]
            rows.append({"dup_group": int(g), "label": label_columns[label],
                         "ids": list(part["id"]), "values": [_code_text(v) for v in part[label_columns[label]]],
                         "text": part["text"].iloc[0]})
    return pd.DataFrame(rows, columns=["dup_group", "label", "ids", "values", "text"])


def _code_text(value) -> str:
    """A code as text: 0/1 labels arrive as integers, classes as text (see :mod:`lexcoder.data`)."""
    return str(int(value)) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def conflict_counts(conflicts: pd.DataFrame) -> dict:
    """Count conflicting duplicates, in the one definition every lexcoder output uses.

    A **conflicting duplicate group** is a set of two or more rows with the same cleaned text whose human
    codes differ on at least one label. Its **rows** are all the rows of the group.

    Parameters
    ----------
    conflicts : :func:`find_conflicts` output (one row per (group, label) that disagrees; the file
        ``duplicate_conflicts.parquet``)

    Returns
    -------
    ``{"groups": int, "rows": int, "labels": {label: {"groups": int, "rows": int}}}``: conflicting groups
    and their rows over all labels, and per label the groups whose codes differ on that label and their
    rows (= the (row, label) pairs of that label in the review queue because of a conflict). The
    per-label groups add up to the number of (group, label) pairs, which exceeds ``groups`` when a group
    disagrees on several labels.
    """
    if conflicts.empty:
        return {"groups": 0, "rows": 0, "labels": {}}
    ids = conflicts.groupby("dup_group")["ids"].first()
    per_label = {str(lab): {"groups": int(part["dup_group"].nunique()),
                            "rows": int(sum(len(i) for i in part.drop_duplicates("dup_group")["ids"]))}
                 for lab, part in conflicts.groupby("label", sort=False)}
    return {"groups": int(len(ids)), "rows": int(sum(len(i) for i in ids)), "labels": per_label}
