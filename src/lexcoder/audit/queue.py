"""The review queue: likely coding errors, most likely first, ready to be reviewed in a spreadsheet.

One row per (text, label) pair that confident learning flags or whose text has an identical or
near-identical copy coded differently. The reviewer fills in ``decision`` (``keep`` or ``flip``) and
optionally ``note``; the file is then fed to ``lexcoder corrections apply``.

**Certain problems first.** Texts coded differently on a label although they are identical, or identical
after case, whitespace, punctuation and numbers are normalised away (:func:`lexcoder.clean.near_duplicate_key`),
are either coding errors or genuine ambiguities: their rows open the queue, each group's copies on
consecutive ranks with the same ``group`` id (``G1``, ``G2`` ... in queue order) and all copies with their
codes in ``copies`` (``1: a, b; 0: c``). Groups with identical copies come first, then near-identical ones.
The other flagged pairs follow, interleaved across labels (``order="interleave"``, the default:
:func:`lexcoder.audit.ranking.interleave`, labels in turn in proportion to their expected wrong codes,
:func:`interleave_weights`) or ordered by ``score`` (``order="score"``; with the default ``"calibrated"``
scores they are comparable across labels). ``block`` names a cluster
of flags the pair belongs to (:mod:`lexcoder.audit.blocks`; empty here, filled by the audit workflow). Text
cells that a spreadsheet would run as formulas are written with a leading ``'`` (see :mod:`lexcoder.safety`).

A run with categorical variables (``class_columns``) gets the columns of :data:`CLASS_QUEUE_COLUMNS`:
a variable's row names the variable in ``label``, the given class in ``human_value``, the class the
model suggests instead in ``suggested_value`` (the most probable class other than the given one) with its
out-of-fold probability ``suggested_probability``; ``model_probability`` and ``score`` are the probability
of the given class. The reviewer writes ``keep`` or ``change`` in ``decision``, and for ``change`` the new
class in ``new_value`` (empty: the suggested class). A 0/1 label's row in such a queue shows its code as
text, the other code as ``suggested_value`` (with ``1 - score``), and is decided with keep/flip as always.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .. import safety
from ..clean import _code_text, find_conflicts, near_duplicate_key
from ..errors import ConfigError
from ..io import atomic_path, table_format, write_table
from .ranking import apply_quota, interleave

QUEUE_COLUMNS = ["rank", "id", "label", "text", "human_value", "model_probability", "score", "reason",
                 "evidence", "nearest_other", "group", "copies", "block", "decision", "note", "source_row"]
CLASS_QUEUE_COLUMNS = ["rank", "id", "label", "text", "human_value", "suggested_value", "suggested_probability",
                       "model_probability", "score", "reason", "evidence", "nearest_other", "group", "copies",
                       "block", "decision", "new_value", "note", "source_row"]
ORDERS = ("score", "interleave")
# measured (benchmarks/README.md, issue 16): interleaving by the expected wrong codes under the calibrated
# probabilities (interleave_weights) kept every label nearer its share of the injected errors than a plain
# sort by score in all 6 settings, at a mean cost of 0.017 top-50 precision; confident learning's counts
# (the weights before) gave ambiguous labels inflated shares
DEFAULT_ORDER = "interleave"
_MAX_IDS = 8  # ids listed per code in ``copies`` (a group of 50 "Yes." would not fit a cell)


@dataclass
class ClassScores:
    """One categorical variable's audit, row by row (``n`` rows of the audited table).

    Attributes
    ----------
    classes : (k,) the classes, sorted
    P : (n, k) out-of-fold class probabilities
    score : (n,) probability of the given class (lower = more likely wrong)
    flagged : (n,) rows flagged by confident learning
    conflicts : (n,) rows whose text has an identical copy given another class
    """

    classes: np.ndarray
    P: np.ndarray
    score: np.ndarray
    flagged: np.ndarray
    conflicts: np.ndarray


def conflict_mask(df: pd.DataFrame, conflicts: pd.DataFrame, label_columns: Sequence[str]) -> np.ndarray:
    """Boolean ``(n, n_labels)``: the row's text has an identical copy coded differently for that label.

    ``conflicts`` is :func:`lexcoder.clean.find_conflicts` output (``ids`` and ``label`` per conflict).
    """
    mask = np.zeros((len(df), len(label_columns)), dtype=bool)
    position = pd.Series(np.arange(len(df)), index=df["id"].astype(str))
    column = {lab: j for j, lab in enumerate(label_columns)}
    for ids, label in zip(conflicts.get("ids", []), conflicts.get("label", [])):
        if label in column:
            rows = position.reindex([str(i) for i in ids]).dropna().astype(int)
            mask[rows.to_numpy(), column[label]] = True
    return mask


def conflict_groups(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Every (row, coded column) whose text has an identical or near-identical copy coded differently.

    Texts are grouped by :func:`lexcoder.clean.near_duplicate_key` (texts without letters, e.g. ``"1."``,
    only with their identical copies) and the groups whose codes differ are found by
    :func:`lexcoder.clean.find_conflicts`.

    Parameters
    ----------
    df : the audited table (``id``, ``text``, optional ``dup_group``, the coded columns)
    columns : the 0/1 labels and categorical variables to check

    Returns
    -------
    DataFrame with one row per (row, column): ``row`` (position in ``df``), ``label``, ``group`` (int, the
    near-duplicate group), ``exact`` (the row's identical copies disagree too), ``copies`` (every copy and
    its code, ``"1: a, b; 0: c"``) and ``reason`` (``"conflicting duplicate (identical text coded 1 in 2,
    0 in 1 copies)"`` or ``"conflicting near-duplicate (...)"``)
    """
    key = df["text"].map(near_duplicate_key)
    key = key.where(key != "", "\0" + df["text"].astype(str))  # no letters: identical copies only
    table = df.reset_index(drop=True).assign(_near=key.groupby(key, sort=False).ngroup().to_numpy())
    exact_of = table["dup_group"] if "dup_group" in table else table["text"]
    sizes = table["_near"].map(table["_near"].value_counts())
    found = find_conflicts(table[sizes > 1], list(columns), group_column="_near")
    out = []
    for g, label in zip(found["dup_group"], found["label"]):
        part = table.index[table["_near"] == g]
        codes = table.loc[part, label].map(_code_text)
        exact = codes.groupby(exact_of[part]).transform("nunique").gt(1)
        copies = _copies_cell(table.loc[part, "id"], codes)
        for row in part:
            same = exact_of[part] == exact_of[row]
            out.append({"row": int(row), "label": label, "group": int(g), "exact": bool(exact[row]),
                        "copies": copies, "reason": _conflict_reason(codes, same.to_numpy(), bool(exact[row]))})
    return pd.DataFrame(out, columns=["row", "label", "group", "exact", "copies", "reason"])


