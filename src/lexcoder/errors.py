"""Errors that lexcoder reports to users.

Every error raised for bad input is a :class:`LexcoderError`: the CLI prints its message (no traceback)
and exits with status 2. Messages say what was found, what was expected and how to fix it.
"""
from __future__ import annotations


class LexcoderError(ValueError):
    """A problem the user can fix (bad input file, bad config, missing model...)."""


class DataError(LexcoderError):
    """The input table does not meet lexcoder's expectations."""


class ConfigError(LexcoderError):
    """The configuration file or a command-line override is invalid."""


class InvalidSettingError(ConfigError, TypeError):
    """A model's setting has the wrong type, is out of range, or conflicts with another setting.

    A ``ValueError`` and a ``TypeError``, like scikit-learn's ``InvalidParameterError``.
    """


def format_rows(rows, limit: int = 10) -> str:
    """Human-readable list of (1-based) row numbers, shortened after ``limit`` entries."""
    rows = list(rows)
    shown = ", ".join(str(r) for r in rows[:limit])
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return f"{shown}{more}"


def did_you_mean(name: object, choices) -> str:
    """``" (did you mean 'x'?)"`` for the choice closest to ``name``, or ``""`` if none is close.

    A choice that differs only in case or surrounding spaces wins (and the spaces are pointed out).
    """
    import difflib
    choices = [str(c) for c in choices]
    same = [c for c in choices if c.strip().lower() == str(name).strip().lower()]
    if same:
        spaces = " It has spaces around the name." if same[0].strip() != same[0] else ""
        return f" (did you mean {same[0]!r}?{spaces})"
    close = difflib.get_close_matches(str(name), choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
