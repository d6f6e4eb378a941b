"""``lexcoder notify-test``: check the notification settings (environment variables) with a test message."""
from __future__ import annotations

from typing import Annotated

import typer

from ..errors import LexcoderError
from ..notify import TELEGRAM_CHAT_ENV, TELEGRAM_TOKEN_ENV, WEBHOOK_ENV, channels_from_env, send
from .common import app, console, friendly


@app.command("notify-test")
@friendly
def notify_test(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each destination.")] = 5.0,
) -> None:
    """Send a test message to the Telegram chat / webhook set in the environment."""
    channels = channels_from_env()
    if not channels:
        raise LexcoderError(f"No notification channel is configured. Set {TELEGRAM_TOKEN_ENV} and "
                            f"{TELEGRAM_CHAT_ENV} (Telegram bot), or {WEBHOOK_ENV} (any URL that accepts a "
                            "JSON POST), then run this command again.")
    event = {"event": "test", "run": "notify-test", "text": "lexcoder test message: notifications work."}
    delivered = send(event, channels, timeout=timeout)
    for channel in channels:
        ok = channel.name in delivered
        console.print(f"{channel.name}: " + ("[green]sent[/]" if ok else "[red]not sent[/] (see the warning above)"))
    if len(delivered) < len(channels):
        raise typer.Exit(code=1)
