"""A process's control requests: decode, authenticate, dispatch, audit (``Runtime`` owns one).

``health`` from the local owner needs nothing; every other request (``stop``, the commands a
process adds) must be signed with the control token (``procs._auth``). Refusals are counted and
logged at most every few seconds; every authenticated state-changing request is logged and
handed to ``on_control`` (execution journals it).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Final, Protocol

from ipc.messages import REQUEST_DECODER, ControlResponse, DecodeError, Value, decode
from procs._auth import AuthError, Verifier, ensure_token, read_token, strip
from procs._config import EXIT_CONFIG, RuntimeConfig

log = logging.getLogger("procs._runtime")

CommandHandler = Callable[[dict[str, str]], dict[str, Value]]
BUILT_IN: Final = ("health", "stop")


def load_token(proc: str, cfg: RuntimeConfig) -> bytes | None:
    """The process's control token (made beside an ipc control socket when missing); None when
    there is no token file. Raises ``SystemExit(EXIT_CONFIG)`` for a bad one."""
    path = cfg.token_file
    if not path:
        log.warning("no control token file: state-changing control requests are refused")
        return None
    if not cfg.control_token_file:  # the default beside the socket: make it once
        ensure_token(os.path.dirname(path))
    try:
        return read_token(path)
    except AuthError as exc:
        log.error("config error proc=%s path=$.%s.runtime.control_token_file: %s", proc, proc, exc)
        raise SystemExit(EXIT_CONFIG) from None


class Throttled(Protocol):
    """``procs._runtime.ThrottledLog``."""

    def warning(self, key: str, msg: str, *args: object) -> bool: ...


class ControlDispatcher:
    """Answers one process's control requests; single-threaded, like the socket it serves."""

    def __init__(
        self,
        *,
        open_health: bool,
        health: Callable[[], dict[str, Value]],
        stop: Callable[[str], None],
        throttled: Throttled,
    ) -> None:
        self._open_health = open_health  # local owner: health needs no credentials
        self._health = health
        self._stop = stop
        self._throttled = throttled
        self._commands: dict[str, CommandHandler] = {}
        self._verifier: Verifier | None = None
        self.errors_total = 0  # requests answered with an error (bad, refused, unauthorized)
        self.unauthorized_total = 0
        # execution journals every state-changing request through this (cmd, args, ok, error)
        self.on_control: Callable[[str, dict[str, str], bool, str], None] | None = None

    def add(self, cmd: str, handler: CommandHandler) -> None:
        if cmd in BUILT_IN or cmd in self._commands:
            raise ValueError(f"control command {cmd!r} is already taken")
        self._commands[cmd] = handler

    def use_token(self, token: bytes) -> None:
        """Check requests against ``token``; without one every signed command is refused."""
        self._verifier = Verifier(token)

    def answer(self, body: bytes) -> ControlResponse:
        resp = self._dispatch(body)
        if not resp.ok:
            self.errors_total += 1
        return resp

    def _dispatch(self, body: bytes) -> ControlResponse:
        try:
            req = decode(REQUEST_DECODER, body, b"ctl")
        except DecodeError as exc:
            self._throttled.warning("decode", "control decode error=%s", exc)
            return ControlResponse(ok=False, error=f"bad request: {exc}")
        if req.cmd == "health" and self._open_health:
            return ControlResponse(ok=True, data=self._health())
        args = dict(req.args)
        try:
            if self._verifier is None:
                raise AuthError("no control token configured")
            self._verifier.check(req.cmd, args)
        except AuthError as exc:
            self.unauthorized_total += 1
            # counted and logged (throttled: a flood must not flood the log or the journal)
            self._throttled.warning("auth", "control refused cmd=%s: %s", req.cmd, exc)
            return ControlResponse(ok=False, error=f"unauthorized: {exc}")
        resp = self._command(req.cmd, strip(args))
        if req.cmd != "health":
            self._audit(req.cmd, strip(args), resp.ok, resp.error)
        return resp

    def _command(self, cmd: str, args: dict[str, str]) -> ControlResponse:
        handler = self._commands.get(cmd)
        if handler is not None:
            try:
                return ControlResponse(ok=True, data=handler(args))
            except ValueError as exc:
                log.warning("control command=%s refused error=%s", cmd, exc)
                return ControlResponse(ok=False, error=str(exc))
        if cmd == "health":
            return ControlResponse(ok=True, data=self._health())
        if cmd == "stop":
            log.info("stop requested over control socket")
            self._stop("control")
            return ControlResponse(ok=True, data={"state": "stopping"})
        return ControlResponse(ok=False, error=f"unknown command {cmd!r}")

    def _audit(self, cmd: str, args: dict[str, str], ok: bool, error: str) -> None:
        log.warning("control audit cmd=%s args=%s ok=%s error=%s", cmd, args, ok, error or "-")
        if self.on_control is not None:
            self.on_control(cmd, args, ok, error)
