"""Optional notifications when a long run finishes or fails (Telegram bot, generic JSON webhook).

Credentials come only from environment variables, never from the config file (which is copied into every
run directory):

``LEXCODER_TELEGRAM_TOKEN`` and ``LEXCODER_TELEGRAM_CHAT_ID``
    a Telegram bot token (from @BotFather) and the chat to post to;
    ``LEXCODER_TELEGRAM_API`` overrides the API base URL (default ``https://api.telegram.org``).
``LEXCODER_WEBHOOK_URL``
    any URL that accepts a JSON ``POST`` (Slack/Mattermost/Teams incoming webhooks, ntfy, your own server).

Sending never fails the run: a network error, a timeout or an HTTP error is logged as a warning.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TELEGRAM_TOKEN_ENV = "LEXCODER_TELEGRAM_TOKEN"
TELEGRAM_CHAT_ENV = "LEXCODER_TELEGRAM_CHAT_ID"
TELEGRAM_API_ENV = "LEXCODER_TELEGRAM_API"
WEBHOOK_ENV = "LEXCODER_WEBHOOK_URL"
TELEGRAM_API = "https://api.telegram.org"
EVENTS = ("finish", "fail")


@dataclass(frozen=True)
class Channel:
    """One destination: where to ``POST`` and how to turn an event into the JSON body."""

    name: str
    url: str
    chat_id: str | None = None  # Telegram only

    def body(self, event: dict[str, Any]) -> dict[str, Any]:
        if self.name == "telegram":
            return {"chat_id": self.chat_id, "text": event["text"], "disable_web_page_preview": True}
        return event

    def __repr__(self) -> str:  # never show a token in logs
        return f"Channel({self.name})"


def channels_from_env(env: Mapping[str, str] | None = None) -> list[Channel]:
    """The channels configured by environment variables (empty when none is set).

    Parameters
    ----------
    env : mapping to read instead of ``os.environ`` (for tests)
    """
    env = os.environ if env is None else env
    channels = []
    token, chat = env.get(TELEGRAM_TOKEN_ENV, "").strip(), env.get(TELEGRAM_CHAT_ENV, "").strip()
    if token and chat:
        base = env.get(TELEGRAM_API_ENV, "").strip() or TELEGRAM_API
        channels.append(Channel("telegram", f"{base.rstrip('/')}/bot{token}/sendMessage", chat))
    elif token or chat:
        log.warning("Telegram notifications need both %s and %s; only one is set.",
                    TELEGRAM_TOKEN_ENV, TELEGRAM_CHAT_ENV)
    url = env.get(WEBHOOK_ENV, "").strip()
    if url:
        channels.append(Channel("webhook", url))
    return channels


def post_json(url: str, body: dict[str, Any], *, timeout: float) -> None:
    """``POST`` ``body`` as JSON to ``url``; raises on network or HTTP errors."""
    data = json.dumps(body, default=str).encode("utf-8")
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "lexcoder"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http/https only)
        response.read()


def send(event: dict[str, Any], channels: list[Channel], *, timeout: float = 5.0) -> list[str]:
    """Send ``event`` to every channel; never raises.

    Parameters
    ----------
    event : JSON-serialisable dict with at least ``"text"`` (the human-readable message)
    channels : destinations, e.g. from :func:`channels_from_env`
    timeout : seconds to wait for each destination

    Returns
    -------
    names of the channels that accepted the message
    """
    delivered = []
    for channel in channels:
        if not channel.url.startswith(("http://", "https://")):
            log.warning("Notification via %s skipped: the URL must start with http:// or https://.",
                        channel.name)
            continue
        try:
            post_json(channel.url, channel.body(event), timeout=timeout)
            delivered.append(channel.name)
        except (urllib.error.URLError, OSError, ValueError) as err:  # HTTPError, timeouts, DNS failures
            reason = err if isinstance(err, urllib.error.HTTPError) else getattr(err, "reason", None) or err
            log.warning("Could not send the %s notification via %s (%s); the run itself is not affected.",
                        event.get("event", "run"), channel.name, reason)
    return delivered


def finish_event(run: str, wall_s: float, metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    """The message for a finished run: macro-F1 (if evaluated) and wall time."""
    macro = (metrics or {}).get("macro", {}).get("f1")
    split = (metrics or {}).get("split", "test")
    score = f", macro-F1 {macro:.3f} ({split})" if isinstance(macro, (int, float)) else ""
    text = f"✅ lexcoder run {run} finished in {_duration(wall_s)}{score} on {socket.gethostname()}."
    return {"event": "finish", "run": run, "wall_s": round(wall_s, 1), "macro_f1": macro, "split": split,
            "host": socket.gethostname(), "text": text}


def fail_event(run: str, wall_s: float, error: BaseException) -> dict[str, Any]:
    """The message for a failed (or interrupted) run, with the error and its last traceback line."""
    name = type(error).__name__
    where = traceback.extract_tb(error.__traceback__)[-1:] if error.__traceback__ else []
    at = f" at {Path(where[0].filename).name}:{where[0].lineno}" if where else ""
    what = "was interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
    text = (f"❌ lexcoder run {run} {what} after {_duration(wall_s)} on {socket.gethostname()}: "
            f"{name}: {error}{at}")
    return {"event": "fail", "run": run, "wall_s": round(wall_s, 1), "error": f"{name}: {error}",
            "host": socket.gethostname(), "text": text[:3500]}  # Telegram caps messages at 4096 chars


def _duration(seconds: float) -> str:
    minutes, s = divmod(int(round(seconds)), 60)
    h, m = divmod(minutes, 60)
    return f"{h}h {m:02d}m" if h else (f"{m}m {s:02d}s" if m else f"{s}s")


@dataclass
class RunWatch:
    """Handle yielded by :func:`watch_run`; call :meth:`finished` with the run's metrics at the end."""

    run: str
    channels: list[Channel]
    on: tuple[str, ...]
    timeout: float
    start: float = field(default_factory=time.perf_counter)
    sent: list[str] = field(default_factory=list)

    def finished(self, metrics: Mapping[str, Any] | None = None) -> None:
        if "finish" in self.on and self.channels:
            event = finish_event(self.run, time.perf_counter() - self.start, metrics)
            self.sent += send(event, self.channels, timeout=self.timeout)

    def failed(self, error: BaseException) -> None:
        if "fail" in self.on and self.channels:
            event = fail_event(self.run, time.perf_counter() - self.start, error)
            self.sent += send(event, self.channels, timeout=self.timeout)


@contextmanager
def watch_run(run: str | Path, *, enabled: bool | None = None, on: tuple[str, ...] | list[str] = EVENTS,
              timeout: float = 5.0, env: Mapping[str, str] | None = None) -> Iterator[RunWatch]:
    """Notify when the enclosed run fails (any exception, Ctrl-C included); the caller reports success.

    Parameters
    ----------
    run : run name or directory shown in the message
    enabled : ``None`` = on whenever a channel is configured by environment variables; ``False`` = off;
        ``True`` = on, with a warning if no channel is configured
    on : which events to send: ``"finish"``, ``"fail"``
    timeout : seconds to wait for each destination
    env : mapping to read instead of ``os.environ`` (for tests)
    """
    channels = [] if enabled is False else channels_from_env(env)
    if enabled and not channels:
        log.warning("[notify] enabled = true, but no channel is configured: set %s and %s, or %s.",
                    TELEGRAM_TOKEN_ENV, TELEGRAM_CHAT_ENV, WEBHOOK_ENV)
    watch = RunWatch(str(run), channels, tuple(on), timeout)
    try:
        yield watch
    except BaseException as err:
        watch.failed(err)
        raise
