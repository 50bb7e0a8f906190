"""ZeroMQ with the house options: the only module that imports zmq.

One ``zmq.Context.instance()`` per process, plus one per control socket (``bind_rep``: its
close terminates it, so the last reply is sent before the process exits); every socket gets
``linger=0`` and explicit HWMs, sends never block (``zmq.Again`` is counted, not raised) and
every receive has a timeout. Each object here is created, used and closed on one thread.

Wake-ups (``WakeSender``/``WakeListener``) travel on the writer's PUB as the architecture says,
and, when the PUB is an ``ipc://`` endpoint, also *directly*: the listener binds a Unix datagram
socket next to the PUB's socket file (``<pub>.<topic>w<pid>.<n>``) and the sender sends one
datagram to each such socket it finds. The kernel then wakes the listener's thread itself: one
wake-up instead of three (sender's zmq I/O thread, listener's zmq I/O thread, listener), each
of which waits for a core on a busy machine (docs/bench-tick-to-order.md, "Per hop"). A
listener drops its zmq subscription once the first direct wake arrives, so the PUB filters the
zmq copy away (no I/O-thread work); a listener whose writer never sends directly (a plain PUB,
a tcp endpoint) keeps waking on zmq.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import math
import os
import re
import select
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Final, cast

import zmq

from ipc.endpoints import ipc_path, validate
from ipc.messages import IpcError

__all__ = [
    "DEFAULT_RCVHWM",
    "DEFAULT_SNDHWM",
    "Publisher",
    "Replier",
    "Subscriber",
    "WakeListener",
    "WakeSender",
    "bind_pub",
    "bind_rep",
    "connect_sub",
    "context",
    "pin_io_threads",
    "request",
]

DEFAULT_SNDHWM: Final = 10_000
DEFAULT_RCVHWM: Final = 10_000
CONTROL_HWM: Final = 100
CONTROL_MAX_BYTES: Final = 64 << 10  # a control request is a few hundred bytes
WAKE_RCVHWM: Final = 16  # wakes are idempotent: one queued is as good as many
WAKE_RESCAN_S: Final = 0.1  # a sender looks for new direct listeners this often
_WAKE_TOPIC_OK: Final = re.compile(rb"[A-Za-z0-9_.-]+")
_UNIX_PATH_MAX: Final = 107  # sun_path holds 108 bytes with the NUL
_wake_ids = itertools.count()
_wake_out: list[socket.socket] = []  # the process's one unbound sending socket, made on first use

_state = {"sockets_made": 0}
_io_cores: list[int] = []  # pin_io_threads' cores, for every context this process makes


def context() -> zmq.Context[zmq.Socket[bytes]]:
    """Return the process's one context (created on first use)."""
    return zmq.Context.instance()


def pin_io_threads(cores: Sequence[int]) -> None:
    """Place this process's zmq I/O threads on ``cores``; call before the first socket.

    I/O threads inherit the affinity of the thread that creates them. A process that spins on
    a core it is pinned to would starve its own I/O thread (ms tails, machine-limits.md §3), so
    a spinning process moves it to another core here.

    Raises
    ------
    IpcError
        A socket already exists (the I/O threads have started), or ``cores`` is empty.
    """
    if not cores:
        raise IpcError("pin_io_threads needs at least one core")
    if _state["sockets_made"]:
        raise IpcError("pin_io_threads must be called before the first socket is created")
    _io_cores[:] = [int(core) for core in cores]
    ctx = context()
    for core in _io_cores:
        ctx.set(zmq.THREAD_AFFINITY_CPU_ADD, core)


def _own_context() -> zmq.Context[zmq.Socket[bytes]]:
    """A context for one control socket, so closing it can wait for its last reply.

    libzmq applies a socket's linger only in ``zmq_ctx_term``, and the process's shared
    context is never terminated (pyzmq skips it at interpreter exit; other sockets may still
    be open): a reply queued just before exit is lost unless its own context is terminated.
    """
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context(io_threads=1)
    for core in _io_cores:
        ctx.set(zmq.THREAD_AFFINITY_CPU_ADD, core)
    return ctx


def _socket(
    kind: int,
    *,
    sndhwm: int = 0,
    rcvhwm: int = 0,
    ctx: zmq.Context[zmq.Socket[bytes]] | None = None,
) -> zmq.Socket[bytes]:
    sock = (ctx or context()).socket(kind)
    _state["sockets_made"] += 1
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, sndhwm)
    sock.setsockopt(zmq.RCVHWM, rcvhwm)
    return sock


