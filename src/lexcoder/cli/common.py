"""What every command module shares: the typer app, the consoles, and `friendly` (errors → exit 2)."""
from __future__ import annotations

import functools
import logging

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from ..errors import LexcoderError

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    name="lexcoder",
    help="Code legal texts with language models: train on human-coded data, evaluate with the statistics "
         "you publish, find coding errors, and estimate prevalences with valid confidence intervals.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def friendly(fn):
    """Turn :class:`LexcoderError` into a short red message and exit status 2 (no traceback)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except LexcoderError as err:
            # soft_wrap: long paths stay whole (copyable); the terminal wraps the line
            err_console.print(f"[bold red]Error:[/] {escape(str(err))}", markup=True, highlight=False,
                              soft_wrap=True)
            raise typer.Exit(code=2) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]Interrupted.[/] Continue later with --resume (finished stages are kept).")
            raise typer.Exit(code=130) from None
        except OSError as err:  # a file system refusal lexcoder did not anticipate: still no traceback
            where = f" {err.filename}" if err.filename else ""
            err_console.print(f"[bold red]Error:[/] {escape(err.strerror or str(err))}:{escape(where)}. Check the "
                              "path, the free disk space and your permissions, then run the command again.",
                              markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None
    return wrapper


@app.callback()
def _setup(verbose: bool = typer.Option(False, "--verbose", "-v", help="Show debug messages.")) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s",
                        handlers=[RichHandler(console=err_console, show_time=False, show_path=False)],
                        force=True)
    for noisy in ("httpx", "urllib3", "filelock", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
