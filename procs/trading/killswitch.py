"""Kill switch: a small preallocated JSON state file, and the process's view of it.

When on: no new orders, resting orders cancelled. The operator command (``bitrader
kill-switch``, ``procs/group/control.py``) writes the file and tells execution over its control
socket (``kill_switch``); execution answers once it has switched (``KillSwitch.set``, which
writes the same file so the state survives a restart).

The file is one fixed-size slot (``SLOT_BYTES``), created once (``FileStore.preallocate``, at
execution's start) and afterwards rewritten in place: on a full disk there is nothing to
allocate, so the switch still persists. A write that fails anyway raises ``OSError``; the
process then keeps the state in memory, says so loudly, and a newer file state still wins.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final, Protocol

from procs.trading.orders import Order
from procs.trading.strategy import CancelOrder

DEFAULT_PATH: Final = "run/killswitch.json"
ENV_PATH: Final = "BITRADER_KILLSWITCH_FILE"
SLOT_BYTES: Final = 1024  # the file's fixed size: JSON padded with spaces
MAX_REASON_CHARS: Final = 400  # longer reasons are cut so the state always fits its slot

log = logging.getLogger(__name__)

PWrite = Callable[[int, bytes, int], int]


@dataclass(frozen=True, slots=True)
class KillSwitchState:
    on: bool = False
    reason: str = ""
    ts_ns: int = 0
    source: str = ""  # who set it: "cli", "ctl", "breaker", ...


class KillSwitchStore(Protocol):
    def read(self) -> KillSwitchState: ...
    def write(self, state: KillSwitchState) -> None: ...


def encode_slot(state: KillSwitchState) -> bytes:
    """The state as the file's fixed-size slot (JSON, space padded, newline last)."""
    fields = asdict(state)
    fields["reason"] = state.reason[:MAX_REASON_CHARS]
    body = json.dumps(fields).encode()
    if len(body) >= SLOT_BYTES:  # a reason of multi-byte characters: cut harder
        fields["reason"] = state.reason[: MAX_REASON_CHARS // 4]
        body = json.dumps(fields).encode()
    return body.ljust(SLOT_BYTES - 1, b" ") + b"\n"


class FileStore:
    """The state as a JSON file: rewritten in place once it exists (write, fsync).

    ``pwrite`` is the seam for tests (an injected ``ENOSPC``); it defaults to ``os.pwrite``.
    """

    def __init__(self, path: str | Path, *, pwrite: PWrite = os.pwrite) -> None:
        self.path = Path(path)
        self._pwrite = pwrite

    def read(self) -> KillSwitchState:
        """The switch; a missing file means off, an unreadable one means ON (fail safe)."""
        try:
            raw = json.loads(self.path.read_bytes()[: SLOT_BYTES * 4])
            return KillSwitchState(
                on=bool(raw["on"]),
                reason=str(raw.get("reason", "")),
                ts_ns=int(raw.get("ts_ns", 0)),
                source=str(raw.get("source", "")),
            )
        except FileNotFoundError:
            return KillSwitchState()
        except (OSError, ValueError, KeyError, TypeError) as e:
            return KillSwitchState(
                on=True, reason=f"unreadable kill-switch file: {e}", source="file"
            )

    def preallocate(self) -> None:
        """Create the slot now (off) if there is no file, so a later write needs no space."""
        if not self.path.exists():
            self._create(KillSwitchState())

    def write(self, state: KillSwitchState) -> None:
        """Persist ``state``; raises ``OSError`` (ENOSPC, EACCES, ...) when it could not."""
        slot = encode_slot(state)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self._create(state)
            return
        try:
            if os.fstat(fd).st_size != SLOT_BYTES:  # an older file format: replace it whole
                os.close(fd)
                fd = -1
                self._create(state)
                return
            written = self._pwrite(fd, slot, 0)
            if written != len(slot):
                raise OSError(f"short write to {self.path}: {written} of {len(slot)} bytes")
            os.fsync(fd)
        finally:
            if fd >= 0:
                os.close(fd)

    def _create(self, state: KillSwitchState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")  # 0600: private whatever the umask
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                os.fchmod(fd, 0o600)  # a leftover tmp file keeps its old mode otherwise
                slot = encode_slot(state)
                if self._pwrite(fd, slot, 0) != len(slot):
                    raise OSError(f"short write to {tmp}")
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)  # make the rename itself durable
        finally:
            os.close(fd)


class KillSwitch:
    """The process's view of the switch: polled from the store at most every ``poll_s``.

    The newest state wins: a file state older than the one in memory (set over the control
    socket while the disk refused the write) is ignored; an unreadable file always counts (on).
    ``persisted`` says whether the state in memory is the one on disk.
    """

    def __init__(self, store: KillSwitchStore, poll_s: float) -> None:
        self._store = store
        self._poll_ns = int(poll_s * 1e9)
        self._next_poll_ns = 0
        self.state = store.read()
        self.persisted = True
        self.persist_error = ""

    @property
    def on(self) -> bool:
        return self.state.on

    def poll(self, now_ns: int) -> KillSwitchState | None:
        """Re-read the store when due; return the new state when it changed."""
        if now_ns < self._next_poll_ns:
            return None
        self._next_poll_ns = now_ns + self._poll_ns
        new = self._store.read()
        unreadable = new.on and new.source == "file" and not new.ts_ns
        if new.ts_ns < self.state.ts_ns and not unreadable:
            return None  # older than what we hold (a write that did not persist)
        changed = new.on != self.state.on
        self.state = new
        self.persisted, self.persist_error = True, ""  # what we hold is what the file says
        return new if changed else None

    def set(self, on: bool, reason: str, source: str, now_ns: int) -> KillSwitchState | None:
        """Switch directly (control socket) and persist; returns the state when it changed.

        A failed write (a full disk) does not undo the switch: ``persisted`` turns False and
        ``persist_error`` says why; the caller reports it.
        """
        new = KillSwitchState(on=on, reason=reason, ts_ns=now_ns, source=source)
        try:
            self._store.write(new)
            self.persisted, self.persist_error = True, ""
        except OSError as exc:
            self.persisted, self.persist_error = False, f"{type(exc).__name__}: {exc}"
            log.error(
                "kill switch on=%s NOT PERSISTED (a restart would forget it) error=%s",
                on,
                self.persist_error,
            )
        changed = new.on != self.state.on
        self.state = new
        return new if changed else None


def cancels_on_engage(open_orders: Sequence[Order]) -> list[CancelOrder]:
    """Every resting order to cancel when the switch goes on."""
    return [CancelOrder(o.client_id, o.symbol, "kill switch") for o in open_orders]


def describe(state: KillSwitchState) -> str:
    if not state.ts_ns:
        return "off (never set)" if not state.on else f"on reason={state.reason!r}"
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(state.ts_ns / 1e9))
    word = "on" if state.on else "off"
    return f"{word} since={when} source={state.source} reason={state.reason!r}"
