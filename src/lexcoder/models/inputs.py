"""What a model reads: texts, or texts with their context (neighbours, position, metadata).

A model's ``fit``/``predict_proba`` take either a list of texts or a DataFrame of *context inputs*
(:func:`lexcoder.context.model_inputs` builds it from a run's table), one row per text, with columns:

- ``text``: the text to code;
- ``previous`` / ``next`` (optional): the neighbouring texts of the same document before / after it, joined
  in document order (empty at the document's start / end);
- ``position`` (optional): the text's relative position in its document, in [0, 1];
- any other column: metadata (court, year...), categories or numbers.

The families receive such a frame as :class:`ContextTexts`: a list of one string per row — the row written
out in full, which is what a family that knows no context reads, and what identifies the training data
(checkpoints) — that carries the frame itself in ``.frame``. TF-IDF builds a feature block per column
(:mod:`lexcoder.models.tfidf`); the fine-tuned families tokenise ``previous [SEP] text [SEP] next``,
truncated around the text, after a short position/metadata prefix (:func:`encode_inputs`).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import LexcoderError

if TYPE_CHECKING:
    from .windows import Encoded

TEXT, PREVIOUS, NEXT, POSITION = "text", "previous", "next", "position"
NEIGHBOURS = (PREVIOUS, NEXT)
CONTEXT_FIELDS = (TEXT, PREVIOUS, NEXT, POSITION)  # every other column of the inputs is metadata
SEPARATOR = " [SEP] "  # between neighbours and text in the written-out form (a tokenizer's own one when encoding)


class ContextTexts(list):
    """Texts with their context: a ``list`` of the rows written out (see :func:`written_out`) whose
    ``frame`` attribute holds the context inputs (index 0..n-1)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame.reset_index(drop=True)
        super().__init__(written_out(self.frame))


def metadata_columns(frame: pd.DataFrame) -> list[str]:
    """The metadata columns of context inputs: all but text, neighbours and position."""
    return [c for c in frame.columns if c not in CONTEXT_FIELDS]


def model_texts(texts: Any) -> list[str] | ContextTexts:
    """What a family's ``_fit``/``_predict_proba`` receive: a list of ``str``, or :class:`ContextTexts` for a
    DataFrame of context inputs (checked: a ``text`` column, positions in [0, 1])."""
    if isinstance(texts, ContextTexts):
        return texts
    if isinstance(texts, pd.DataFrame):
        return ContextTexts(_checked_frame(texts))
    return [str(t) for t in texts]


def _checked_frame(frame: pd.DataFrame) -> pd.DataFrame:
    if TEXT not in frame.columns:
        raise LexcoderError(f"Context inputs need a {TEXT!r} column (the texts); got columns {list(frame.columns)}. "
                            "Build them with lexcoder.context.model_inputs(table, config).")
    out = frame.copy()
    for col in (TEXT, *NEIGHBOURS):
        if col in out.columns:
            out[col] = [("" if _missing(v) else str(v)) for v in out[col]]
    if POSITION in out.columns:
        pos = pd.to_numeric(out[POSITION], errors="coerce").to_numpy(dtype=float)
        if np.isnan(pos).any() or (pos < 0).any() or (pos > 1).any():
            raise LexcoderError(f"The {POSITION!r} column of context inputs must hold numbers in [0, 1] (relative "
                                "position in the document).")
        out[POSITION] = pos
    return out


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def input_columns(texts: list[str] | ContextTexts) -> list[str] | None:
    """The context inputs' columns (None for plain texts): a fitted model needs the same to predict."""
    return list(texts.frame.columns) if isinstance(texts, ContextTexts) else None


def check_same_inputs(fitted: list[str] | None, texts: list[str] | ContextTexts, *, what: str = "texts") -> None:
    """A model fitted on context inputs predicts from the same columns, one fitted on texts from texts.

    Raises
    ------
    LexcoderError
        Naming the columns the model was fitted on and those it was given.
    """
    given = input_columns(texts)
    if given == fitted:
        return
    if fitted is None:
        raise LexcoderError(f"This model was fitted on plain texts; {what} are context inputs (columns {given}). "
                            "Give it the texts (a list of strings).")
    if given is None:
        raise LexcoderError(f"This model was fitted with context (columns {fitted}); give {what} as a DataFrame "
                            "with these columns (lexcoder.context.model_inputs builds it), not as plain texts.")
    raise LexcoderError(f"This model was fitted on context inputs with columns {fitted}; {what} have columns "
                        f"{given}. Build them with the run's [context] settings.")


def prefix_texts(frame: pd.DataFrame) -> list[str] | None:
    """The short prefix that tells a language model the text's position and metadata, e.g.
    ``"position: 35%; court: High Court"`` (None when the inputs have neither)."""
    parts = []
    if POSITION in frame.columns:
        parts.append([f"position: {round(100 * p)}%" for p in frame[POSITION]])
    for col in metadata_columns(frame):
        parts.append([f"{col}: {'unknown' if _missing(v) else category(v)}" for v in frame[col]])
    return ["; ".join(row) for row in zip(*parts)] if parts else None