# ZAP handlers by context (the shared one, a control socket's own), started on first use
_AUTHENTICATOR: dict[int, Any] = {}


def _allow_only(sock: zmq.Socket[bytes], allow_ips: Sequence[str]) -> None:
    """Accept connections to ``sock`` only from ``allow_ips`` (ZAP, through ``zmq.auth``)."""
    from zmq.auth.thread import ThreadAuthenticator

    key = id(sock.context)
    if key not in _AUTHENTICATOR:
        auth = ThreadAuthenticator(sock.context)
        auth.start()
        _AUTHENTICATOR[key] = auth
    _AUTHENTICATOR[key].allow(*allow_ips)
    sock.zap_domain = b"bitrader"


def _stop_authenticator_of(ctx: zmq.Context[zmq.Socket[bytes]]) -> None:
    auth = _AUTHENTICATOR.pop(id(ctx), None)
    if auth is not None:
        auth.stop()


def stop_authenticator() -> None:
    """Stop the ZAP handler threads, if any were started (tests; process exit does it too)."""
    while _AUTHENTICATOR:
        _AUTHENTICATOR.popitem()[1].stop()


def _bind(sock: zmq.Socket[bytes], endpoint: str, allow_ips: Sequence[str] = ()) -> None:
    if allow_ips:
        _allow_only(sock, allow_ips)
    path = ipc_path(endpoint)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        sock.bind(endpoint)
    except zmq.ZMQError as exc:
        sock.close(linger=0)
        raise IpcError(f"cannot bind {endpoint}: {exc}") from exc


def _timeout_ms(timeout_s: float) -> int:
    # round up so a 0.2 ms timeout still waits, rather than becoming a non-blocking poll
    return max(0, math.ceil(timeout_s * 1000.0))


