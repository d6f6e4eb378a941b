"""Notifications: real HTTP requests to a local server on 127.0.0.1 (Telegram API shape and webhook)."""
from __future__ import annotations

import json
import logging
import socket
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import tomli_w

from lexcoder.config import load_config
from lexcoder.errors import DataError
from lexcoder.notify import channels_from_env, send, watch_run
from lexcoder.pipeline import run_pipeline



class _Recorder(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server API)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, json.loads(body)))
        self.server.answer.wait(timeout=30)  # a test may hold the answer back (cleared) to force a timeout
        try:
            self.send_response(self.server.status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"ok": true}')
        except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting (the timeout test)
            pass

    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture(autouse=True)
def _no_real_channels(monkeypatch):
    """Never message a real chat from the tests, whatever the environment holds."""
    for var in ("LEXCODER_TELEGRAM_TOKEN", "LEXCODER_TELEGRAM_CHAT_ID", "LEXCODER_TELEGRAM_API",
                "LEXCODER_WEBHOOK_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def server():
    """A local HTTP server recording (path, json body) of every POST; ``status`` adjustable, and the answer
    held back while ``answer`` (a threading.Event) is cleared."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    httpd.received, httpd.status, httpd.answer = [], 200, threading.Event()
    httpd.answer.set()
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.answer.set()
    httpd.shutdown()
    httpd.server_close()


def write_config(tmp_path, data_path, labels, **data_extra):
    cfg = {"data": {"path": str(data_path), "id_column": "id", "label_columns": list(labels), **data_extra}}
    path = tmp_path / "config.toml"
    path.write_text(tomli_w.dumps(cfg), encoding="utf-8")
    return path


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_telegram_and_webhook_receive_the_message(server):
    env = {"LEXCODER_TELEGRAM_TOKEN": "123:abc", "LEXCODER_TELEGRAM_CHAT_ID": "42",
           "LEXCODER_TELEGRAM_API": server.url, "LEXCODER_WEBHOOK_URL": f"{server.url}/hook"}
    channels = channels_from_env(env)
    assert [c.name for c in channels] == ["telegram", "webhook"]
    assert "abc" not in repr(channels)  # the token never shows up in logs
    delivered = send({"event": "finish", "text": "done", "macro_f1": 0.61}, channels, timeout=2)
    assert delivered == ["telegram", "webhook"]
    (tg_path, tg_body), (hook_path, hook_body) = server.received
    assert tg_path == "/bot123:abc/sendMessage"
    assert tg_body["chat_id"] == "42" and tg_body["text"] == "done"
    assert hook_path == "/hook" and hook_body == {"event": "finish", "text": "done", "macro_f1": 0.61}


def test_no_channel_without_environment_variables(caplog):
    assert channels_from_env({}) == []
    with caplog.at_level(logging.WARNING, logger="lexcoder.notify"):
        assert channels_from_env({"LEXCODER_TELEGRAM_TOKEN": "t"}) == []
    assert "LEXCODER_TELEGRAM_CHAT_ID" in caplog.text


def test_network_down_is_a_warning_not_an_error(caplog):
    env = {"LEXCODER_WEBHOOK_URL": f"http://127.0.0.1:{_closed_port()}/hook"}
    with caplog.at_level(logging.WARNING, logger="lexcoder.notify"):
        assert send({"event": "finish", "text": "x"}, channels_from_env(env), timeout=1) == []
    assert "Could not send the finish notification via webhook" in caplog.text


def test_http_error_and_timeout_are_warnings(server, caplog, monkeypatch):
    channels = channels_from_env({"LEXCODER_WEBHOOK_URL": server.url})
    server.status = 500
    with caplog.at_level(logging.WARNING, logger="lexcoder.notify"):
        assert send({"event": "fail", "text": "x"}, channels, timeout=2) == []
    assert "HTTP Error 500" in caplog.text
    # a server that never answers: the request gives up after `timeout` (passed on to urlopen) with a warning
    server.status = 200
    server.answer.clear()  # held back until the client has given up, however slow the machine
    timeouts, urlopen = [], urllib.request.urlopen

    def recording_urlopen(*args, timeout, **kwargs):
        timeouts.append(timeout)
        return urlopen(*args, timeout=timeout, **kwargs)
    monkeypatch.setattr(urllib.request, "urlopen", recording_urlopen)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lexcoder.notify"):
        assert send({"event": "fail", "text": "x"}, channels, timeout=0.3) == []
    server.answer.set()
    assert timeouts == [0.3] and "timed out" in caplog.text


def test_watch_run_reports_failure_and_reraises(server):
    env = {"LEXCODER_WEBHOOK_URL": server.url}
    with pytest.raises(KeyError):
        with watch_run("exp1", env=env, timeout=2):
            raise KeyError("label_x")
    (_, body), = server.received
    assert body["event"] == "fail" and body["run"] == "exp1"
    assert "KeyError" in body["error"] and "label_x" in body["text"]
    with pytest.raises(KeyboardInterrupt):
        with watch_run("exp2", env=env, timeout=2):
            raise KeyboardInterrupt
    assert "run exp2 was interrupted" in server.received[-1][1]["text"]


def test_watch_run_respects_enabled_and_events(server):
    env = {"LEXCODER_WEBHOOK_URL": server.url}
    with watch_run("off", enabled=False, env=env) as watch:
        watch.finished({"macro": {"f1": 0.5}})
    with watch_run("fail-only", on=["fail"], env=env) as watch:
        watch.finished({"macro": {"f1": 0.5}})
    assert server.received == []


def test_pipeline_notifies_finish_with_macro_f1(tmp_path, tos_docs, tos_labels, server, monkeypatch):
    docs = sorted(tos_docs["doc_id"].unique())[:12]
    data = tos_docs[tos_docs["doc_id"].isin(docs)]
    data.to_csv(tmp_path / "tos.csv", index=False)
    labels = [lab for lab in tos_labels if data[lab].sum() >= 15][:3]
    cfg = load_config(write_config(tmp_path, tmp_path / "tos.csv", labels, group_column="doc_id"),
                      overrides=["evaluate.bootstrap=0", "split.duplicates=keep_groups"])
    monkeypatch.setenv("LEXCODER_WEBHOOK_URL", f"{server.url}/runs")
    result = run_pipeline(cfg, tmp_path / "run1")
    (path, body), = server.received
    assert path == "/runs" and body["event"] == "finish" and body["run"] == "run1"
    assert body["macro_f1"] == pytest.approx(result.metrics["macro"]["f1"])
    assert f"{result.metrics['macro']['f1']:.3f}" in body["text"] and body["wall_s"] > 0


def test_pipeline_notifies_failure(tmp_path, tos_docs, tos_labels, server, monkeypatch):
    tos_docs.head(200).to_csv(tmp_path / "tos.csv", index=False)
    cfg = load_config(write_config(tmp_path, tmp_path / "tos.csv", ["no_such_column"]))
    monkeypatch.setenv("LEXCODER_WEBHOOK_URL", server.url)
    with pytest.raises(DataError, match="no_such_column"):
        run_pipeline(cfg, tmp_path / "run2")
    (_, body), = server.received
    assert body["event"] == "fail" and "no_such_column" in body["error"]


def test_cli_notify_test(server, monkeypatch):
    from typer.testing import CliRunner

    from lexcoder.cli import app
    result = CliRunner().invoke(app, ["notify-test"])
    assert result.exit_code == 2 and "LEXCODER_WEBHOOK_URL" in result.output
    monkeypatch.setenv("LEXCODER_WEBHOOK_URL", f"{server.url}/hook")
    result = CliRunner().invoke(app, ["notify-test"])
    assert result.exit_code == 0 and "webhook: sent" in result.output
    assert server.received[0][1]["event"] == "test"
    monkeypatch.setenv("LEXCODER_WEBHOOK_URL", f"http://127.0.0.1:{_closed_port()}/hook")
    result = CliRunner().invoke(app, ["notify-test", "--timeout", "1"])
    assert result.exit_code == 1 and "webhook: not sent" in result.output
