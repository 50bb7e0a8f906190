"""The dashboard's HTTP side (aiohttp): login, the page, its pushed state, the kill switch.

Every request passes ``guard`` first: an address outside the allowlist gets 403, a request
without a live session gets 401 (the login page, no data). The page's state comes as
server-sent events (``/events``), pushed when it changed, at most every ``push_min_s``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final, Protocol

from aiohttp import web

from procs.dashboard.auth import Allowlist, LoginLimiter, Password, Session, Sessions, csrf_ok
from procs.dashboard.view import View

__all__ = ["Access", "Actions", "make_app"]

log = logging.getLogger(__name__)

STATIC: Final = Path(__file__).resolve().parent / "static"
ASSETS: Final = {"app.js": "text/javascript", "app.css": "text/css"}
COOKIE: Final = "bitrader_dash"
KEEPALIVE_S: Final = 15.0
MAX_REASON: Final = 200
SESSION_KEY: Final = "bitrader.session"  # set by guard on every request that passes it
HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # no-referrer would make a browser send "Origin: null"
    "Cache-Control": "no-store",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Actions(Protocol):
    """What the routes ask of the rest of the dashboard (``Dashboard`` in ``service``)."""

    view: View
    changed: asyncio.Event  # replaced after every set: await the instance you hold
    closing: asyncio.Event

    async def set_killswitch(self, on: bool, reason: str, who: str) -> dict[str, Any]: ...
    async def audit(self, kind: str, **fields: Any) -> None: ...


class Access:
    """Password, sessions, login limiter and allowlist, with the counters health reports."""

    def __init__(
        self, password: Password, sessions: Sessions, limiter: LoginLimiter, allow: Allowlist
    ) -> None:
        self.password = password
        self.sessions = sessions
        self.limiter = limiter
        self.allow = allow
        self.counters = dict.fromkeys(
            ("logins_ok_total", "logins_failed_total", "logins_limited_total", "refused_total"), 0
        )


def _page(name: str, **subst: str) -> str:
    text = (STATIC / name).read_text()
    for key, value in subst.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def _escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;")
    )


def _login_page(status: int, message: str = "") -> web.Response:
    body = _page("login.html", message=_escape(message))
    return web.Response(status=status, text=body, content_type="text/html", headers=HEADERS)


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity (JSON.parse rejects them): send those as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _session(request: web.Request) -> Session:
    session = request[SESSION_KEY]
    assert isinstance(session, Session)  # guard let the request through only with one
    return session


def _same_origin(request: web.Request) -> bool:
    """No ``Origin`` (not a browser's cross-site request) or exactly this server's own."""
    origin = request.headers.get("Origin")
    return origin is None or origin == f"{request.scheme}://{request.host}"


def _now_s() -> float:
    return time.monotonic()


class Routes:
    """The request handlers; ``guard`` runs before every one of them."""

    def __init__(self, access: Access, actions: Actions, push_min_s: float) -> None:
        self._access = access
        self._actions = actions
        self._push_min_s = push_min_s
        self._limited_audited: dict[str, float] = {}  # address -> when its lock-out was audited

    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        access, addr = self._access, request.remote
        if not access.allow.allows(addr):
            access.counters["refused_total"] += 1
            log.warning("refused address=%s path=%s (not in the allowlist)", addr, request.path)
            return web.Response(status=403, text="403: address not allowed\n", headers=HEADERS)
        if request.path == "/login":
            return await handler(request)
        session = access.sessions.get(request.cookies.get(COOKIE), _now_s())
        if session is None:
            if request.path == "/" and request.method == "GET":
                return _login_page(401)
            return web.json_response({"error": "login required"}, status=401, headers=HEADERS)
        request[SESSION_KEY] = session
        return await handler(request)

    async def login_form(self, request: web.Request) -> web.Response:
        return _login_page(200)

    async def login(self, request: web.Request) -> web.StreamResponse:
        access, addr = self._access, request.remote or "?"
        if not _same_origin(request):  # a cross-site form must not log anyone in
            await self._actions.audit("login_refused", address=addr, why="cross-origin")
            return _login_page(403, "Cross-origin login refused.")
        if not access.limiter.allowed(addr, _now_s()):
            access.counters["logins_limited_total"] += 1
            wait_s = access.limiter.retry_after_s(addr, _now_s())
            if self._limited_audited.get(addr, -1.0) < _now_s() - wait_s:
                # one audit line per address per lock-out, so a flood cannot fill the log
                self._limited_audited[addr] = _now_s()
                await self._actions.audit("login_rate_limited", address=addr)
            resp = _login_page(429, f"Too many failed logins: try again in {wait_s:.0f} s.")
            resp.headers["Retry-After"] = str(max(1, round(wait_s)))
            return resp
        form = await request.post()
        attempt = form.get("password")
        if not isinstance(attempt, str) or not access.password.check(attempt):
            access.limiter.failed(addr, _now_s())
            access.counters["logins_failed_total"] += 1
            await self._actions.audit("login_failed", address=addr)
            return _login_page(401, "Wrong password.")
        access.limiter.succeeded(addr)
        access.counters["logins_ok_total"] += 1
        session = access.sessions.create(f"operator@{addr}", _now_s())
        await self._actions.audit("login_ok", address=addr, user=session.user)
        resp = web.HTTPSeeOther("/", headers=HEADERS)
        resp.set_cookie(
            COOKIE, session.token, httponly=True, samesite="Strict", secure=request.secure, path="/"
        )
        return resp

    async def logout(self, request: web.Request) -> web.StreamResponse:
        session = _session(request)
        if not csrf_ok(session, request.headers.get("X-CSRF-Token")):
            return web.json_response({"error": "bad CSRF token"}, status=403, headers=HEADERS)
        self._access.sessions.drop(session.token)
        await self._actions.audit("logout", address=request.remote, user=session.user)
        resp = web.json_response({"ok": True}, headers=HEADERS)
        resp.del_cookie(COOKIE, path="/")
        return resp

    async def index(self, request: web.Request) -> web.Response:
        body = _page("index.html", csrf=_session(request).csrf)
        return web.Response(text=body, content_type="text/html", headers=HEADERS)

    async def asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in ASSETS:
            raise web.HTTPNotFound()
        return web.Response(
            body=(STATIC / name).read_bytes(), content_type=ASSETS[name], headers=HEADERS
        )

    def _snapshot(self) -> bytes:
        data = _finite(self._actions.view.snapshot(time.time_ns()))
        return json.dumps(data, default=str, separators=(",", ":"), allow_nan=False).encode()

    async def state(self, request: web.Request) -> web.Response:
        return web.Response(body=self._snapshot(), content_type="application/json", headers=HEADERS)

    async def events(self, request: web.Request) -> web.StreamResponse:
        session, actions = _session(request), self._actions
        resp = web.StreamResponse(
            headers={**HEADERS, "Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}
        )
        await resp.prepare(request)
        sent = -1
        while not actions.closing.is_set():
            tick = actions.changed  # before reading the version: a change after it sets this
            if self._access.sessions.get(session.token, _now_s()) is None:
                await resp.write(b"event: logout\ndata: {}\n\n")
                break
            if actions.view.version != sent:
                sent = actions.view.version
                await resp.write(b"data: " + self._snapshot() + b"\n\n")
                await asyncio.sleep(self._push_min_s)  # coalesce bursts: one push per period
                continue
            try:
                await asyncio.wait_for(tick.wait(), KEEPALIVE_S)
            except TimeoutError:
                await resp.write(b": keepalive\n\n")
        return resp

    async def killswitch(self, request: web.Request) -> web.Response:
        session, actions = _session(request), self._actions
        if not _same_origin(request):
            origin = request.headers.get("Origin")
            await actions.audit("killswitch_refused", user=session.user, why=f"origin {origin}")
            return web.json_response({"error": "cross-origin"}, status=403, headers=HEADERS)
        if not csrf_ok(session, request.headers.get("X-CSRF-Token")):
            await actions.audit("killswitch_refused", user=session.user, why="bad CSRF token")
            return web.json_response({"error": "bad CSRF token"}, status=403, headers=HEADERS)
        try:
            body = await request.json()
            on, reason = body["on"], str(body.get("reason", ""))[:MAX_REASON]
            if not isinstance(on, bool):
                raise TypeError("on must be true or false")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return web.json_response({"error": f"bad request: {exc}"}, status=400, headers=HEADERS)
        reason = reason or ("dashboard kill switch" if on else "dashboard cleared")
        result = await actions.set_killswitch(on, reason, session.user)
        return web.json_response(result, headers=HEADERS)


def make_app(access: Access, actions: Actions, *, push_min_s: float) -> web.Application:
    """The aiohttp application; ``actions`` is the running dashboard."""
    r = Routes(access, actions, push_min_s)
    app = web.Application(middlewares=[r.guard], client_max_size=64 * 1024)
    app.add_routes(
        [
            web.get("/login", r.login_form),
            web.post("/login", r.login),
            web.post("/logout", r.logout),
            web.get("/", r.index),
            web.get("/static/{name}", r.asset),
            web.get("/api/state", r.state),
            web.get("/events", r.events),
            web.post("/api/kill-switch", r.killswitch),
        ]
    )
    return app
