"""`lexcoder review RUN_DIR`: the review desk in the browser (audit queue, new texts, double coding)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer
from rich.markup import escape

from ..errors import ConfigError
from .common import app, console, friendly


@app.command()
@friendly
def review(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (lexcoder run / demo), audited or not.",
                                            exists=True, file_okay=False)],
    host: Annotated[str, typer.Option(help="Address to listen on. Anything but 127.0.0.1/localhost serves "
                                           "other machines and requires the access token printed at start.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0: any free port).")] = 8765,
    coder: Annotated[Optional[str], typer.Option(help="Your name: suggested on the sign-in page, and the "
                                                      "project owner unless --owner names another.")] = None,
    owner: Annotated[Optional[str], typer.Option(help="The project owner: edits the codebook and settings, "
                                                      "exports, adjudicates.")] = None,
    adjudicator: Annotated[Optional[list[str]], typer.Option(help="Who resolves disagreements besides the "
                                                                  "owner (repeatable).")] = None,
    double: Annotated[Optional[float], typer.Option(help="Share of items coded by two coders independently "
                                                         "(0-1), for inter-coder agreement.")] = None,
    lease_minutes: Annotated[Optional[float], typer.Option(help="How long an item stays reserved for the "
                                                                "coder it was given to.")] = None,
    suggestions: Annotated[Optional[bool], typer.Option("--suggestions/--no-suggestions", help=(
        "Show the model's codes when coding new texts (off by default: pre-annotation biases coders)."))] = None,
    texts: Annotated[Optional[Path], typer.Option(help="A table of new texts to code (columns named as in the "
                                                       "run's config).", exists=True, dir_okay=False)] = None,
    order: Annotated[Literal["random", "stratified", "active"], typer.Option(
        help="Order of the new texts: random, stratified by the model's predicted codes, or active (what "
             "`lexcoder next` would choose first: unsure, likely rare, new topics).")] = "random",
    limit: Annotated[Optional[int], typer.Option(help="Add at most this many of --texts.")] = None,
    ledger: Annotated[Path, typer.Option(help="The corrections ledger the owner exports the audit decisions to.")]
    = Path("corrections.csv"),
    token: Annotated[Optional[str], typer.Option(envvar="LEXCODER_REVIEW_TOKEN", help=(
        "Access token for a desk on another address (default: a new random one, printed at start)."))] = None,
    export_table: Annotated[Optional[Path], typer.Option(help="Write the coded new texts (CSV/XLSX/...) and exit.")]
    = None,
    export_decisions: Annotated[Optional[Path], typer.Option(help="Write every decision (CSV/XLSX/...) and "
                                                                  "exit.")] = None,
    export_ledger: Annotated[bool, typer.Option("--export-ledger", help="Append the final audit decisions to "
                                                                        "--ledger and exit.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace existing export files.")] = False,
) -> None:
    """Open the review desk: review the audit queue, code new texts, double-code and adjudicate."""
    from .. import review as desk
    settings = {"owner": owner or coder, "adjudicators": adjudicator, "double_share": double,
                "lease_minutes": lease_minutes, "suggestions": suggestions}
    settings = {k: v for k, v in settings.items() if v is not None}
    store = desk.open_run_store(run_dir, settings=settings)
    if texts is not None:
        added = desk.load_texts(store, run_dir, texts, order=order, limit=limit)
        console.print(f"{added} new text(s) to code from {escape(str(texts))}.")
    if export_table or export_decisions or export_ledger:
        _export(store, run_dir, export_table, export_decisions, ledger if export_ledger else None, overwrite)
        return
    try:
        from ..review.app import serve
    except ImportError as err:
        raise ConfigError(f"The review desk needs FastAPI and uvicorn ({err.name} is missing): pip install "
                          "'lexcoder[review]'.") from None
    counts = store.counts()["kinds"]
    console.print(f"Review desk for [bold]{escape(str(run_dir))}[/]: {sum(counts['audit'].values())} audit rows, "
                  f"{sum(counts['code'].values())} new texts; store {escape(str(store.path))}")
    serve(store, run_dir=run_dir, host=host, port=port, ledger=ledger, token=token, default_coder=coder,
          announce=lambda url: console.print(f"Open [bold]{escape(url)}[/] in your browser (Ctrl-C stops the desk).",
                                             soft_wrap=True))


def _export(store, run_dir: Path, table: Path | None, decisions: Path | None, ledger: Path | None,
            overwrite: bool) -> None:
    from .. import review as desk
    if table is not None:
        desk.write_table_safely(desk.coded_table(store), table, overwrite=overwrite)
        console.print(f"Coded texts: [bold]{escape(str(table))}[/]")
    if decisions is not None:
        desk.write_table_safely(desk.decisions_table(store), decisions, overwrite=overwrite)
        console.print(f"Decisions: [bold]{escape(str(decisions))}[/]")
    if ledger is not None:
        result = desk.export_ledger(store, run_dir, ledger)
        console.print(f"Ledger {escape(str(ledger))}: {result.added} new entries ({result.flipped} changing a code), "
                      f"{result.already} already recorded.")
        for s in result.stale:
            console.print(f"[yellow]Not written[/]: {escape(s['id'])} / {escape(s['label'])} showed {s['shown']} "
                          f"but the code is {s['now']} now (corrected by someone else): review it again.")
