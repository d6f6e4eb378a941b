"""Clusters of flags: a document, coder or coding batch with far more suspect codes than chance allows.

Coding errors are often not independent: a coder skips a block of one decision and leaves it at the
default code, a batch is coded with an outdated codebook. Such a cluster is one problem to fix at once,
not twenty separate flags. For every block column (a document, coder or batch column), every value of it
and every label, the number of the label's queue rows in that block is compared with what the label's
queue rate predicts: under "flags fall on rows at random", a block of ``n`` rows holds
``Binomial(n, rate)`` of the label's ``rate · N`` flags. A block is reported when the binomial upper-tail
probability of its count, multiplied by the number of (column, value, label) combinations tested
(Bonferroni), is below ``alpha`` and it holds at least ``min_flags`` flags.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd


def find_blocks(df: pd.DataFrame, queue: pd.DataFrame, columns: Sequence[str], *, alpha: float = 0.01,
                min_flags: int = 3, names: Mapping[str, str] | None = None) -> list[dict]:
    """The blocks whose share of flags is too high to be chance.

    Parameters
    ----------
    df : the audited table (``id`` and the block columns)
    queue : the review queue (``id``, ``label``, ``human_value``; conflicting-duplicate rows are left out
        here: they are certain problems already and would make every document holding a copy a block)
    columns : the block columns of ``df``
    alpha : family-wise error rate (Bonferroni over every tested column, value and label)
    min_flags : fewest flags a block needs
    names : how to call a column in the description (e.g. ``{"group": "doc_id"}``; default its name)

    Returns
    -------
    One dict per block, strongest first: ``column``, ``value``, ``label``, ``rows`` (of the block),
    ``flags``, ``expected`` (by chance), ``p_value`` (Bonferroni-adjusted), ``codes`` (human codes of the
    flagged rows with counts) and ``description`` (e.g. ``"doc_id 'tos_12': 6 texts left at the default
    code 0 on limitation_of_liability where the model expects 1 (40 texts in the block, 0.4 flags expected
    by chance)"``)
    """
    from scipy.stats import binom
    flags = queue[queue["group"].eq("")] if "group" in queue else queue
    candidates = []
    for column in columns:
        values = df[column].astype("string").fillna("")
        sizes = values.value_counts()
        by_id = pd.Series(values.to_numpy(), index=df["id"].astype(str))
        for label, part in flags.groupby("label", sort=True):
            rate = len(part) / len(df)
            where = by_id.reindex(part["id"].astype(str)).to_numpy()
            for value, count in pd.Series(where).value_counts().items():
                if value == "" or count < min_flags:
                    continue
                n = int(sizes[value])
                codes = part["human_value"].astype(str)[where == value].value_counts()
                candidates.append({"column": column, "value": str(value), "label": str(label), "rows": n,
                                   "flags": int(count), "expected": round(n * rate, 2),
                                   "p_value": float(binom.sf(count - 1, n, rate)),
                                   "codes": {str(c): int(k) for c, k in codes.items()}})
    tests = sum(df[c].nunique() for c in columns) * max(flags["label"].nunique(), 1)
    blocks = []
    for b in sorted(candidates, key=lambda b: b["p_value"]):
        b["p_value"] = min(1.0, b["p_value"] * tests)
        if b["p_value"] < alpha:
            b["description"] = _describe(b, (names or {}).get(b["column"], b["column"]))
            blocks.append(b)
    return blocks


def _describe(block: dict, column: str) -> str:
    """``doc_id 'X': 6 texts left at the default code 0 on L where the model expects 1 (...)``."""
    codes, label = block["codes"], block["label"]
    top, top_n = max(codes.items(), key=lambda kv: kv[1])
    if top == "0" and top_n == block["flags"]:
        what = f"{top_n} texts left at the default code 0 on {label} where the model expects 1"
    elif set(codes) <= {"0", "1"}:
        what = f"{block['flags']} texts flagged on {label} (" + ", ".join(
            f"{n} coded {c}" for c, n in sorted(codes.items(), reverse=True)) + ")"
    else:
        what = f"{block['flags']} texts flagged on {label} (" + ", ".join(
            f"{n} coded {c!r}" for c, n in sorted(codes.items(), key=lambda kv: -kv[1])) + ")"
    return (f"{column} {block['value']!r}: {what} ({block['rows']} texts in the block, "
            f"{block['expected']:.1f} flags expected by chance)")


def mark_blocks(queue: pd.DataFrame, df: pd.DataFrame, blocks: list[dict],
                names: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The queue with ``block`` (``doc_id=X``; several joined by `` | ``) and the block's description
    added to ``reason`` for every flagged (not conflicting-duplicate) row of a block's label and value."""
    out = queue.copy()
    ids = out["id"].astype(str)
    for b in blocks:
        values = pd.Series(df[b["column"]].astype("string").fillna("").to_numpy(), index=df["id"].astype(str))
        hit = (out["label"].eq(b["label"]) & ids.map(values).eq(b["value"])).to_numpy()
        if "group" in out:
            hit = hit & out["group"].eq("").to_numpy()
        name = f"{(names or {}).get(b['column'], b['column'])}={b['value']}"
        out.loc[hit, "block"] = [f"{old} | {name}" if old else name for old in out.loc[hit, "block"]]
        out.loc[hit, "reason"] = [f"{r}; block: {b['description']}" if r else f"block: {b['description']}"
                                  for r in out.loc[hit, "reason"]]
    return out


def block_columns(df: pd.DataFrame, wanted: Sequence[str], *, default: str | None = None) -> list[str]:
    """The block columns to test: ``wanted`` (all must exist), else ``default`` if the table has it."""
    from ..errors import ConfigError
    if wanted:
        missing = [c for c in wanted if c not in df]
        if missing:
            shown = [c for c in df.columns if c not in ("text", "dup_group", "source_row")]
            raise ConfigError(f"block column(s) {', '.join(map(repr, missing))} are not in the run's data; its "
                              f"columns are: {', '.join(map(str, shown))}. Name columns that say which "
                              "document, coder or batch a text belongs to.")
        return list(dict.fromkeys(wanted))
    return [default] if default and default in df and np.asarray(df[default].nunique()) > 1 else []
