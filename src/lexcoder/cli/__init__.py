"""The ``lexcoder`` command line: a thin layer over the Python API (one module per command group)."""
from __future__ import annotations

import sys

from . import audit, coding, core, estimate, notify, report, review  # noqa: F401  (each registers its commands on `app`)
from .common import app, console, err_console, friendly

__all__ = ["app", "console", "err_console", "friendly", "main"]


def main() -> None:
    app(prog_name="lexcoder")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
