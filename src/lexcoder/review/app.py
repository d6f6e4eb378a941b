"""The review desk's web app: FastAPI routes over a :class:`~lexcoder.review.store.ReviewStore`.

Pages are Jinja2 templates (autoescaped) with one plain JavaScript file (``static/desk.js``, no build step,
nothing from a CDN) that talks to the JSON API below. Reading is GET; every change is a POST through the
guard of :mod:`lexcoder.review.security`. No route takes a path: downloads are made in memory, the ledger
is the one named when the desk started, and static files are served from a fixed list read at start.

==========================  =====================================================================
``GET /review`` ...         the screens: audit queue, coding new texts, adjudication, progress,
                            items (filters), codebook, sign-in
``GET /api/next``           the coder's next item (leased), with their latest decisions
``GET /api/item/{id}``      an item the coder chose from the list (leased)
``POST /api/act``           keep / flip / change / code / skip / flag / note; answers with the next item
``POST /api/undo``          undo the coder's (or adjudicator's) latest action
``GET /api/adjudication``   the next conflicting or flagged item;  ``POST /api/resolve`` decides it
``GET /api/progress``       counts;  ``GET /api/agreement``: κ, α, AC1 with intervals
``POST /api/codebook``      a new version of a label's definition (owner)
``POST /api/settings``      double-coding share, lease minutes, model suggestions (owner)
``POST /api/export/ledger`` the final audit decisions into the corrections ledger (owner)
``GET /export/{t}.{fmt}``   decisions or coded table as CSV/XLSX (formulas neutralised)
==========================  =====================================================================
"""
from __future__ import annotations

import logging
import secrets
import socket
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader
from pydantic import BaseModel, Field as Body

from ..errors import LexcoderError
from .agreement import agreement_table
from .export import coded_table, decisions_table, export_ledger, table_bytes
from .security import CODER_COOKIE, CSRF_COOKIE, Guard, allowed_hosts, is_local, new_token, sign, unsign
from .store import KINDS, Filters, ReviewError, ReviewStore, check_name

log = logging.getLogger(__name__)

STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                ".svg": "image/svg+xml"}
SCREENS = {"review": "Audit queue", "code": "Code texts", "adjudicate": "Adjudicate", "progress": "Progress",
           "browse": "Items", "codebook": "Codebook"}
PAGE_SIZE = 50


class Act(BaseModel):
    item_id: int
    action: str
    action_id: str
    values: dict[str, Any] | None = None
    note: str = ""
    label: str | None = None  # the coder's filters, for the next item
    score_min: float | None = None
    score_max: float | None = None


class Undo(BaseModel):
    action_id: str
    kind: str | None = None
    role: str = "coder"


class SignIn(BaseModel):
    name: str = Body(max_length=200)


class CodebookEntry(BaseModel):
    label: str
    definition: str = ""
    examples: str = ""


class Settings(BaseModel):
    double_share: float | None = None
    lease_minutes: float | None = None
    suggestions: bool | None = None


def _static_files() -> dict[str, tuple[bytes, str]]:
    """The desk's static files, read once: requests never name a file on disk."""
    folder = resources.files("lexcoder.review") / "static"
    return {entry.name: (entry.read_bytes(), STATIC_TYPES[Path(entry.name).suffix])
            for entry in folder.iterdir() if Path(entry.name).suffix in STATIC_TYPES}


