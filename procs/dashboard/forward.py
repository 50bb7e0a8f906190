"""``AuditForwarder``: the dashboard's audit records into execution's keyed audit chain.

Each record is first in the dashboard's own log (``control.AuditLog``): that file is the queue.
This thread follows it and sends each record to execution as a signed ``audit`` control
request, one at a time, oldest first, each with a short timeout, so the page never waits on it;
``<log>.delivered`` keeps the ``seq`` of the last record done, so a restarted dashboard resumes
after it (a crash between the two may send one record twice: its ``seq`` shows it). When
execution does not answer (or refuses the credentials) the record is marked ``undelivered`` in
the local log, counted, and sent again every ``retry_s`` until it lands, still in order; an
``audit_delivered`` line follows. A record execution rejects as invalid (a bug, not an outage)
is marked ``rejected`` and skipped.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Protocol

from ipc.messages import ControlResponse
from procs._files import write_private

__all__ = ["AuditForwarder", "delivered_path"]

log = logging.getLogger(__name__)

SEND_TIMEOUT_S: Final = 1.0
RETRY_S: Final = 2.0
BATCH: Final = 256  # records read ahead from the local log at most
READ_BYTES: Final = 1 << 18
SOURCE: Final = "dashboard"
UNDELIVERED: Final = "audit_undelivered"
DELIVERED: Final = "audit_delivered"
REJECTED: Final = "audit_rejected"
_MARKS: Final = (UNDELIVERED, DELIVERED, REJECTED)

Ask = Callable[[str, dict[str, str], float], ControlResponse | None]


class LocalLog(Protocol):
    path: Path

    def append(self, kind: str, **fields: Any) -> dict[str, Any]: ...


def delivered_path(log_path: str | Path) -> Path:
    return Path(f"{log_path}.delivered")


def _read_done(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except FileNotFoundError:
        return 0
    except (OSError, ValueError) as exc:  # unreadable: resend everything (seq shows repeats)
        log.error("%s unreadable (%s): sending the whole local audit log again", path, exc)
        return 0


def _wanted(rec: Any, done: int) -> bool:
    """A record (not a delivery mark) after the last one done."""
    if not isinstance(rec, dict) or rec.get("kind") in _MARKS:
        return False
    seq = rec.get("seq")
    return isinstance(seq, int) and seq > done


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
    """One daemon thread following the local log into execution's ``audit`` command."""

    def __init__(
        self,
        local: LocalLog,
        ask: Ask,
        *,
        timeout_s: float = SEND_TIMEOUT_S,
        retry_s: float = RETRY_S,
        batch: int = BATCH,
    ) -> None:
        self._local = local
        self._ask = ask
        self._timeout_s = timeout_s
        self._retry_s = retry_s
        self._batch = max(1, batch)
        self._done_path = delivered_path(local.path)
        self._done = _read_done(self._done_path)
        self._offset = 0  # bytes of the local log read so far
        self._queue: deque[tuple[dict[str, Any], bool]] = deque()  # (record, marked undelivered)
        self._cond = threading.Condition()
        self._more = False
        self._stop = False
        self._thread: threading.Thread | None = None
        self._backlog = self._count_backlog()  # left undelivered by an earlier run
        self._submitted = 0
        self._finished = 0
        self.counters: dict[str, int] = dict.fromkeys(
            ("audit_forwarded_total", "audit_undelivered_total", "audit_rejected_total"), 0
        )

    def _count_backlog(self) -> int:
        try:
            text = self._local.path.read_text()
        except FileNotFoundError:
            return 0
        n = 0
        for line in text.splitlines():
            try:
                n += _wanted(json.loads(line), self._done)
            except ValueError:
                continue  # logged when the thread reaches it (``_fill``)
        return n

    @property
    def undelivered(self) -> int:
        """Records execution's chain has not taken yet (read ahead, or not read yet)."""
        return self._backlog + self._submitted - self._finished

    def submit(self, record: dict[str, Any]) -> None:
        """Say a record was just appended to the local log; never blocks."""
        with self._cond:
            self._submitted += 1
            self._more = True
            self._cond.notify()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="audit-forward", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread (after at most one more try); what is left waits in the local log."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=self._timeout_s + 2.0)

    def _fill(self) -> None:
        """Read complete new lines of the local log into the queue (at most ``batch``)."""
        try:
            with open(self._local.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read(READ_BYTES)
        except FileNotFoundError:
            return
        pos = 0
        while len(self._queue) < self._batch:
            end = chunk.find(b"\n", pos)
            if end < 0:
                break
            line, pos = chunk[pos:end], end + 1
            try:
                rec = json.loads(line)
            except ValueError:  # not ours to fix: verify_audit names it; skip, say so
                log.error("local audit log line unreadable, not forwarded: %r", line[:200])
                continue
            if _wanted(rec, self._done):
                self._queue.append((rec, False))
        self._offset += pos

    def _mark(self, mark: str, record: dict[str, Any], error: str) -> None:
        try:
            self._local.append(mark, ref=record.get("seq"), error=error[:200])
        except OSError as exc:  # the record itself is already on disk; the mark is advice
            log.error("audit mark %s seq=%s not written: %s", mark, record.get("seq"), exc)

    def _finish(self, record: dict[str, Any]) -> None:
        self._queue.popleft()
        self._done = int(record["seq"])
        self._finished += 1
        try:
            write_private(self._done_path, f"{self._done}\n".encode())
        except OSError as exc:  # a restart would send it again: duplicates, not losses
            log.error("%s not written: %s", self._done_path, exc)

    def _run(self) -> None:
        while True:
            if not self._queue:
                self._fill()
            if not self._queue:
                with self._cond:
                    if self._stop:
                        return
                    if not self._more:
                        self._cond.wait()
                    self._more = False
                continue
            record, marked = self._queue[0]
            ok, retry, error = self._send(record)
            if ok:
                self._finish(record)
                self.counters["audit_forwarded_total"] += 1
                if marked:
                    self._mark(DELIVERED, record, "")
            elif not retry:
                self._finish(record)
                self.counters["audit_rejected_total"] += 1
                log.error("audit record seq=%s rejected: %s", record.get("seq"), error)
                self._mark(REJECTED, record, error)
            else:
                if not marked:
                    self._queue[0] = (record, True)
                    self.counters["audit_undelivered_total"] += 1
                    log.warning("audit record seq=%s undelivered: %s", record.get("seq"), error)
                    self._mark(UNDELIVERED, record, error)
                if not self._pause(self._retry_s):
                    return  # left in the local log after ``.delivered``: the next start

    def _pause(self, seconds: float) -> bool:
        """Wait ``seconds`` (new records do not shorten it); False when asked to stop."""
        deadline = time.monotonic() + seconds
        with self._cond:
            while not self._stop and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            return not self._stop

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
