"""Documentation written from the code: the README's tables of each model family's settings.

The settings of a family are declared once, on its class (:mod:`lexcoder.models.params`); the README
shows them as Markdown tables between markers, which this module rewrites in place::

    <!-- settings:tfidf -->
    (generated table)
    <!-- /settings:tfidf -->

Run ``python -m lexcoder.docs --write README.md`` after changing a setting; ``--check README.md`` exits
with status 1 when the file is out of date (the test suite checks the same).
"""
from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from .config import toml_value
from .errors import LexcoderError

_BLOCK = re.compile(r"<!-- settings:(?P<kind>[\w-]+) -->\n.*?<!-- /settings:(?P=kind) -->", re.DOTALL)
_OPENING = re.compile(r"<!-- settings:([\w-]+) -->")


def settings_table(kind: str) -> str:
    """Every setting of model family ``kind`` as a Markdown table (setting, type/range, default, what it does).

    Raises
    ------
    ConfigError
        For an unknown ``kind``.
    """
    from .models.params import REQUIRED, setting_docs
    from .models.registry import get_model_class
    rows = ["| setting | type / range | default | what it does |", "|---|---|---|---|"]
    for doc in setting_docs(get_model_class(kind)):
        name = f"`{doc.name}`" + (" (in `[model]`)" if doc.name == "name" else "")
        default = ("required" if doc.default is REQUIRED else "unset" if doc.default is None
                   else f"`{toml_value(doc.default)}`")
        rows.append("| " + " | ".join(_cell(c) for c in (name, doc.expected, default, doc.description)) + " |")
    return "\n".join(rows)


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell (a ``|`` would end the cell)."""
    return text.replace("|", "\\|").replace("\n", " ")


def update_markdown(text: str) -> str:
    """``text`` with every ``<!-- settings:KIND -->`` block replaced by :func:`settings_table` of KIND.

    Raises
    ------
    LexcoderError
        For an opening marker without its closing ``<!-- /settings:KIND -->``, or an unknown kind.
    """
    opened = _OPENING.findall(text)
    closed = [m.group("kind") for m in _BLOCK.finditer(text)]
    if opened != closed:
        missing = [k for k in opened if k not in closed]
        raise LexcoderError(f"<!-- settings:{missing[0]} --> has no closing <!-- /settings:{missing[0]} --> "
                            "on a later line; add it after the table.")
    return _BLOCK.sub(lambda m: (f"<!-- settings:{m['kind']} -->\n\n{settings_table(m['kind'])}\n\n"
                                 f"<!-- /settings:{m['kind']} -->"), text)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lexcoder.docs (--write | --check) FILE``: rewrite or check a Markdown file's tables."""
    parser = argparse.ArgumentParser(prog="python -m lexcoder.docs", description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", metavar="FILE", type=Path, help="rewrite the settings tables of FILE")
    action.add_argument("--check", metavar="FILE", type=Path, help="exit with 1 if FILE's tables are stale")
    args = parser.parse_args(argv)
    path = args.write or args.check
    text = path.read_text(encoding="utf-8")
    try:
        new = update_markdown(text)
    except LexcoderError as err:
        parser.exit(2, f"Error: {path}: {err}\n")
    if args.check:
        if new != text:
            parser.exit(1, f"{path}: the settings tables are out of date; run python -m lexcoder.docs "
                           f"--write {path}\n")
        return 0
    if new != text:
        path.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
