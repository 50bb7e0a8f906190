"""Wait, bounded, until the venue (simex in the demo) accepts TCP connections.

supervisord starts simex first, but "started" is not "listening": ingest and live execution
would otherwise open with connection-refused warnings from their retry paths. ``wait_accepting``
tries a plain TCP connect to each URL's host and port, with a short backoff, keeps the process
answering health in between (``service``), and gives up after ``timeout_s``: then the client's
own reconnect/retry path takes over, as before. One log line says it is waiting, one how it
ended; a venue that accepts at once logs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Final
from urllib.parse import urlsplit

__all__ = ["VENUE_WAIT_S", "host_port", "wait_accepting"]

log = logging.getLogger(__name__)

VENUE_WAIT_S: Final = 30.0  # ample for simex's start-up on a loaded 2-core machine
_BACKOFF_S: Final = (0.05, 0.1, 0.2, 0.5)  # then every 0.5 s
_DEFAULT_PORTS: Final = {"http": 80, "ws": 80, "https": 443, "wss": 443}


def host_port(url: str) -> tuple[str, int]:
    """``ws://127.0.0.1:18081/public/`` -> ("127.0.0.1", 18081); default ports by scheme."""
    u = urlsplit(url)
    if not u.hostname:
        raise ValueError(f"no host in {url!r}")
    port = u.port or _DEFAULT_PORTS.get(u.scheme)
    if port is None:
        raise ValueError(f"no port in {url!r} and none known for scheme {u.scheme!r}")
    return u.hostname, port


async def _accepts(host: str, port: int, timeout_s: float) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def wait_accepting(
    urls: Sequence[str],
    timeout_s: float = VENUE_WAIT_S,
    *,
    stop: Callable[[], bool] = lambda: False,
    service: Callable[[], None] = lambda: None,
    what: str = "venue",
) -> bool:
    """Return True once every URL's host:port accepts a connection; False on timeout or stop."""
    targets = sorted({host_port(u) for u in urls})
    t0 = time.monotonic()
    deadline = t0 + timeout_s
    waiting = False
    tries = 0
    while targets:
        targets = [t for t in targets if not await _accepts(*t, min(1.0, max(timeout_s, 0.05)))]
        if not targets:
            break
        names = " ".join(f"{h}:{p}" for h, p in targets)
        if not waiting:
            waiting = True
            log.info(
                "waiting up to %gs for the %s at %s to accept connections", timeout_s, what, names
            )
        if stop():
            return False
        if time.monotonic() >= deadline:
            log.warning(
                "the %s at %s does not accept connections after %gs; going on (the client "
                "retries and reconnects from here)",
                *(what, names, timeout_s),
            )
            return False
        service()
        delay = _BACKOFF_S[min(tries, len(_BACKOFF_S) - 1)]
        tries += 1
        await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
    if waiting:
        log.info("the %s accepts connections after %.1fs", what, time.monotonic() - t0)
    return True
