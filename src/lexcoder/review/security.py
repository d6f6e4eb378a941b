"""Who may talk to the review desk, and how: hosts, the access token, same-origin POSTs, signed names.

The desk serves texts that may be confidential and writes decisions, so every request passes one guard
(:class:`Guard`, an ASGI middleware) before it reaches a route:

- **host**: on 127.0.0.1 (the default) the ``Host`` header must name this server (``127.0.0.1:PORT``,
  ``localhost:PORT``), which defeats DNS rebinding (a web page whose name suddenly points to 127.0.0.1);
- **token**: served on another address, the desk requires the token printed at start, given once as
  ``?token=...`` (it then lives in an HttpOnly, SameSite=Strict cookie) or as ``Authorization: Bearer``;
- **state changes**: only by POST (routes declare their methods), with an ``Origin`` (or ``Referer``) of the
  desk itself when the browser sends one, and always the ``X-CSRF-Token`` header equal to the desk's CSRF
  cookie (double submit: another site can neither read the cookie nor send the header without CORS, which
  the desk never grants);
- **responses** carry a strict Content-Security-Policy (scripts and styles from the desk only, no frames),
  ``X-Content-Type-Options: nosniff`` and no caching of pages or data.

A coder's name is kept in a cookie signed with the store's secret (names are not passwords: the token is
what keeps strangers out).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from urllib.parse import urlencode

from starlette.datastructures import URL
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

TOKEN_COOKIE = "lexcoder_token"
CSRF_COOKIE = "lexcoder_csrf"
CODER_COOKIE = "lexcoder_coder"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = ("GET", "HEAD")
MAX_BODY = 1_000_000  # bytes: a decision is a few hundred; a codebook entry a few thousand
LOCAL_ADDRESSES = ("127.0.0.1", "localhost", "::1")
HEADERS = [
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                 b"connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
                                 b"object-src 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


def is_local(host: str) -> bool:
    """Whether the desk binds only to this machine (then no token is needed)."""
    return host in LOCAL_ADDRESSES


def allowed_hosts(host: str, port: int) -> frozenset[str] | None:
    """The ``Host`` headers a local desk answers; ``None`` (any) for a desk on another address (its token
    guards it then)."""
    if not is_local(host):
        return None
    return frozenset(f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]"))


def new_token() -> str:
    return secrets.token_urlsafe(24)


def sign(secret: str, name: str) -> str:
    """``name`` in a cookie value that only this store's secret can have made."""
    raw = name.encode("utf-8")
    mac = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()[:32]
    return base64.urlsafe_b64encode(raw).decode().rstrip("=") + "." + mac


def unsign(secret: str, value: str | None) -> str | None:
    """The name in a cookie made by :func:`sign`, or ``None`` (missing, altered, another store's)."""
    if not value or "." not in value:
        return None
    encoded, mac = value.rsplit(".", 1)
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (ValueError, TypeError):
        return None
    good = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()[:32]
    return raw.decode("utf-8", "replace") if hmac.compare_digest(good, mac) else None


class Guard:
    """ASGI middleware enforcing the rules of the module docstring before any route runs.

    Parameters
    ----------
    app : the wrapped ASGI app
    token : the access token, or ``None`` (local desk)
    hosts : the accepted ``Host`` headers (lower case), or ``None`` for any
    """

    def __init__(self, app, *, token: str | None, hosts: Iterable[str] | None) -> None:
        self.app = app
        self.token = token
        self.hosts = None if hosts is None else frozenset(h.lower() for h in hosts)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(Request(scope))
        if refusal is not None:
            await _with_headers(refusal)(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *[(k, v) for k, v in HEADERS if k not in names]]
                if b"cache-control" not in names:
                    message["headers"].append((b"cache-control", b"no-store"))
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def refusal(self, request: Request) -> Response | None:
        """The answer to a request the desk refuses (or a redirect that stores the token), else ``None``."""
        host = request.headers.get("host", "").lower()
        if self.hosts is not None and host not in self.hosts:
            return PlainTextResponse(f"This review desk answers only at {', '.join(sorted(self.hosts))}.", 400)
        if int(request.headers.get("content-length") or 0) > MAX_BODY:
            return JSONResponse({"error": "Request too large."}, 413)
        if self.token is not None:
            answer = self._token(request)
            if answer is not None:
                return answer
        if request.method not in SAFE_METHODS:
            return self._same_origin(request, host)
        return None

    def _token(self, request: Request) -> Response | None:
        given = request.query_params.get("token")
        if given is not None and request.method in SAFE_METHODS and hmac.compare_digest(given, self.token):
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            target = URL(path=request.url.path, query=urlencode(rest))
            response = RedirectResponse(str(target), status_code=303)
            response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict", path="/")
            return response
        auth = request.headers.get("authorization", "")
        offered = request.cookies.get(TOKEN_COOKIE) or (auth[7:] if auth.lower().startswith("bearer ") else "")
        if offered and hmac.compare_digest(offered, self.token):
            return None
        return PlainTextResponse("This review desk needs its access token: open the link that `lexcoder review` "
                                 "printed when it started (it ends in ?token=...).", 401)

    @staticmethod
    def _same_origin(request: Request, host: str) -> Response | None:
        origin = f"{request.url.scheme}://{host}"
        sent = request.headers.get("origin")
        referer = request.headers.get("referer")
        if sent is not None and sent != origin:
            return JSONResponse({"error": f"Cross-origin request from {sent[:80]} refused."}, 403)
        if sent is None and referer is not None and not referer.startswith(origin + "/"):
            return JSONResponse({"error": "Cross-origin request refused."}, 403)
        cookie, header = request.cookies.get(CSRF_COOKIE, ""), request.headers.get(CSRF_HEADER, "")
        if not cookie or not header or not hmac.compare_digest(cookie, header):
            return JSONResponse({"error": "Missing or wrong CSRF token: reload the page."}, 403)
        return None


def _with_headers(response: Response) -> Response:
    for key, value in HEADERS:
        response.headers[key.decode()] = value.decode()
    response.headers["cache-control"] = "no-store"
    return response
