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


def clean_text(text: str, cfg: CleanConfig | None = None) -> str:
    """NFKC-normalise and collapse whitespace (both optional through ``cfg``)."""
    cfg = cfg or CleanConfig()
    if cfg.unicode_nfkc:
        text = unicodedata.normalize("NFKC", text)
    if cfg.normalize_whitespace:
        text = _WS.sub(" ", text).strip()
    return text


@dataclass
class CleanReport:
    duplicate_rows: int
    duplicate_groups: int
    conflicting_groups: int


def clean(df: pd.DataFrame, label_columns: list[str], cfg: CleanConfig | None = None
          ) -> tuple[pd.DataFrame, pd.DataFrame, CleanReport]:
    """Clean texts and mark duplicates.

    Parameters
    ----------
    df : canonical table from :func:`lexcoder.data.load_dataset`
    label_columns : the label columns, to find conflicting duplicates

    Returns
    -------
    cleaned : ``df`` with cleaned ``text`` and an int ``dup_group`` column (same value = same text)
    conflicts : one row per (duplicate group, label) whose copies carry different human labels, with
        columns ``dup_group, label, ids, values, text``
    report : counts of duplicates and conflicts
    """
    out = df.copy()
    out["text"] = out["text"].map(lambda t: clean_text(t, cfg))
    out["dup_group"] = out.groupby("text", sort=False).ngroup().astype("int64")
    sizes = out["dup_group"].map(out["dup_group"].value_counts())
    dups = out[sizes > 1]
    conflicts = find_conflicts(dups, label_columns)
    report = CleanReport(duplicate_rows=int(len(dups)),
                         duplicate_groups=int(dups["dup_group"].nunique()),
                         conflicting_groups=int(conflicts["dup_group"].nunique()) if len(conflicts) else 0)
    return out, conflicts, report


def find_conflicts(dups: pd.DataFrame, label_columns: list[str]) -> pd.DataFrame:
    """Rows of ``dups`` (duplicates only) grouped by ``dup_group`` whose labels disagree."""
    rows = []
    if len(dups):
        nunique = dups.groupby("dup_group")[label_columns].nunique()
        for group, label in zip(*(nunique > 1).to_numpy().nonzero()):
            g = nunique.index[group]
            part = dups[dups["dup_group"] == g]
            rows.append({"dup_group": int(g), "label": label_columns[label],
                         "ids": list(part["id"]), "values": [int(v) for v in part[label_columns[label]]],
                         "text": part["text"].iloc[0]})
    return pd.DataFrame(rows, columns=["dup_group", "label", "ids", "values", "text"])