def create_app(store: ReviewStore, *, run_dir: str | Path | None = None, ledger: str | Path | None = None,
               token: str | None = None, hosts: set[str] | frozenset[str] | None = None,
               default_coder: str | None = None) -> FastAPI:
    """The review desk as an ASGI app.

    Parameters
    ----------
    store : the review store
    run_dir : the run the desk reviews (needed to export to the ledger)
    ledger : the corrections ledger the owner exports to (``None``: no ledger export)
    token : the access token (required when the desk is served on another address than this machine's)
    hosts : the ``Host`` headers to answer (:func:`lexcoder.review.security.allowed_hosts`); ``None``: any
    default_coder : the name the sign-in page suggests
    """
    app = FastAPI(title="lexcoder review desk", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(Guard, token=token, hosts=hosts)
    env = Environment(loader=PackageLoader("lexcoder.review", "templates"), autoescape=True, trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["pct"] = lambda x: "–" if x is None else f"{100 * x:.0f}%"
    env.filters["num"] = lambda x, d=2: "–" if x is None else f"{x:.{d}f}"
    static = _static_files()
    desk = _Desk(store, env, run_dir=run_dir, ledger=ledger, default_coder=default_coder)

    @app.exception_handler(ReviewError)
    async def _review_error(request: Request, err: ReviewError) -> JSONResponse:
        return JSONResponse({"error": str(err)}, status_code=err.status)

    @app.exception_handler(LexcoderError)
    async def _lexcoder_error(request: Request, err: LexcoderError) -> JSONResponse:
        return JSONResponse({"error": str(err)}, status_code=409)

    @app.get("/static/{name}")
    def static_file(name: str) -> Response:
        if name not in static:
            return Response("Not found", status_code=404, media_type="text/plain")
        body, media = static[name]
        return Response(body, media_type=media, headers={"cache-control": "no-cache"})

    @app.get("/")
    def home(request: Request) -> Response:
        return RedirectResponse("/review" if desk.coder(request) else "/signin", status_code=303)

    @app.get("/signin", response_class=HTMLResponse)
    def signin_page(request: Request) -> Response:
        suggested = request.query_params.get("coder") or desk.default_coder or ""
        return desk.page(request, "signin.html", "signin", suggested=suggested, needs_coder=False)

    @app.post("/api/signin")
    def signin(request: Request, body: SignIn) -> Response:
        name = check_name(body.name)
        response = JSONResponse({"coder": name})
        response.set_cookie(CODER_COOKIE, sign(store.secret, name), httponly=True, samesite="strict", path="/",
                            max_age=60 * 60 * 24 * 30)
        return response

    @app.post("/api/signout")
    def signout(request: Request) -> Response:
        response = JSONResponse({"coder": None})
        response.delete_cookie(CODER_COOKIE, path="/")
        return response

    for screen in ("review", "code", "adjudicate", "progress", "browse", "codebook"):
        app.add_api_route(f"/{screen}", desk.screen(screen), methods=["GET"], response_class=HTMLResponse)

    @app.get("/api/next")
    def next_item(request: Request, kind: str = "audit", label: str | None = None, score_min: float | None = None,
                  score_max: float | None = None) -> dict[str, Any]:
        coder = desk.require(request)
        kind = _kind(kind)
        item = store.next_item(coder, kind, Filters(label or None, score_min, score_max))
        return {"item": item, "recent": store.recent(coder, kind), "counts": desk.kind_counts(kind)}

    @app.get("/api/item/{item_id}")
    def open_item(request: Request, item_id: int) -> dict[str, Any]:
        coder = desk.require(request)
        item = store.open_item(item_id, coder)
        return {"item": item, "recent": store.recent(coder, item["kind"]), "counts": desk.kind_counts(item["kind"])}

    @app.post("/api/act")
    def act(request: Request, body: Act) -> dict[str, Any]:
        coder = desk.require(request)
        ack = store.record(coder, body.item_id, body.action, action_id=body.action_id, values=body.values,
                           note=body.note)
        kind = ack.kind
        nxt = None if body.action == "note" else store.next_item(
            coder, kind, Filters(body.label or None, body.score_min, body.score_max))
        return {"ack": ack.as_dict(), "item": nxt, "recent": store.recent(coder, kind),
                "counts": desk.kind_counts(kind)}

    @app.post("/api/undo")
    def undo(request: Request, body: Undo) -> dict[str, Any]:
        coder = desk.require(request)
        role = "adjudicator" if body.role == "adjudicator" else "coder"
        ack = store.undo(coder, None if role == "adjudicator" else _kind(body.kind or "audit"),
                         action_id=body.action_id, role=role)
        if ack is None:
            return {"ack": None, "item": None}
        item = store.item(ack.item_id, coder=coder, adjudicator=role == "adjudicator")
        return {"ack": ack.as_dict(), "item": item, "recent": store.recent(coder, item["kind"]),
                "counts": desk.kind_counts(item["kind"])}

    @app.get("/api/adjudication")
    def adjudication(request: Request) -> dict[str, Any]:
        coder = desk.require(request)
        return {"item": store.next_adjudication(coder), "counts": desk.adjudication_counts()}

    @app.post("/api/resolve")
    def resolve(request: Request, body: Act) -> dict[str, Any]:
        coder = desk.require(request)
        ack = store.record(coder, body.item_id, "resolve", action_id=body.action_id, values=body.values,
                           note=body.note)
        return {"ack": ack.as_dict(), "item": store.next_adjudication(coder), "counts": desk.adjudication_counts()}

    @app.get("/api/progress")
    def progress(request: Request) -> dict[str, Any]:
        desk.require(request)
        return store.counts()

    @app.get("/api/agreement")
    def agreement(request: Request) -> dict[str, Any]:
        desk.require(request)
        return {"rows": agreement_table(store.decided_values(), store.fields)}

    @app.post("/api/codebook")
    def codebook(request: Request, body: CodebookEntry) -> dict[str, Any]:
        coder = desk.require(request)
        store.edit_codebook(coder, body.label, definition=body.definition, examples=body.examples)
        return {"codebook": store.codebook()}

    @app.post("/api/settings")
    def settings(request: Request, body: Settings) -> dict[str, Any]:
        desk.require_owner(request)
        return {"settings": desk.public_settings(store.update_settings(**body.model_dump(exclude_none=True)))}

    @app.post("/api/export/ledger")
    def ledger_export(request: Request) -> dict[str, Any]:
        desk.require_owner(request)
        if desk.ledger is None or desk.run_dir is None:
            raise ReviewError("This desk was started without a corrections ledger (lexcoder review RUN_DIR "
                              "--ledger PATH).", status=409)
        return export_ledger(store, desk.run_dir, desk.ledger).as_dict()

    @app.get("/export/{table}.{fmt}")
    def download(request: Request, table: str, fmt: str) -> Response:
        desk.require(request)
        makers = {"decisions": decisions_table, "coded": coded_table}
        if table not in makers:
            return Response("Not found", status_code=404, media_type="text/plain")
        body = table_bytes(makers[table](store), fmt)
        media = "text/csv; charset=utf-8" if fmt == "csv" else \
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        return Response(body, media_type=media,
                        headers={"content-disposition": f'attachment; filename="review_{table}.{fmt}"'})

    return app


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise ReviewError(f"kind must be one of {', '.join(KINDS)}.", status=422)
    return kind


class _Desk:
    """What the routes share: the store, the templates, the signed-in coder."""

    def __init__(self, store: ReviewStore, env: Environment, *, run_dir, ledger, default_coder) -> None:
        self.store, self.env = store, env
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.ledger = None if ledger is None else Path(ledger)
        self.default_coder = default_coder

    def coder(self, request: Request) -> str | None:
        return unsign(self.store.secret, request.cookies.get(CODER_COOKIE))

    def require(self, request: Request) -> str:
        coder = self.coder(request)
        if coder is None:
            raise ReviewError("Sign in with your name first.", status=401)
        return coder

    def require_owner(self, request: Request) -> str:
        coder = self.require(request)
        if not self.store.is_owner(coder):
            raise ReviewError(f"Only the project owner ({self.store.settings['owner']}) may do this.", status=403)
        return coder

    def kind_counts(self, kind: str) -> dict[str, int]:
        return self.store.kind_counts(kind)

    def adjudication_counts(self) -> dict[str, int]:
        counts = self.store.counts()["kinds"]
        return {s: sum(counts[k][s] for k in KINDS) for s in ("conflict", "flagged", "resolved")}

    @staticmethod
    def public_settings(settings: dict[str, Any]) -> dict[str, Any]:
        return {k: settings[k] for k in ("double_share", "lease_minutes", "suggestions", "owner", "adjudicators")}

    def page(self, request: Request, template: str, screen: str, *, needs_coder: bool = True, **context) -> Response:
        coder = self.coder(request)
        if needs_coder and coder is None:
            return RedirectResponse(f"/signin?next=/{screen}", status_code=303)
        csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
        store = self.store
        html = self.env.get_template(template).render(
            screen=screen, screens=SCREENS, title=SCREENS.get(screen, "Sign in"), coder=coder, csrf=csrf,
            owner=bool(coder) and store.is_owner(coder), adjudicator=bool(coder) and store.is_adjudicator(coder),
            fields=[f.as_dict() for f in store.fields], codebook=store.codebook(),
            settings=self.public_settings(store.settings), ledger=None if self.ledger is None else str(self.ledger),
            **context)
        response = HTMLResponse(html)
        if request.cookies.get(CSRF_COOKIE) != csrf:
            response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict", path="/")
        return response

    def screen(self, screen: str):
        def show(request: Request) -> Response:
            return self.page(request, f"{screen}.html", screen, **self._context(screen, request))
        show.__name__ = f"screen_{screen}"
        return show

    def _context(self, screen: str, request: Request) -> dict[str, Any]:
        if screen == "progress":
            return {"counts": self.store.counts()}
        if screen == "browse":
            return self._browse(request)
        return {}

    def _browse(self, request: Request) -> dict[str, Any]:
        q = request.query_params
        filters = {k: q.get(k, "") for k in ("kind", "label", "state", "coder", "score_min", "score_max", "page")}
        rows, total = self.store.browse(kind=filters["kind"] or None, label=filters["label"] or None,
                                        state=filters["state"] or None, coder=filters["coder"] or None,
                                        score_min=_float(filters["score_min"]), score_max=_float(filters["score_max"]),
                                        offset=PAGE_SIZE * max(0, (_int(filters["page"]) or 1) - 1), limit=PAGE_SIZE)
        page = max(1, _int(filters["page"]) or 1)
        return {"rows": rows, "total": total, "filters": filters, "page": page, "pages": max(1, -(-total // PAGE_SIZE)),
                "coders": self.store.coders(), "query": {k: v for k, v in filters.items() if v and k != "page"}}


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def serve(store: ReviewStore, *, run_dir: str | Path, host: str = "127.0.0.1", port: int = 8765,
          ledger: str | Path | None = None, token: str | None = None, default_coder: str | None = None,
          announce=None) -> None:
    """Serve the desk with uvicorn until Ctrl-C (one process; SQLite serialises the writes).

    Parameters
    ----------
    store, run_dir, ledger, default_coder : as :func:`create_app`
    host : the address to listen on; anything but this machine's (127.0.0.1, localhost, ::1) needs a token
    port : the TCP port (0: a free one)
    token : the access token for a desk on another address (default: a new random one)
    announce : called with the address to open (with the token) once the server listens
    """
    token = None if is_local(host) else (token or new_token())
    sock = _listening_socket(host)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise ReviewError(f"Cannot listen on {host}:{port} ({err.strerror}). Choose another --port (or --port 0 "
                          "for any free one).", status=503) from None
    port = sock.getsockname()[1]
    app = create_app(store, run_dir=run_dir, ledger=ledger, token=token, hosts=allowed_hosts(host, port),
                     default_coder=default_coder)
    if announce is not None:
        announce(_address(host, port, token, default_coder))
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])


def _listening_socket(host: str):
    """A TCP socket for uvicorn to serve on. Its protocol is named (IPPROTO_TCP), because asyncio turns off
    Nagle's algorithm (TCP_NODELAY) only on connections whose socket says so: without it every answer on a
    kept-alive connection waits ~40 ms for the browser's delayed acknowledgement."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return sock


def _address(host: str, port: int, token: str | None, coder: str | None) -> str:
    """The link to open: this machine's name for a desk on all addresses (colleagues use it too)."""
    name = socket.gethostname() if host in ("0.0.0.0", "::") else (f"[{host}]" if ":" in host else host)
    if token:
        return f"http://{name}:{port}/signin?{urlencode({'token': token})}"
    return f"http://{name}:{port}/signin" + (f"?{urlencode({'coder': coder})}" if coder else "")


class BackgroundDesk:
    """The desk served from a thread of this process (tests, benchmarks, a notebook): ``url`` while it runs.

    Use as a context manager, or call :meth:`stop`. Binds 127.0.0.1 on a free port unless told otherwise.
    """

    def __init__(self, store: ReviewStore, *, run_dir: str | Path | None = None, ledger: str | Path | None = None,
                 host: str = "127.0.0.1", port: int = 0, default_coder: str | None = None) -> None:
        self._sock = _listening_socket(host)
        self._sock.bind((host, port))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        app = create_app(store, run_dir=run_dir, ledger=ledger, hosts=allowed_hosts(host, self.port),
                         default_coder=default_coder)
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> "BackgroundDesk":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
