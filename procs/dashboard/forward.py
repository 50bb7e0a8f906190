"""``AuditForwarder``: the dashboard's audit records into execution's keyed audit chain.

Each record is first in the dashboard's own log (``control.AuditLog``); this thread then sends
it to execution as a signed ``audit`` control request, one at a time, oldest first, each with
a short timeout, so the page never waits on it. When execution does not answer (or refuses the
credentials) the record is marked ``undelivered`` in the local log, counted, and sent again
every ``retry_s`` until it lands, still in order; the first delivery after that is logged
(``audit_delivered``). Records still undelivered when the dashboard starts again (local log
lines marked ``undelivered`` and never ``delivered``) are queued again. A record execution
rejects as invalid (a bug, not an outage) is marked ``rejected`` and not retried.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Protocol

from ipc.messages import ControlResponse

__all__ = ["AuditForwarder", "pending_in"]

log = logging.getLogger(__name__)

SEND_TIMEOUT_S: Final = 1.0
RETRY_S: Final = 2.0
MAX_QUEUED: Final = 10_000  # beyond this, records wait in the local log for the next start
SOURCE: Final = "dashboard"
UNDELIVERED: Final = "audit_undelivered"
DELIVERED: Final = "audit_delivered"
REJECTED: Final = "audit_rejected"
_MARKS: Final = (UNDELIVERED, DELIVERED, REJECTED)

Ask = Callable[[str, dict[str, str], float], ControlResponse | None]


class LocalLog(Protocol):
    def append(self, kind: str, **fields: Any) -> dict[str, Any]: ...


def pending_in(path: str | Path) -> list[dict[str, Any]]:
    """Records of a local log marked ``undelivered`` and never ``delivered``/``rejected``."""
    p = Path(path)
    if not p.exists():
        return []
    records: dict[int, dict[str, Any]] = {}
    open_seqs: dict[int, None] = {}  # insertion-ordered set
    for line in p.read_text().splitlines():
        rec = json.loads(line)
        kind, seq = rec.get("kind"), rec.get("seq")
        if kind == UNDELIVERED:
            open_seqs[int(rec["ref"])] = None
        elif kind in (DELIVERED, REJECTED):
            open_seqs.pop(int(rec["ref"]), None)
        elif isinstance(seq, int):
            records[seq] = rec
    return [records[s] for s in sorted(open_seqs) if s in records]


def request_args(record: dict[str, Any]) -> dict[str, str]:
    """The ``audit`` request's arguments for one local record."""
    fields = {
        k: v for k, v in record.items() if k not in ("kind", "seq", "ts_ns", "hash", "delivery")
    }
    return {
        "kind": str(record["kind"]),
        "source": SOURCE,
        "fields": json.dumps(fields, sort_keys=True, separators=(",", ":")),
        "seq": str(record.get("seq", 0)),
        "ts_ns": str(record.get("ts_ns", 0)),
    }


class AuditForwarder:
    """One daemon thread draining a bounded in-order queue into execution's ``audit`` command."""

    def __init__(
        self,
        local: LocalLog,
        ask: Ask,
        *,
        timeout_s: float = SEND_TIMEOUT_S,
        retry_s: float = RETRY_S,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self._local = local
        self._ask = ask
        self._timeout_s = timeout_s
        self._retry_s = retry_s
        self._max = max_queued
        self._queue: deque[tuple[dict[str, Any], bool]] = deque()  # (record, marked undelivered)
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "audit_forwarded_total",
                "audit_undelivered_total",
                "audit_rejected_total",
                "audit_overflow_total",
            ),
            0,
        )

    @property
    def undelivered(self) -> int:
        """Records execution has not taken yet (queued, or waiting for a retry)."""
        with self._cond:
            return len(self._queue)

    def requeue(self, records: list[dict[str, Any]]) -> None:
        """Records already marked undelivered (``pending_in``): sent first, in order."""
        with self._cond:
            self._queue.extend((r, True) for r in records[: self._max])
            self._cond.notify()

    def submit(self, record: dict[str, Any]) -> None:
        """Queue a record just written to the local log; never blocks."""
        with self._cond:
            if len(self._queue) < self._max:
                self._queue.append((record, False))
                self._cond.notify()
                return
            self.counters["audit_overflow_total"] += 1
        self._mark(UNDELIVERED, record, "queue full")  # in the local log: the next start sends it

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="audit-forward", daemon=True)
        self._thread.start()

    def close(self, drain_s: float = 1.0) -> None:
        """Stop the thread (after one more try of what is queued, within ``drain_s``)."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=drain_s + self._timeout_s + 1.0)

    def _mark(self, mark: str, record: dict[str, Any], error: str) -> None:
        try:
            self._local.append(mark, ref=record.get("seq"), error=error[:200])
        except OSError as exc:  # the record itself is already on disk; the mark is advice
            log.error("audit mark %s seq=%s not written: %s", mark, record.get("seq"), exc)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait()
                if not self._queue:
                    return
                record, marked = self._queue[0]
            ok, retry, error = self._send(record)
            with self._cond:
                if ok or not retry:
                    self._queue.popleft()
                elif not marked:
                    self._queue[0] = (record, True)
            if ok:
                self.counters["audit_forwarded_total"] += 1
                if marked:
                    self._mark(DELIVERED, record, "")
            elif not retry:
                self.counters["audit_rejected_total"] += 1
                log.error("audit record seq=%s rejected: %s", record.get("seq"), error)
                self._mark(REJECTED, record, error)
            else:
                if not marked:
                    self.counters["audit_undelivered_total"] += 1
                    log.warning("audit record seq=%s undelivered: %s", record.get("seq"), error)
                    self._mark(UNDELIVERED, record, error)
                with self._cond:
                    if self._stop:
                        return  # left marked in the local log: the next start sends it
                    self._cond.wait(self._retry_s)

    def _send(self, record: dict[str, Any]) -> tuple[bool, bool, str]:
        """(delivered, worth retrying, error)."""
        try:
            reply = self._ask("audit", request_args(record), self._timeout_s)
        except (OSError, RuntimeError) as exc:
            return False, True, str(exc)
        if reply is None:
            return False, True, f"execution did not answer within {self._timeout_s:g} s"
        if reply.ok:
            return True, False, ""
        # credentials (a token not there yet) or a stopping process: try again; else invalid
        retry = reply.error.startswith("unauthorized") or "unknown command" in reply.error
        return False, retry, reply.error