def category(value: Any) -> str:
    """A metadata value as a category: ``1998`` and ``1998.0`` alike, text stripped."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (int, np.integer)) or (isinstance(value, (float, np.floating)) and float(value).is_integer()):
        return str(int(value))
    return str(value).strip()


def written_out(frame: pd.DataFrame) -> list[str]:
    """Each row as one string: ``prefix [SEP] previous [SEP] text [SEP] next`` (parts the inputs lack are
    left out)."""
    prefix = prefix_texts(frame)
    rows = []
    for i, text in enumerate(frame[TEXT]):
        parts = [frame[PREVIOUS].iat[i]] if PREVIOUS in frame.columns else []
        parts.append(text)
        if NEXT in frame.columns:
            parts.append(frame[NEXT].iat[i])
        rows.append(SEPARATOR.join(([prefix[i]] if prefix is not None else []) + parts))
    return rows


# -- the fine-tuned families: one token window per text, the text at its centre ---------------------------
def encode_inputs(tokenizer, texts: Sequence[str], *, max_length: int, stride: int) -> "Encoded":
    """Token windows of ``texts`` (see :func:`lexcoder.models.windows.encode_windows`).

    Plain texts are cut into overlapping windows. Context inputs become one window per text:
    ``prefix [SEP] previous [SEP] text [SEP] next`` inside the tokenizer's special tokens (``[SEP]`` is its
    separator token, or ``" | "`` for tokenizers without one, as most decoder LLMs). The text keeps all its
    tokens; the neighbours share what remains of ``max_length`` (an even split, the shorter one's
    leftover going to the other), the previous text losing its start and the next one its end, so the
    window is centred on the text. A text that does not fit a window alone is windowed without its context.
    """
    from .windows import Encoded, encode_windows
    if not isinstance(texts, ContextTexts):
        return encode_windows(tokenizer, texts, max_length=max_length, stride=stride)
    frame = texts.frame
    head, tail = _special_tokens(tokenizer)
    sep = [tokenizer.sep_token_id] if tokenizer.sep_token_id is not None else _ids(tokenizer, [" | "])[0]
    pieces = {col: _ids(tokenizer, frame[col].tolist()) for col in (TEXT, *NEIGHBOURS) if col in frame.columns}
    prefix = prefix_texts(frame)
    prefix_ids = _ids(tokenizer, prefix) if prefix is not None else None
    budget = max_length - len(head) - len(tail)
    ids, owner, alone = [], [], []
    for i, text in enumerate(pieces[TEXT]):
        lead = (prefix_ids[i] + sep) if prefix_ids is not None else []
        room = budget - len(lead) - len(text) - len(sep) * sum(c in pieces for c in NEIGHBOURS)
        if room < 0:
            alone.append(i)
            continue
        before, after = (pieces[c][i] if c in pieces else None for c in NEIGHBOURS)
        n_before, n_after = _share(room, len(before or []), len(after or []))
        body = lead + ([*before[len(before) - n_before:], *sep] if before is not None else []) + text + \
            ([*sep, *after[:n_after]] if after is not None else [])
        ids.append(head + body + tail)
        owner.append(i)
    if alone:  # too long for a window with context: the plain text's windows
        rest = encode_windows(tokenizer, frame[TEXT].iloc[alone].tolist(), max_length=max_length, stride=stride)
        ids += rest.ids
        owner += np.asarray(alone)[rest.owner].tolist()
    return Encoded(ids=ids, owner=np.asarray(owner, dtype=np.int64), n_texts=len(frame))


def _ids(tokenizer, texts: list[str]) -> list[list[int]]:
    if not texts:
        return []
    return [list(x) for x in tokenizer(texts, add_special_tokens=False, return_attention_mask=False)["input_ids"]]


def _special_tokens(tokenizer) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after a single text (e.g. ``[CLS]`` / ``[SEP]``),
    read from how it wraps a probe word, so any post-processor (template, BOS only, none) is respected."""
    plain = _ids(tokenizer, ["a"])[0]
    wrapped = list(tokenizer(["a"], return_attention_mask=False)["input_ids"][0])
    for k in range(len(wrapped) - len(plain) + 1):
        if wrapped[k:k + len(plain)] == plain:
            return wrapped[:k], wrapped[k + len(plain):]
    raise LexcoderError("Cannot tell where this tokenizer puts its special tokens; use the model without "
                        "[context].")


def _share(room: int, want_before: int, want_after: int) -> tuple[int, int]:
    """Tokens of the previous and next texts that fit ``room``: half each, a shorter side's rest to the other."""
    before = min(want_before, max(room // 2, room - want_after))
    return before, min(want_after, room - before)
