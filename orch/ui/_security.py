"""The guard in front of every ``orch ui`` request: who may ask, and what a page may load.

Every response carries a strict Content-Security-Policy (scripts, styles and images from the
server itself only: no inline script, no plugin, no framing, no ``<base>``) and
``nosniff`` / ``no-referrer``. Before a request reaches a page:

* its ``Host`` must be one the server answers to (a loopback server: ``localhost``,
  ``127.0.0.1``, ``::1``), so a web page cannot reach it through DNS rebinding;
* with a token set, the request must carry it: ``Authorization: Bearer T``, ``X-Orch-Token``,
  ``?token=T`` (then answered with a cookie and a redirect that drops it from the address), or
  that cookie; compared in constant time;
* a form post must come from the server's own pages (``Origin``, else ``Sec-Fetch-Site``).

A refusal is one line of plain text. This module never reads a store.
"""

from __future__ import annotations

import hmac
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["COOKIE", "CSP", "SECURITY_HEADERS", "SecurityMiddleware"]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
COOKIE = "orch_ui_token"


def _same(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), token.encode())


class SecurityMiddleware:
    """ASGI middleware applying the rules of the module docstring."""

    def __init__(
        self, app: ASGIApp, *, token: str | None, allowed_hosts: tuple[str, ...] | None
    ) -> None:
        self.app = app
        self.token = token
        self.allowed = None if allowed_hosts is None else {h.lower() for h in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await _plain(send, *refusal)
            return
        if self.token is not None:
            query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), True)
            if any(k == "token" for k, _ in query) and scope["method"] in ("GET", "HEAD"):
                # Trade the token in the address for a cookie, so that it leaves the
                # address bar and the history; the page itself is one redirect away.
                rest = urlencode([(k, v) for k, v in query if k != "token"])
                raw = scope.get("raw_path") or scope["path"].encode("utf-8")
                # "//host/x" would send the browser to another site: one slash only.
                path = "/" + raw.decode("latin-1").lstrip("/")
                target = path + (f"?{rest}" if rest else "")
                await _redirect(send, target, self.token)
                return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, secured)

    def _refusal(self, scope: Scope, headers: Headers) -> tuple[int, str] | None:
        host = headers.get("host", "")
        if self.allowed is not None and _hostname(host) not in self.allowed:
            return 400, (
                f"this server does not answer to host {host[:80]!r}; "
                "open it at the address orch ui printed"
            )
        if self.token is not None and not self._has_token(scope, headers):
            return 401, (
                "this orch ui needs its token; open the address orch ui printed "
                "(with ?token=...), or send the header 'Authorization: Bearer TOKEN'"
            )
        if scope["method"] not in ("GET", "HEAD", "OPTIONS") and not _same_origin(headers):
            return 403, "a form from another site cannot post here; use the page orch ui serves"
        return None

    def _has_token(self, scope: Scope, headers: Headers) -> bool:
        assert self.token is not None
        candidates = []
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            candidates.append(auth[7:].strip())
        candidates.append(headers.get("x-orch-token", ""))
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), True)
        candidates += [v for k, v in query if k == "token"]
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed cookie header is no token, never an error page
            cookie = SimpleCookie()
        if COOKIE in cookie:
            candidates.append(cookie[COOKIE].value)
        # Every candidate is compared, so the time taken says nothing about which matched.
        found = [_same(c, self.token) for c in candidates if c]
        return any(found)


def _hostname(host: str) -> str:
    """The name of a ``Host`` header, without its port (``[::1]:8765`` -> ``::1``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _same_origin(headers: Headers) -> bool:
    origin = headers.get("origin")
    site = headers.get("sec-fetch-site")
    if origin == "null":
        # Under this server's own `Referrer-Policy: no-referrer`, Chromium sends `Origin: null`
        # with a form posted from its pages; a sandboxed frame or a data: page sends it too.
        # The browser's own Sec-Fetch-Site tells them apart: only same-origin passes.
        return site == "same-origin"
    if origin is not None:
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and parts.netloc == headers.get("host", "")
    return site in (None, "same-origin", "none")


async def _plain(send: Send, status: int, line: str) -> None:
    body = (line + "\n").encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Send, target: str, token: str) -> None:
    cookie = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [
                (b"location", target.encode("latin-1", "replace")),
                (b"set-cookie", cookie.encode()),
                (b"content-length", b"0"),
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})
