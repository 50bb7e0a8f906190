"""The dashboard's two writes: the kill switch and its audit log.

``KillSwitchControl`` flips the switch through the very code ``bitrader kill-switch`` runs
(``procs.group.control.engage``): the file first, then execution over its control socket, whose
answer is the acknowledgement (state ``killed``, orders cancelled) the page reports.
``AuditLog`` appends one hash-chained, numbered (``seq``) JSON line per login and kill-switch
action, fsynced, in a file only the dashboard writes; ``forward.AuditForwarder`` then carries each
into execution's keyed audit chain (this local chain is unkeyed: evidence, not proof).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Final

from procs.group.control import Target, engage

__all__ = ["AuditLog", "KillSwitchControl", "verify_audit"]

GENESIS: Final = "0" * 64
ACK_TIMEOUT_S: Final = 5.0
SOURCE_CHARS: Final = 32  # execution keeps this much of who switched it


class KillSwitchControl:
    """Sets the kill switch as ``bitrader kill-switch on|off`` does: same file, same request."""

    def __init__(
        self, path: str | Path, control_endpoint: str, timeout_s: float = ACK_TIMEOUT_S
    ) -> None:
        self._target = Target(control_endpoint, Path(path), True)
        self._timeout_s = timeout_s

    def set(self, on: bool, reason: str, who: str) -> dict[str, Any]:
        """Switch; the result says what was written and what execution answered."""
        state, written, ack = engage(self._target, on, reason, who[:SOURCE_CHARS], self._timeout_s)
        acked = ack is not None and ack.ok
        data = dict(ack.data) if acked and ack is not None else {}
        if acked:
            error = ""
        elif ack is not None:
            error = f"execution refused: {ack.error}"
        else:
            error = f"execution did not answer within {self._timeout_s:g} s"
        return {
            "on": state.on,
            "reason": state.reason,
            "source": state.source,
            "ts_ns": state.ts_ns,
            "written": not written,
            "write_error": written,
            "acknowledged": acked,
            "persisted": bool(data.get("persisted", not written)),
            "execution_state": data.get("state"),
            "open_orders": data.get("open_orders"),
            "error": error,
        }


def _link(prev_hash: str, body: str) -> str:
    return hashlib.sha256(f"{prev_hash}|{body}".encode()).hexdigest()


class AuditLog:
    """Append-only JSON lines, each carrying sha256(previous hash | its own body); fsynced.

    Thread-safe (one lock): appends come from the event loop's worker threads.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._prev = GENESIS
        self._seq = 0
        if self.path.exists():
            lines = self.path.read_text().splitlines()
            if lines:
                self._prev = str(json.loads(lines[-1])["hash"])
                self._seq = len(lines)

    def append(self, kind: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            record = {"ts_ns": time.time_ns(), "kind": kind, "seq": self._seq + 1, **fields}
            body = json.dumps(record, sort_keys=True, separators=(",", ":"))
            record["hash"] = _link(self._prev, body)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (json.dumps(record, sort_keys=True) + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            self._prev = record["hash"]
            self._seq += 1
            return record


def verify_audit(path: str | Path) -> tuple[bool, int]:
    """Check the chain; return (intact, number of records)."""
    prev, n = GENESIS, 0
    for line in Path(path).read_text().splitlines():
        record = json.loads(line)
        claimed = record.pop("hash")
        body = json.dumps(record, sort_keys=True, separators=(",", ":"))
        if _link(prev, body) != claimed:
            return False, n
        prev, n = claimed, n + 1
    return True, n
