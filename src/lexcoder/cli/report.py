"""``lexcoder report``: (re)build report.html and report.md of a run."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..report import build_report
from .common import app, console, friendly


@app.command()
@friendly
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (after `lexcoder run` or `lexcoder demo`).")],
    top_issues: Annotated[Optional[int], typer.Option(
        help="Likely coding errors to list from label_issues.csv (default: [report] top_issues).")] = None,
) -> None:
    """Build the run's report: report.html (plots embedded, opens in any browser) and report.md (tables)."""
    t0 = time.perf_counter()
    paths = build_report(run_dir, top_issues=top_issues)
    console.print(f"Wrote {paths.html} and {paths.md} in {time.perf_counter() - t0:.1f} s.")