def _readable(sock: zmq.Socket[bytes]) -> bool:
    return bool(cast(int, sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN)


def _recv(owner: Subscriber | Replier, timeout_s: float, *, multipart: bool) -> list[bytes] | None:
    # a blocking recv under RCVTIMEO is the cheapest wait pyzmq has (poll() builds a Poller
    # per call); EVENTS answers "anything queued?" without the cost of raising zmq.Again
    sock = owner._sock
    try:
        if timeout_s <= 0:
            if not _readable(sock):
                return None
            flags: int = zmq.NOBLOCK
        else:
            ms = _timeout_ms(timeout_s)
            if ms != owner._rcvtimeo_ms:
                sock.setsockopt(zmq.RCVTIMEO, ms)
                owner._rcvtimeo_ms = ms
            flags = 0
        return sock.recv_multipart(flags) if multipart else [sock.recv(flags)]
    except zmq.Again:
        return None


# pyzmq's compiled send: the sugar class's send and send_multipart add Python-level checks
# (routing id, group, copy threshold, per-part type checks) that bytes parts never need
_SEND: Final = zmq.backend.Socket.send
_MORE_NOBLOCK: Final = zmq.SNDMORE | zmq.NOBLOCK


class Publisher:
    """A bound PUB socket; the only writer of its endpoint and of the topics it sends.

    ``send`` never blocks. With ``nodrop=False`` (default) libzmq drops silently per
    subscriber at the HWM, and consumers see a ``seq`` gap; with ``nodrop=True`` a full
    subscriber makes ``send`` return False for everyone and counts ``again_total``.
    """

    def __init__(self, sock: zmq.Socket[bytes], endpoint: str) -> None:
        self._sock = sock
        self.endpoint = endpoint
        self.sent_total = 0
        self.again_total = 0

    def send(self, topic: bytes, payload: bytes) -> bool:
        """Queue ``[topic, payload]``; return False (and count it) if it was refused."""
        sock = self._sock
        try:  # what send_multipart does, minus its Python (~1.5 µs of the ~2 a wake-up took)
            _SEND(sock, topic, _MORE_NOBLOCK)
            _SEND(sock, payload, zmq.NOBLOCK)  # never refused once the first part was taken
        except zmq.Again:
            self.again_total += 1
            return False
        self.sent_total += 1
        return True

    def close(self) -> None:
        """Close the socket at once (linger 0)."""
        self._sock.close(linger=0)


def bind_pub(
    endpoint: str,
    *,
    sndhwm: int = DEFAULT_SNDHWM,
    nodrop: bool = False,
    allow_remote: bool = False,
    allow_ips: Sequence[str] = (),
) -> Publisher:
    """Bind a PUB socket on ``endpoint`` (creating an ipc path's directory).

    ``allow_remote`` permits a non-loopback tcp host (a stage on another machine);
    ``allow_ips`` (non-empty) accepts subscribers from those addresses only.
    """
    validate(endpoint, allow_remote=allow_remote)
    sock = _socket(zmq.PUB, sndhwm=sndhwm)
    if nodrop:
        sock.setsockopt(zmq.XPUB_NODROP, 1)
    _bind(sock, endpoint, allow_ips)
    return Publisher(sock, endpoint)


class Subscriber:
    """A SUB socket connected to one or more publishers; every ``recv`` has a timeout."""

    def __init__(self, sock: zmq.Socket[bytes]) -> None:
        self._sock = sock
        self._rcvtimeo_ms = -1
        self.received_total = 0
        self.malformed_total = 0

    def subscribe(self, topic: bytes) -> None:
        """Add a topic prefix; topics end with a dot so ``sig.7.`` never matches ``sig.70.``."""
        self._sock.setsockopt(zmq.SUBSCRIBE, topic)

    def recv(self, timeout_s: float) -> tuple[bytes, bytes] | None:
        """Return the next ``(topic, payload)``, or None after ``timeout_s`` (0: don't wait)."""
        frames = _recv(self, timeout_s, multipart=True)
        if frames is None:
            return None
        if len(frames) != 2:
            self.malformed_total += 1
            return None
        self.received_total += 1
        return frames[0], frames[1]

    def drain(self) -> int:
        """Discard every queued message without waiting; return how many."""
        n = 0
        sock = self._sock
        while _readable(sock):
            sock.recv_multipart(zmq.NOBLOCK)
            n += 1
        return n

    def close(self) -> None:
        """Close the socket at once (linger 0)."""
        self._sock.close(linger=0)


def connect_sub(
    endpoints: str | Iterable[str],
    topics: Iterable[bytes],
    *,
    rcvhwm: int = DEFAULT_RCVHWM,
    allow_remote: bool = False,
) -> Subscriber:
    """Connect a SUB socket to ``endpoints`` and subscribe to each topic prefix.

    PUB/SUB drops messages sent before the subscription reaches the publisher: nothing that
    must arrive travels this way.
    """
    listed = [endpoints] if isinstance(endpoints, str) else endpoints
    eps = [validate(ep, allow_remote=allow_remote) for ep in listed]
    sock = _socket(zmq.SUB, rcvhwm=rcvhwm)
    sub = Subscriber(sock)
    try:
        for topic in topics:
            sub.subscribe(topic)
        for ep in eps:
            sock.connect(ep)
    except zmq.ZMQError:
        sock.close(linger=0)
        raise
    return sub


class Replier:
    """A bound REP control socket: ``recv`` a request, then ``send`` exactly one reply.

    Nothing a peer sends can break it. A request of more than one frame, or longer than
    ``max_bytes``, is answered with ``malformed_reply`` (so the REP state machine moves on) and
    counted in ``malformed_total``; libzmq itself disconnects a peer whose message exceeds
    ``MAXMSGSIZE``. A socket error (a reply that could not be sent leaves REP unable to receive:
    EFSM) closes and rebinds the endpoint, counted in ``rebinds_total``.
    """

    def __init__(
        self,
        sock: zmq.Socket[bytes],
        endpoint: str,
        *,
        max_bytes: int = CONTROL_MAX_BYTES,
        malformed_reply: bytes = b"",
        remake: Callable[[], zmq.Socket[bytes]] | None = None,
        own_context: bool = False,
    ) -> None:
        self._sock = sock
        self._own_context = own_context  # ``sock.context`` is this Replier's alone: close terms it
        self._rcvtimeo_ms = -1
        self.endpoint = endpoint
        self.max_bytes = max_bytes
        self.malformed_reply = malformed_reply
        self._remake = remake
        self._owes_reply = False
        self.again_total = 0
        self.malformed_total = 0
        self.rebinds_total = 0
        self.last_malformed = ""

    def recv(self, timeout_s: float) -> bytes | None:
        """Return the next well-formed request body, or None after ``timeout_s`` (0: don't
        wait); a malformed request is answered, counted and skipped (None)."""
        if self._owes_reply:  # the caller never replied to the last one: do it for them
            self.send(self.malformed_reply)
        try:
            frames = _recv(self, timeout_s, multipart=True)
        except zmq.ZMQError as exc:
            self._rebind(exc)
            return None
        if frames is None:
            return None
        self._owes_reply = True
        size = sum(len(f) for f in frames)
        if len(frames) == 1 and size <= self.max_bytes:
            return frames[0]
        self.malformed_total += 1
        self.last_malformed = f"{len(frames)} frames, {size} bytes"
        self.send(self.malformed_reply)
        return None

    def send(self, payload: bytes) -> bool:
        """Send the reply to the last request; return False (counted) if it was refused."""
        self._owes_reply = False
        try:
            self._sock.send(payload, zmq.NOBLOCK)
        except zmq.Again:
            self.again_total += 1
            self._rebind(None)  # REP still owes this reply: only a fresh socket can recv again
            return False
        except zmq.ZMQError as exc:
            self._rebind(exc)
            return False
        return True

    def _rebind(self, exc: zmq.ZMQError | None) -> None:
        if self._remake is None:
            if exc is not None:
                raise IpcError(f"control socket {self.endpoint}: {exc}") from exc
            return
        self.rebinds_total += 1
        self._sock.close(linger=0)
        self._sock = self._remake()
        self._rcvtimeo_ms = -1

    def close(self, linger_s: float = 0.0) -> None:
        """Close the socket, waiting at most ``linger_s`` for a reply still being sent.

        The wait happens here (terminating the socket's own context), not at process exit:
        the reply to a ``stop`` is on its way to the kernel when this returns, or given up.
        """
        sock = self._sock
        if sock.closed:
            return
        ctx = sock.context
        sock.close(linger=int(linger_s * 1000))
        if self._own_context:
            _stop_authenticator_of(ctx)
            ctx.term()  # returns once the lingering reply is written, or after linger_s


def bind_rep(
    endpoint: str,
    *,
    allow_remote: bool = False,
    max_bytes: int = CONTROL_MAX_BYTES,
    malformed_reply: bytes = b"",
    allow_ips: Sequence[str] = (),
) -> Replier:
    """Bind a REP socket on ``endpoint`` (creating an ipc path's directory).

    ``malformed_reply`` answers a request of the wrong shape (more frames, too long);
    ``allow_ips`` (non-empty) accepts connections from those addresses only.
    """
    validate(endpoint, allow_remote=allow_remote)
    ctx = _own_context()  # so that close() can wait for the last reply (stop's)

    def make() -> zmq.Socket[bytes]:
        sock = _socket(zmq.REP, sndhwm=CONTROL_HWM, rcvhwm=CONTROL_HWM, ctx=ctx)
        sock.setsockopt(zmq.MAXMSGSIZE, max_bytes * 2)
        _bind(sock, endpoint, allow_ips)
        return sock

    try:
        sock = make()
    except IpcError:
        _stop_authenticator_of(ctx)
        ctx.term()
        raise
    return Replier(
        sock,
        endpoint,
        max_bytes=max_bytes,
        malformed_reply=malformed_reply,
        remake=make,
        own_context=True,
    )


def request(
    endpoint: str, payload: bytes, timeout_s: float, *, allow_remote: bool = False
) -> bytes | None:
    """Send one request and return the reply, or None if none came within ``timeout_s``.

    A fresh REQ socket per call, closed with linger 0, so a dead peer never hangs the caller
    and a late reply never reaches the next request.
    """
    validate(endpoint, allow_remote=allow_remote)
    sock = _socket(zmq.REQ, sndhwm=1, rcvhwm=1)
    try:
        sock.connect(endpoint)
        try:
            sock.send(payload, zmq.NOBLOCK)
        except zmq.Again:
            return None
        if not sock.poll(_timeout_ms(timeout_s), zmq.POLLIN):
            return None
        return sock.recv(zmq.NOBLOCK)
    finally:
        sock.close(linger=0)


def _direct_wake(endpoint: str, topic: bytes) -> tuple[Path, str] | None:
    """(directory, file-name prefix) of the direct wake sockets of ``topic`` on ``endpoint``."""
    path = ipc_path(endpoint)
    if path is None or not _WAKE_TOPIC_OK.fullmatch(topic):
        return None
    return path.parent, f"{path.name}.{topic.decode()}w"


def _wake_out_socket() -> socket.socket:
    if not _wake_out:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        _wake_out.append(sock)
        atexit.register(sock.close)
    return _wake_out[0]


class WakeSender:
    """Publish a wake-up on ``topic`` through a process's Publisher (shm ``Waker``), and send
    it straight to every direct listener of that exact topic (ipc endpoints only)."""

    def __init__(self, publisher: Publisher, topic: bytes, payload: bytes = b"") -> None:
        self._pub = publisher
        self._topic = topic
        self._payload = payload
        self._direct = _direct_wake(publisher.endpoint, topic)
        self._peers: list[str] = []
        self._scan_due = 0.0
        self.direct_sent_total = 0

    @property
    def direct_peers(self) -> int:
        """Return how many direct listeners the last scan found."""
        return len(self._peers)

    def notify(self) -> None:
        """Send one wake-up; a refused zmq send is counted by the Publisher."""
        self._pub.send(self._topic, self._payload)
        if self._direct is None:
            return
        now = time.monotonic()
        if now >= self._scan_due:
            self._scan(now)
        if not self._peers:
            return
        out = _wake_out_socket()
        lost = False
        for path in self._peers:
            try:
                out.sendto(b"w", path)
                self.direct_sent_total += 1
            except BlockingIOError:
                pass  # its queue is full: it has wakes waiting already
            except (FileNotFoundError, ConnectionRefusedError):
                lost = True  # it closed, or died: a dead one's file goes
                _unlink(path)
        if lost:
            self._scan(now)

    def _scan(self, now: float) -> None:
        assert self._direct is not None
        directory, prefix = self._direct
        self._scan_due = now + WAKE_RESCAN_S
        try:
            with os.scandir(directory) as it:
                self._peers = [e.path for e in it if e.name.startswith(prefix)]
        except OSError:
            self._peers = []


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


class WakeListener:
    """Block until a wake-up on ``topic`` arrives (shm ``Notifier``); owns its sockets.

    With one ``ipc://`` endpoint it also binds a direct wake socket (see the module doc) unless
    ``direct=False`` (ZeroMQ only); ``direct`` says whether it is in use, ``direct_total`` counts
    the wakes that came that way.
    """

    def __init__(
        self,
        endpoints: str | Iterable[str],
        topic: bytes,
        *,
        allow_remote: bool = False,
        direct: bool = True,
    ) -> None:
        listed = [endpoints] if isinstance(endpoints, str) else list(endpoints)
        self._sub = connect_sub(listed, [topic], rcvhwm=WAKE_RCVHWM, allow_remote=allow_remote)
        self._topic = topic
        self._subscribed = True
        self._zfd = cast(int, self._sub._sock.getsockopt(zmq.FD))
        self._poll = select.poll()
        self._poll.register(self._zfd, select.POLLIN)
        self._dgram: socket.socket | None = None
        self._path: str | None = None
        self.wakes_total = 0
        self.direct_total = 0
        where = _direct_wake(listed[0], topic) if direct and len(listed) == 1 else None
        if where is not None:
            self._bind_direct(*where)

    @property
    def direct(self) -> bool:
        """Return whether a direct wake socket is bound."""
        return self._dgram is not None

    @property
    def fds(self) -> list[int]:
        """File descriptors an event loop can watch (``loop.add_reader``) instead of a thread
        blocking in ``wait``: when one turns readable a wake-up may be queued; ``wait(0)``
        drains and answers. zmq's descriptor is edge-triggered: only ``wait`` re-arms it, so
        call ``wait(0)`` once after registering and after every readiness callback."""
        out = [self._zfd]
        if self._dgram is not None:
            out.append(self._dgram.fileno())
        return out

    def _bind_direct(self, directory: Path, prefix: str) -> None:
        path = str(directory / f"{prefix}{os.getpid()}.{next(_wake_ids)}")
        if len(path.encode()) > _UNIX_PATH_MAX:
            return  # too long for a Unix socket name: zmq only
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            _unlink(path)
            sock.bind(path)
        except OSError:
            sock.close()
            return
        sock.setblocking(False)
        self._dgram, self._path = sock, path
        self._poll.register(sock.fileno(), select.POLLIN)

    def wait(self, timeout_s: float) -> bool:
        """Return True if a wake-up came within ``timeout_s``; drain every queued one."""
        n = self._drain()
        if not n and timeout_s > 0:
            self._poll.poll(_timeout_ms(timeout_s))
            n = self._drain()
        if not n:
            return False
        self.wakes_total += n
        return True

    def _drain(self) -> int:
        n = 0
        if self._dgram is not None:
            recv = self._dgram.recv
            while True:
                try:
                    recv(16)
                except BlockingIOError:
                    break
                n += 1
            if n:
                self.direct_total += n
                if self._subscribed:  # the writer sends directly: let the PUB drop the copy
                    self._subscribed = False
                    self._sub._sock.setsockopt(zmq.UNSUBSCRIBE, self._topic)
        # after an unsubscribe, copies already on the way still arrive: always drain
        return n + self._sub.drain()

    def close(self) -> None:
        """Close the sockets at once (linger 0) and remove the direct wake socket's file."""
        self._sub.close()
        if self._dgram is not None:
            self._dgram.close()
            self._dgram = None
        if self._path is not None:
            _unlink(self._path)
            self._path = None
