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


def format_rows(rows, limit: int = 10) -> str:
    """Human-readable list of (1-based) row numbers, shortened after ``limit`` entries."""
    rows = list(rows)
    shown = ", ".join(str(r) for r in rows[:limit])
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return f"{shown}{more}"