def _counts(codes: pd.Series) -> str:
    """``1 in 2, 0 in 1 copies`` (0/1 labels, 1 first) or ``'Facts' in 2, 'Law' in 1 copies`` (classes)."""
    counts = codes.value_counts()
    if set(counts.index) <= {"0", "1"}:
        return ", ".join(f"{c} in {int(counts.get(c, 0))}" for c in ("1", "0")) + " copies"
    return ", ".join(f"{c!r} in {n}" for c, n in counts.items()) + " copies"


def _conflict_reason(codes: pd.Series, same: np.ndarray, exact: bool) -> str:
    if not exact:
        return (f"conflicting near-duplicate (near-identical text coded {_counts(codes)}; case, spacing, "
                "punctuation or numbers differ)")
    reason = f"conflicting duplicate (identical text coded {_counts(codes[same])})"
    return reason if same.all() else f"{reason}; near-identical texts coded {_counts(codes)}"


def _copies_cell(ids: pd.Series, codes: pd.Series) -> str:
    """``1: a, b; 0: c`` -- each code with the ids of its copies (at most :data:`_MAX_IDS` per code)."""
    parts = []
    for code, part in ids.astype(str).groupby(codes.to_numpy(), sort=True):
        more = f", ... (+{len(part) - _MAX_IDS})" if len(part) > _MAX_IDS else ""
        shown = ", ".join(part.iloc[:_MAX_IDS]) + more
        parts.append(f"{code}: {shown}")
    return "; ".join(sorted(parts, key=lambda s: s != "1" and not s.startswith("1:")))


