"""Why an audit row is in the queue, as the desk shows it: the audit's explanation cells read into parts.

The audit writes its explanations as text cells (:mod:`lexcoder.audit.explain`, :mod:`lexcoder.audit.queue`,
:mod:`lexcoder.audit.blocks`): ``evidence`` (``“term” +1.84, “at any time” +1.21`` and, for encoder runs,
``similar texts coded 1: id 55 (0.91) “…” | …``), ``nearest_other`` (``id 412 (0.78) “…” | …``), ``copies``
(``1: a, b; 0: c``), ``block`` (``doc_id=X``) and the block's description at the end of ``reason``
(``…; block: doc_id 'X': 6 texts left at the default code 0 …``). :func:`explain_row` splits them into
lists the desk lays out. A cell that does not read as expected is passed on whole (``*_text``), never
dropped, so a format change of the audit shows as plain text rather than hiding the explanation.

Everything here comes from the data (texts, ids, n-grams): the desk puts it on the page as text only.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_TERM = re.compile(r"“(.+?)” ([+-]\d+(?:\.\d+)?)(?:, |$)")
_TEXT = re.compile(r"id (.+?) \((-?\d+(?:\.\d+)?)\) “(.*?)”(?= \| id |$)", re.S)
_SIMILAR = re.compile(r"(?:^|; )similar texts coded (.+?): (?=id )")
_BLOCK = "block: "


def terms(cell: str) -> list[dict[str, Any]] | None:
    """``[{"term", "weight"}]`` of an n-gram evidence cell; ``None`` when it does not read as one."""
    found = list(_TERM.finditer(cell))
    if not found or "".join(m.group(0) for m in found) != cell:
        return None
    return [{"term": m.group(1), "weight": float(m.group(2))} for m in found]


def texts(cell: str) -> list[dict[str, Any]] | None:
    """``[{"id", "similarity", "text"}]`` of a ``id … (0.78) “…” | …`` cell; ``None`` when it does not read
    as one."""
    found = list(_TEXT.finditer(cell))
    if not found or " | ".join(m.group(0) for m in found) != cell:
        return None
    return [{"id": m.group(1), "similarity": float(m.group(2)), "text": m.group(3)} for m in found]


def split_reason(reason: str) -> tuple[str, list[str]]:
    """The reason without its cluster descriptions, and those descriptions (``block: …`` parts)."""
    parts = reason.split("; ")
    blocks = [p[len(_BLOCK):] for p in parts if p.startswith(_BLOCK)]
    return "; ".join(p for p in parts if not p.startswith(_BLOCK)), blocks


def copies_by_code(cell: str) -> list[dict[str, Any]]:
    """``[{"code", "ids"}]`` of a ``1: a, b; 0: c`` cell (ids as listed, ``... (+n)`` included)."""
    out = []
    for part in cell.split("; ") if cell else []:
        code, _, ids = part.partition(": ")
        out.append({"code": code, "ids": [i for i in ids.split(", ") if i]})
    return out


def explain_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """What the desk shows of why an audit item is in the queue.

    Parameters
    ----------
    row : an ``items`` row of the store (``reason``, ``evidence``, ``nearest_other``, ``dup_group``,
        ``copies``, ``block``)

    Returns
    -------
    dict with ``reason`` (without cluster descriptions), ``terms`` (n-grams and their contributions, or
    ``None``), ``similar`` (``{"code", "texts"}`` of an encoder run, or ``None``), ``nearest_other`` (texts,
    or ``None``), ``group``, ``copies`` (:func:`copies_by_code`), ``block`` and ``blocks`` (the cluster and
    its descriptions); ``evidence_text`` / ``nearest_text``: the parts of the cells that did not read as
    expected (shown as they are)
    """
    reason, blocks = split_reason(str(row["reason"] or ""))
    evidence, nearest = str(row["evidence"] or ""), str(row["nearest_other"] or "")
    term_cell, similar, left = evidence, None, []
    found = _SIMILAR.search(evidence)
    if found:
        term_cell = evidence[:found.start()]
        shown = texts(evidence[found.end():])
        if shown is None:
            left.append(evidence[found.start():].removeprefix("; "))
        else:
            similar = {"code": found.group(1), "texts": shown}
    parsed_terms = terms(term_cell) if term_cell else None
    if term_cell and parsed_terms is None:
        left.insert(0, term_cell)
    parsed_nearest = texts(nearest) if nearest else None
    return {"reason": reason, "terms": parsed_terms, "similar": similar, "nearest_other": parsed_nearest,
            "evidence_text": "; ".join(left), "nearest_text": nearest if nearest and parsed_nearest is None else "",
            "group": str(row["dup_group"] or ""), "copies": copies_by_code(str(row["copies"] or "")),
            "block": str(row["block"] or ""), "blocks": blocks}
