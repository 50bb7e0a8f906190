"""The dashboard's read-only seams: execution's journal, execution's events, health replies.

Each is blocking and runs on a worker thread (``asyncio.to_thread``) or its own thread
(``EventFeed``); none of them writes anything anywhere.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

from ipc.messages import DecodeError, decode
from ipc.orders import ORDER_EVENT_DECODER, OrderMessage
from ipc.sockets import connect_sub
from procs.dashboard.view import JournalRows, Row
from procs.group.health import collect, query_health
from procs.trading.killswitch import FileStore

__all__ = ["EventFeed", "HealthSource", "JournalReader", "read_killswitch"]

log = logging.getLogger(__name__)

EVENT_TOPICS: Final = (b"ord.", b"fill.", b"pos.", b"risk.", b"brk.")
RECV_TIMEOUT_S: Final = 0.25  # bounds how long the feed thread takes to notice a stop
# what the page shows of a health row (a row's counters and rates stay out of every push)
HEALTH_FIELDS: Final = (
    "name", "state", "proc_state", "pid", "cpu_percent", "rss_bytes", "heartbeat_age_s",
    "ring_lag_records", "ring_dropped_total", "last_error", "problems", "healthy",
)  # fmt: skip
TABLES: Final = ("intents", "order_events", "fills", "risk_events", "breaker_events")


class JournalReader:
    """Reads the rows execution added to its journal since the last call (read-only, WAL).

    Opens ``file:PATH?mode=ro`` on first use and again after an error, so a journal that does
    not exist yet (execution still starting) is simply empty. Never writes: execution is its
    only writer. One call at a time (the caller serialises them).
    """

    def __init__(self, path: str | Path, batch_rows: int = 5000) -> None:
        self.path = Path(path)
        self._batch = batch_rows
        self._conn: sqlite3.Connection | None = None
        self._last_id = dict.fromkeys(TABLES, 0)
        self.errors_total = 0

    def _open(self) -> sqlite3.Connection | None:
        if self._conn is None and self.path.exists():
            self._conn = sqlite3.connect(
                f"file:{self.path}?mode=ro", uri=True, timeout=1.0, check_same_thread=False
            )
            self._conn.row_factory = sqlite3.Row
        return self._conn

    def read(self) -> JournalRows:
        out = JournalRows()
        try:
            conn = self._open()
            if conn is None:
                return out
            for table in TABLES:
                rows = conn.execute(
                    f"SELECT * FROM {table} WHERE id > ? ORDER BY id LIMIT ?",
                    (self._last_id[table], self._batch),
                ).fetchall()
                out.more = out.more or len(rows) >= self._batch
                if rows:
                    self._last_id[table] = int(rows[-1]["id"])
                    getattr(out, table).extend(dict(r) for r in rows)
        except sqlite3.Error as exc:
            if "no such table" not in str(exc):  # created by execution at its start
                self.errors_total += 1
                log.warning("journal read failed path=%s error=%s", self.path, exc)
            self.close()
        return out

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class EventFeed:
    """A thread subscribed to execution's PUB; hands each decoded event to ``deliver``.

    The thread creates, uses and closes its socket (one socket per thread). ``deliver`` is
    called on the feed thread: hand it something thread-safe (``loop.call_soon_threadsafe``).
    """

    def __init__(self, endpoint: str, deliver: Callable[[OrderMessage], None]) -> None:
        self._endpoint = endpoint
        self._deliver = deliver
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dashboard-events", daemon=True)
        self.received_total = 0
        self.decode_errors_total = 0

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        sub = connect_sub(self._endpoint, list(EVENT_TOPICS))
        try:
            while not self._stop.is_set():
                msg = sub.recv(RECV_TIMEOUT_S)
                if msg is None:
                    continue
                try:
                    ev = decode(ORDER_EVENT_DECODER, msg[1], msg[0])
                except DecodeError as exc:
                    self.decode_errors_total += 1
                    log.warning("event decode error topic=%s error=%s", msg[0], exc)
                    continue
                self.received_total += 1
                self._deliver(ev)
        finally:
            sub.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2 * RECV_TIMEOUT_S + 1.0)


class HealthSource:
    """Health over the control sockets: execution's alone (fast) and the whole group's."""

    def __init__(self, execution_control: str, run_dir: Path, timeout_s: float = 1.0) -> None:
        self._ctl = execution_control
        self._run_dir = run_dir
        self._timeout_s = timeout_s

    def execution(self) -> dict[str, Any]:
        """Execution's health reply; raises TimeoutError or RuntimeError when unanswered."""
        return query_health(self._ctl, self._timeout_s)

    def group(self) -> list[Row]:
        """One row per program of the group (as ``bitrader health --json``)."""
        rows = [{**asdict(r), "healthy": r.healthy} for r in collect(self._run_dir)]
        return [{k: r[k] for k in HEALTH_FIELDS if k in r} for r in rows]


def read_killswitch(path: str | Path) -> Row:
    """The kill-switch file as ``bitrader kill-switch status`` reads it (unreadable = on)."""
    return asdict(FileStore(path).read())