def group_mask(df: pd.DataFrame, groups: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """Boolean ``(n, len(columns))``: the pair is in a conflict of :func:`conflict_groups`."""
    mask = np.zeros((len(df), len(columns)), dtype=bool)
    column = {c: j for j, c in enumerate(columns)}
    for row, label in zip(groups["row"], groups["label"]):
        if label in column:
            mask[row, column[label]] = True
    return mask


def _reason(human: int, p: float, flagged: bool) -> str:
    if not flagged:
        return ""
    return (f"model confident positive (p={p:.2f}), coded 0" if human == 0
            else f"model confident negative (p={p:.2f}), coded 1")


def build_queue(df: pd.DataFrame, label_columns: Sequence[str], P: np.ndarray, score: np.ndarray,
                flagged: np.ndarray, conflicts: np.ndarray, *, variables: Mapping[str, ClassScores] | None = None,
                groups: pd.DataFrame | None = None, order: str = DEFAULT_ORDER,
                quota: int | Mapping[str, int] | None = None, weights: Mapping[str, float] | None = None
                ) -> pd.DataFrame:
    """The full review queue: conflicting (near-)duplicates first, grouped, then the flagged pairs.

    Parameters
    ----------
    df : table with ``id``, ``text``, ``source_row`` and the (possibly corrected) label and class columns
    P : (n, n_labels) out-of-fold probabilities
    score : (n, n_labels) label-quality score, lower = more likely wrong
    flagged : (n, n_labels) pairs flagged by confident learning
    conflicts : (n, n_labels) pairs whose text has a copy coded differently (:func:`conflict_mask`)
    variables : the categorical variables' audits (``{variable: ClassScores}``); with any, the queue has
        :data:`CLASS_QUEUE_COLUMNS`
    groups : :func:`conflict_groups` of the labels and variables (default: computed from ``df``); its
        pairs join the queue with their group, copies and reason
    order : ``"interleave"`` (the default: labels in turn, :func:`lexcoder.audit.ranking.interleave`) or
        ``"score"`` (all flagged pairs by ``score``) for the pairs after the conflicting groups
    quota : at most this many flagged pairs per label (or ``{label: cap}``); conflicting groups are
        always kept whole
    weights : expected wrong codes per label and variable, for ``"interleave"`` (default:
        :func:`interleave_weights`, the sum of ``1 - score`` over all rows)

    Returns
    -------
    DataFrame with :data:`QUEUE_COLUMNS` (or :data:`CLASS_QUEUE_COLUMNS`); ``decision`` and ``note``
    (and ``new_value``) are empty for the reviewer, ``block`` is empty
    """
    if order not in ORDERS:
        raise ConfigError(f"order {order!r} is not a queue order; use one of {', '.join(ORDERS)}.")
    labels = list(label_columns)
    if groups is None:
        groups = conflict_groups(df, [*labels, *(variables or {})])
    conflicts = np.asarray(conflicts, dtype=bool) | group_mask(df, groups, labels)
    rows = _label_rows(df, labels, P, score, flagged, conflicts)
    weights = {**interleave_weights(labels, score, variables), **(weights or {})}
    if not variables:
        return _ranked(rows, groups, QUEUE_COLUMNS, order=order, weights=weights, quota=quota)
    rows = rows.assign(human_value=rows["human_value"].astype(str),
                       suggested_value=(1 - rows["human_value"]).astype(str),
                       suggested_probability=(1 - rows["score"]).round(4), new_value="")
    parts = [rows]
    for v, scores in variables.items():
        in_group = group_mask(df, groups, [v])[:, 0]
        scores = replace(scores, conflicts=np.asarray(scores.conflicts, dtype=bool) | in_group)
        parts.append(_class_rows(df, v, scores))
    table = pd.concat([p for p in parts if len(p)] or [rows], ignore_index=True)
    return _ranked(table, groups, CLASS_QUEUE_COLUMNS, order=order, weights=weights, quota=quota)


def interleave_weights(labels: Sequence[str], score: np.ndarray,
                       variables: Mapping[str, ClassScores] | None = None) -> dict[str, float]:
    """Expected wrong codes per label and variable: the sum over all rows of ``1 - score``.

    With the default ``"calibrated"`` scores, ``1 - score`` is the calibrated probability that the code is
    wrong, so the sum is the number of wrong codes the calibrated model expects. Unlike confident
    learning's count (:func:`lexcoder.audit.scoring.expected_errors`), which takes every row past a
    per-class threshold as wholly wrong, a row the model is unsure about adds only its probability: an
    ambiguous label's share grows less (measured in ``benchmarks/README.md``, issue 16). A variable adds
    ``1 - P(given class)`` per row.
    """
    weights = {lab: float((1 - score[:, j]).sum()) for j, lab in enumerate(labels)}
    for v, s in (variables or {}).items():
        weights[v] = float((1 - s.score).sum())
    return weights


def _ranked(rows: pd.DataFrame, groups: pd.DataFrame, columns: list[str], *, order: str,
            weights: dict[str, float], quota: int | Mapping[str, int] | None) -> pd.DataFrame:
    """Conflicting groups first (grouped), then the other pairs in ``order``, capped by ``quota``; ranks."""
    info = groups.set_index(["row", "label"]) if len(groups) else None
    keys = list(zip(rows["_row"], rows["label"]))
    in_group = np.array([info is not None and k in info.index for k in keys], dtype=bool)
    # evidence, nearest_other: filled by lexcoder.audit.explain
    rows = rows.assign(evidence="", nearest_other="", group="", copies="", block="", _group=-1, _exact=False)
    if in_group.any():
        found = info.loc[[k for k, g in zip(keys, in_group) if g]]
        rows.loc[in_group, "_group"] = found["group"].to_numpy()
        rows.loc[in_group, "_exact"] = found["exact"].to_numpy()
        rows.loc[in_group, "copies"] = found["copies"].to_numpy()
        model = rows.loc[in_group, "reason"]
        rows.loc[in_group, "reason"] = [f"{m}; {c}" if m else c for m, c in zip(model, found["reason"])]
    certain, rest = _grouped(rows[in_group]), rows[~in_group]
    if order == "score":
        rest = rest.sort_values(["score", "id", "label"], kind="stable")
    else:
        names = sorted(weights)
        index = rest["label"].map({n: i for i, n in enumerate(names)}).to_numpy()
        rest = rest.iloc[interleave(index, 1 - rest["score"].to_numpy(), [weights[n] for n in names])]
    rest = rest[apply_quota(rest["label"].to_numpy(), quota)]
    out = pd.concat([certain, rest], ignore_index=True)
    ids = {g: f"G{k + 1}" for k, g in enumerate(pd.unique(certain["_group"]))}
    out["group"] = [ids.get(g, "") for g in out["_group"]]
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out[columns]


def _grouped(certain: pd.DataFrame) -> pd.DataFrame:
    """Conflict rows, each (group, label) on consecutive ranks: groups of identical copies first, then by
    their most suspect pair; within a group by code (1 first) and id."""
    if not len(certain):
        return certain
    unit = certain.groupby(["_group", "label"])
    certain = certain.assign(_near_only=~unit["_exact"].transform("any"), _best=unit["score"].transform("min"),
                             _code=certain["human_value"].astype(str))
    return certain.sort_values(["_near_only", "_best", "_group", "label", "_code", "id"],
                               ascending=[True, True, True, True, False, True], kind="stable")


def _label_rows(df: pd.DataFrame, labels: list[str], P: np.ndarray, score: np.ndarray, flagged: np.ndarray,
                conflicts: np.ndarray) -> pd.DataFrame:
    """The queue rows of the 0/1 labels, unsorted (``_row``: position in ``df``)."""
    rows, cols = np.nonzero(flagged | conflicts)
    Y = df[labels].to_numpy().astype(int)
    return pd.DataFrame({
        "id": df["id"].to_numpy()[rows], "label": [labels[c] for c in cols], "text": df["text"].to_numpy()[rows],
        "human_value": Y[rows, cols], "model_probability": P[rows, cols].round(4),
        "score": score[rows, cols].round(4),
        "reason": [_reason(Y[r, c], P[r, c], flagged[r, c]) for r, c in zip(rows, cols)],
        "decision": "", "note": "",
        "source_row": _source_rows(df, rows), "_row": rows,
    })


def _source_rows(df: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    return df["source_row"].to_numpy()[rows] if "source_row" in df else rows + 1


def suggested_classes(y: np.ndarray, P: np.ndarray) -> np.ndarray:
    """(n,) index of the class the model suggests instead of ``y`` (indices): the most probable other one."""
    others = np.array(P, dtype=float, copy=True)
    others[np.arange(len(y)), y] = -np.inf
    return others.argmax(axis=1)


def _class_rows(df: pd.DataFrame, variable: str, s: ClassScores) -> pd.DataFrame:
    """The queue rows of one categorical variable, unsorted (conflict reasons come from the groups)."""
    rows = np.flatnonzero(s.flagged | s.conflicts)
    given = df[variable].astype(str).to_numpy()
    y = np.searchsorted(s.classes, given)
    suggested = suggested_classes(y, s.P)
    p_given, p_suggested = s.P[rows, y[rows]], s.P[rows, suggested[rows]]
    reasons = [f"model suggests {s.classes[suggested[r]]!r} (p={p_suggested[i]:.2f}), coded {given[r]!r} "
               f"(p={p_given[i]:.2f})" if s.flagged[r] else "" for i, r in enumerate(rows)]
    return pd.DataFrame({
        "id": df["id"].to_numpy()[rows], "label": variable, "text": df["text"].to_numpy()[rows],
        "human_value": given[rows], "suggested_value": s.classes[suggested[rows]].astype(str),
        "suggested_probability": p_suggested.round(4), "model_probability": p_given.round(4),
        "score": s.score[rows].round(4), "reason": reasons, "decision": "", "new_value": "", "note": "",
        "source_row": _source_rows(df, rows), "_row": rows,
    })


def select(queue: pd.DataFrame, *, label: str | None = None, top: int | None = None) -> pd.DataFrame:
    """A view of the queue: one label only and/or the ``top`` highest-ranked rows (ranks kept)."""
    view = queue if label is None else queue[queue["label"] == label]
    return view.head(top) if top is not None else view


def write_queue(view: pd.DataFrame, path, *, parquet_path=None, full: pd.DataFrame | None = None,
                neutralise_formulas: bool = True) -> Path:
    """Write the view for review in a spreadsheet, and the full queue as Parquet.

    Parameters
    ----------
    view : the rows to review (:func:`select`)
    path : ``.csv`` (UTF-8 with BOM, so Excel shows accents) or any other table format by extension
        (``.xlsx``, ``.tsv`` ...)
    parquet_path : where to write ``full`` (or ``view``) unchanged, for programs
    neutralise_formulas : prefix ``'`` to text cells that a spreadsheet would run as formulas (ids,
        labels, texts starting with ``= + - @``, tab or CR; see :func:`lexcoder.safety.neutralise_formulas`).
        ``lexcoder corrections apply`` removes the prefix again when it reads the reviewed file.

    Returns
    -------
    ``path``
    """
    path = Path(path)
    sheet = safety.neutralise_formulas(view) if neutralise_formulas else view
    if table_format(path) == "csv" and path.suffix.lower() == ".csv":
        with atomic_path(path) as tmp:
            sheet.to_csv(tmp, index=False, encoding="utf-8-sig")
    else:
        write_table(sheet, path)
    if parquet_path is not None:
        write_table(view if full is None else full, parquet_path)
    return path
