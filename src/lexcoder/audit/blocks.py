"""Clusters of flags: a document, coder or coding batch with far more suspect codes than chance allows.

Coding errors are often not independent: a coder skips a block of one decision and leaves it at the
default code, a batch is coded with an outdated codebook. Such a cluster is one problem to fix at once,
not twenty separate flags. For every block column (a document, coder or batch column), every value of it,
every label and every human code, the number of the label's queue rows with that code in that block is
compared with what chance predicts: under "flags fall at random on the rows carrying a code", a block
whose ``n_c`` rows carry code ``c`` holds ``Binomial(n_c, rate_c)`` of the label's flags on code ``c``
(``rate_c`` = those flags / all rows coded ``c``). A block is reported when it holds at least
``min_flags`` flags and its binomial upper-tail probability survives the Benjamini–Hochberg procedure at
false-discovery rate ``alpha`` over every (column, value, label, code) tested.

Why by code: flags fall far more often on a rare label's 1s than on its 0s, so a test that pools them
(the rule before) reports documents that merely hold many positives: with random flags drawn at the real
queue's rates per code it reported a block in 4% of runs at a nominal 1%, against none in 200 runs by
code, which also finds planted annotation gaps more often (``benchmarks/bench_blocks.py``).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd


def find_blocks(df: pd.DataFrame, queue: pd.DataFrame, columns: Sequence[str], *, alpha: float = 0.05,
                min_flags: int = 3, names: Mapping[str, str] | None = None, by_code: bool = True,
                correction: str = "fdr") -> list[dict]:
    """The blocks whose share of flags is too high to be chance.

    Parameters
    ----------
    df : the audited table (``id``, the block columns and the label / variable columns)
    queue : the review queue (``id``, ``label``, ``human_value``; conflicting-duplicate rows are left out
        here: they are certain problems already and would make every document holding a copy a block)
    columns : the block columns of ``df``
    alpha : the error rate ``correction`` controls
    min_flags : fewest flags a block needs
    names : how to call a column in the description (e.g. ``{"group": "doc_id"}``; default its name)
    by_code : test the flags on each human code apart (for labels and variables whose column ``df``
        holds; see the module docstring); False: all of a label's flags against all rows of the block (the
        rule before, kept for comparison)
    correction : ``"fdr"`` (Benjamini–Hochberg: the expected share of chance blocks among those reported
        is at most ``alpha``) or ``"bonferroni"`` (the chance of reporting any chance block is at most
        ``alpha``), over every (column, value, label[, code]) tested; ``p_value`` is adjusted accordingly

    Returns
    -------
    One dict per block, strongest first: ``column``, ``value``, ``label``, ``code`` (the human code tested;
    None when pooled), ``rows`` (of the block carrying ``code``), ``flags``, ``expected`` (by
    chance), ``p_value`` (adjusted), ``codes`` (human codes of the flagged rows with counts) and
    ``description`` (e.g. ``"doc_id 'tos_12': 6 texts left at the default code 0 on limitation_of_liability
    where the model expects 1 (40 texts in the block, 0.4 flags expected by chance)"``)
    """
    if correction not in ("bonferroni", "fdr"):
        raise ValueError(f"correction must be 'bonferroni' or 'fdr' (got {correction!r})")
    flags = queue[queue["group"].eq("")] if "group" in queue else queue
    # each label's human codes, read once for all block columns
    coded_as = {label: _as_codes(df[label]) for label in flags["label"].unique() if by_code and label in df}
    candidates, n_tests = [], 0
    for column in columns:
        values = df[column].astype("string").fillna("")
        by_id = pd.Series(values.to_numpy(), index=df["id"].astype(str))
        for label, part in flags.groupby("label", sort=True):
            where = by_id.reindex(part["id"].astype(str)).to_numpy()
            given = _as_codes(part["human_value"])
            if label in coded_as:
                coded = coded_as[label]
                strata = [(c, coded == c, given == c) for c in np.unique(coded)]
            else:
                strata = [(None, np.ones(len(df), dtype=bool), np.ones(len(part), dtype=bool))]
            for code, rows, mine in strata:
                sizes = values[rows].value_counts()
                n_tests += int(values.nunique())  # every value is a test, with or without flags
                rate = mine.sum() / max(int(rows.sum()), 1)
                candidates += _candidates(column, str(label), code, where[mine], given[mine], sizes, rate,
                                          min_flags)
    blocks = []
    for b in _adjust(candidates, n_tests, correction):
        if b["p_value"] < alpha:
            b["description"] = _describe(b, (names or {}).get(b["column"], b["column"]))
            blocks.append(b)
    return blocks


def _as_codes(values: pd.Series) -> np.ndarray:
    """Codes as strings that compare across tables: ``1``, ``1.0`` and ``"1"`` all become ``"1"``; a
    missing code becomes ``""``."""
    values = pd.Series(values).reset_index(drop=True)
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().sum() == values.notna().sum() and (numeric.dropna() % 1 == 0).all():
        return numeric.astype("Int64").astype("string").fillna("").to_numpy()
    return values.astype("string").fillna("").to_numpy()


def _candidates(column: str, label: str, code: str | None, where: np.ndarray, given: np.ndarray,
                sizes: pd.Series, rate: float, min_flags: int) -> list[dict]:
    """One test per block value holding at least ``min_flags`` of these flags (binomial upper tail)."""
    from scipy.stats import binom
    out = []
    for value, count in pd.Series(where).value_counts().items():
        if value == "" or pd.isna(value) or count < min_flags:
            continue
        n = int(sizes.get(value, 0))
        codes = pd.Series(given[where == value]).value_counts()
        out.append({"column": column, "value": str(value), "label": label, "code": code, "rows": n,
                    "flags": int(count), "expected": round(n * rate, 2),
                    "p_value": float(binom.sf(count - 1, n, rate)),
                    "codes": {str(c): int(k) for c, k in codes.items()}})
    return out


def _adjust(candidates: list[dict], tests: int, correction: str) -> list[dict]:
    """The candidates, smallest p first, with p-values adjusted over ``tests`` tests (the untested ones,
    blocks with too few flags, count as p = 1, which keeps both corrections valid)."""
    ranked = sorted(candidates, key=lambda b: b["p_value"])
    m = max(tests, len(ranked), 1)
    if correction == "bonferroni":
        for b in ranked:
            b["p_value"] = min(1.0, b["p_value"] * m)
        return ranked
    adjusted = [b["p_value"] * m / (i + 1) for i, b in enumerate(ranked)]  # Benjamini–Hochberg q-values
    for i in range(len(ranked) - 2, -1, -1):
        adjusted[i] = min(adjusted[i], adjusted[i + 1])
    for b, q in zip(ranked, adjusted):
        b["p_value"] = min(1.0, q)
    return ranked


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
    rows = f"{block['rows']} texts" + ("" if block.get("code") is None else f" coded {block['code']}")
    return (f"{column} {block['value']!r}: {what} ({rows} in the block, {block['expected']:.1f} flags expected "
            "by chance)")


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
