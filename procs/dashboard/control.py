"""The dashboard's two writes: the kill switch and its audit log.

``KillSwitchControl`` flips the switch through the very code ``bitrader kill-switch`` runs
(``procs.execution.killswitch``'s store); execution acknowledges it in its health (state
``killed``), which the page shows beside the request. ``AuditLog`` appends one hash-chained JSON
line per login and kill-switch action, fsynced, in a file only the dashboard writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Final

from procs.execution.killswitch import FileStore, KillSwitchState

__all__ = ["AuditLog", "KillSwitchControl", "verify_audit"]

GENESIS: Final = "0" * 64


class KillSwitchControl:
    """Sets the kill switch as ``bitrader kill-switch on|off`` does (same store, same file)."""

    def __init__(self, path: str | Path) -> None:
        self._store = FileStore(path)

    def set(self, on: bool, reason: str, who: str) -> KillSwitchState:
        state = KillSwitchState(on=on, reason=reason, ts_ns=time.time_ns(), source=who)
        self._store.write(state)
        return self._store.read()


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
        if self.path.exists():
            lines = self.path.read_text().splitlines()
            if lines:
                self._prev = str(json.loads(lines[-1])["hash"])

    def append(self, kind: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            record = {"ts_ns": time.time_ns(), "kind": kind, **fields}
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
