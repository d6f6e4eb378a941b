"""What the events of one item add up to: each coder's stance, the item's status and its final codes.

Pure functions over the rows :mod:`lexcoder.review.store` reads from its views, so the rules can be read
(and tested) without SQL:

- a coder's **stance** on an item is their latest action among deciding it and flagging it (undone actions
  do not count); skipping is no stance;
- an item needs ``required`` coders (1, or 2 when it is double-coded). Its **status** is, in this order:
  ``resolved`` (an adjudicator decided it), ``flagged`` (a coder flagged it for discussion), ``conflict``
  (two coders decided it and disagree on some label), ``open`` (fewer than ``required`` coders decided it)
  or ``done`` (all coders who decided it agree);
- the **final** codes are the adjudicator's, else those all coders agree on once enough coders decided.
  Nothing is ever last-write-wins: two coders who disagree always reach the adjudicator.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

DECISIONS = ("keep", "flip", "change", "code")
"""Actions that decide an item's codes (``keep``/``flip``/``change`` on an audit row, ``code`` a new text)."""
STANCES = (*DECISIONS, "flag", "resolve")
"""Actions that form a coder's (or adjudicator's) stance on an item; ``skip`` and ``note`` do not."""
STATUSES = ("open", "done", "conflict", "flagged", "resolved")
ADJUDICATION = ("conflict", "flagged")
"""Statuses that put an item in the adjudicator's queue."""


@dataclass(frozen=True)
class Stance:
    """One person's current stance on an item.

    Attributes
    ----------
    coder : who
    role : ``"coder"`` or ``"adjudicator"``
    action : the stance's action (one of :data:`STANCES`)
    values : ``{label: value}`` of a decision or resolution (``"0"``/``"1"`` for a 0/1 label, the class for
        a categorical variable); empty for a flag
    order : the stance's event id (earlier stances first)
    """

    coder: str
    role: str
    action: str
    values: dict[str, str] = field(default_factory=dict)
    order: int = 0


@dataclass(frozen=True)
class ItemState:
    """The derived state of one item (cached in the store's ``items`` and ``coder_state`` tables)."""

    status: str
    n_coders: int
    final: dict[str, str]
    coder_states: dict[str, str]  # coder -> "decided" / "flagged" / "skipped"


def stances_from_rows(rows: Iterable[Sequence]) -> list[Stance]:
    """Group ``(coder, role, action, order, label, value)`` rows (one per label) into stances."""
    grouped: dict[tuple[str, str], Stance] = {}
    for coder, role, action, order, label, value in rows:
        key = (coder, role)
        if key not in grouped:
            grouped[key] = Stance(coder, role, action, {}, int(order))
        if value is not None and label is not None:
            grouped[key].values[label] = value
    return sorted(grouped.values(), key=lambda s: s.order)


def item_state(stances: Sequence[Stance], *, required: int, labels: Sequence[str],
               skipped_by: Iterable[str] = ()) -> ItemState:
    """The status, number of deciding coders, final codes and per-coder state of one item.

    Parameters
    ----------
    stances : every live stance on the item (:func:`stances_from_rows`)
    required : coders the item needs (2 for a double-coded item)
    labels : the labels (and variables) a decision of this item holds: the audit row's label, or every
        label of the codebook for a new text
    skipped_by : coders with a live skip of the item
    """
    coders = [s for s in stances if s.role == "coder"]
    decided = [s for s in coders if s.action in DECISIONS and all(lab in s.values for lab in labels)]
    flagged = [s for s in coders if s.action == "flag"]
    resolution = next((s for s in reversed(stances) if s.role == "adjudicator" and s.action == "resolve"
                       and all(lab in s.values for lab in labels)), None)
    states = {c: "skipped" for c in skipped_by}
    states.update({s.coder: "decided" for s in decided})
    states.update({s.coder: "flagged" for s in flagged})
    agree = all(len({s.values[lab] for s in decided}) <= 1 for lab in labels)
    if resolution is not None:
        return ItemState("resolved", len(decided), {lab: resolution.values[lab] for lab in labels}, states)
    if flagged:
        status = "flagged"
    elif not agree:
        status = "conflict"
    elif len(decided) < required:
        status = "open"
    else:
        return ItemState("done", len(decided), {lab: decided[0].values[lab] for lab in labels}, states)
    return ItemState(status, len(decided), {}, states)
