"""``Dashboard``: keeps the ``View`` fed (pollers, the event feed) and carries out the writes.

Runs on one asyncio loop; blocking reads (journal, health, kill-switch file) and writes (kill
switch, audit) go to worker threads. The event feed wakes the journal poller so an event shows
up on the page within a push period, not a poll period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ipc.messages import DecodeError
from ipc.orders import OrderMessage, PositionEvent
from procs.dashboard.app import Access
from procs.dashboard.config import DashboardConfig
from procs.dashboard.view import JournalRows, Row, View

__all__ = ["Dashboard"]

log = logging.getLogger(__name__)


class Journal(Protocol):
    errors_total: int

    def read(self) -> JournalRows: ...
    def close(self) -> None: ...


class Health(Protocol):
    def execution(self) -> dict[str, Any]: ...
    def group(self) -> list[Row]: ...


class Feed(Protocol):
    received_total: int

    def start(self) -> None: ...
    def close(self) -> None: ...


class Switch(Protocol):
    def set(self, on: bool, reason: str, who: str) -> Any: ...


class Audit(Protocol):
    def append(self, kind: str, **fields: Any) -> dict[str, Any]: ...


class Forward(Protocol):
    """``forward.AuditForwarder``: local records on into execution's keyed audit chain."""

    counters: dict[str, int]

    @property
    def undelivered(self) -> int: ...

    def start(self) -> None: ...
    def submit(self, record: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


class Dashboard:
    """The running dashboard; the routes (``app.make_app``) use it as their ``Actions``."""

    def __init__(
        self,
        config: DashboardConfig,
        *,
        view: View,
        access: Access,
        journal: Journal,
        health: Health,
        make_feed: Callable[[Callable[[OrderMessage], None]], Feed],
        switch: Switch,
        read_switch: Callable[[], Row],
        audit: Audit,
        forward: Forward | None = None,
    ) -> None:
        self._c = config
        self.view = view
        self.access = access
        self._journal = journal
        self._health = health
        self._make_feed = make_feed
        self._switch = switch
        self._read_switch = read_switch
        self._audit = audit
        self._forward = forward
        self.changed = asyncio.Event()
        self.closing = asyncio.Event()
        self._journal_wake = asyncio.Event()
        self._exec_wake = asyncio.Event()
        self._feed: Feed | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._group_error = ""
        # called with (1, seconds) after each poll: the runtime's step histogram (``record_step``)
        self.on_step: Callable[[int, float], None] | None = None
        self.counters: dict[str, int] = dict.fromkeys(
            ("killswitch_actions_total", "poll_errors_total", "audit_records_total"), 0
        )

    # -- change notification --------------------------------------------------------------

    def _notify(self) -> None:
        old, self.changed = self.changed, asyncio.Event()
        old.set()

    def _after(self, version: int) -> None:
        if self.view.version != version:
            self._notify()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.view.started_ns = time.time_ns()

        def deliver(ev: OrderMessage) -> None:  # on the feed's thread
            loop.call_soon_threadsafe(self._on_event, ev)

        self._feed = self._make_feed(deliver)
        self._feed.start()
        if self._forward is not None:
            self._forward.start()
        c = self._c
        self._tasks = [
            asyncio.create_task(
                self._every(self._journal_wake, c.journal_poll_s, self._poll_journal)
            ),
            asyncio.create_task(self._every(self._exec_wake, c.execution_poll_s, self._poll_exec)),
            asyncio.create_task(self._every(None, c.health_poll_s, self._poll_group)),
        ]

    async def close(self) -> None:
        self.closing.set()
        self._notify()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._feed is not None:
            await asyncio.to_thread(self._feed.close)
        if self._forward is not None:
            await asyncio.to_thread(self._forward.close)
        self._journal.close()

    async def _every(
        self, wake: asyncio.Event | None, period_s: float, poll: Callable[[], Awaitable[bool]]
    ) -> None:
        """Call ``poll`` every ``period_s``, sooner when ``wake`` is set; again at once if it
        says there is more to read."""
        while not self.closing.is_set():
            if wake is not None:
                wake.clear()
            t0 = time.perf_counter()
            more = await poll()
            if self.on_step is not None:
                self.on_step(1, time.perf_counter() - t0)
            if more:
                continue
            if wake is None:
                await asyncio.sleep(period_s)
                continue
            with contextlib.suppress(TimeoutError):  # the period ended without a wake-up
                await asyncio.wait_for(wake.wait(), period_s)

    # -- inputs ---------------------------------------------------------------------------

    def _on_event(self, ev: OrderMessage) -> None:
        v = self.view.version
        self.view.on_event_seen(time.time_ns())
        if isinstance(ev, PositionEvent):
            self.view.on_position(ev)
        self._journal_wake.set()  # the row is journaled before the event is published
        self._exec_wake.set()  # PnL, open orders and state moved with it
        self._after(v)

    async def _poll_journal(self) -> bool:
        rows = await asyncio.to_thread(self._journal.read)
        v = self.view.version
        self.view.on_journal(rows)
        self._after(v)
        return rows.more

    async def _poll_exec(self) -> bool:
        v = self.view.version
        try:
            data = await asyncio.to_thread(self._health.execution)
            self.view.on_execution(data, time.time_ns())
        except (TimeoutError, RuntimeError, DecodeError) as exc:
            self.counters["poll_errors_total"] += 1
            self.view.on_execution(None, time.time_ns(), error=str(exc))
        self.view.on_killswitch(await asyncio.to_thread(self._read_switch))
        self._after(v)
        return False

    async def _poll_group(self) -> bool:
        v = self.view.version
        try:
            rows = await asyncio.to_thread(self._health.group)
        except (OSError, TimeoutError, RuntimeError, DecodeError) as exc:
            self.counters["poll_errors_total"] += 1
            if str(exc) != self._group_error:  # once per distinct error, not every round
                log.warning("group health failed error=%s", exc)
            self._group_error = str(exc)
            rows = [{"name": "(group)", "state": "?", "healthy": False, "problems": [str(exc)]}]
        else:
            self._group_error = ""
        self.view.on_health(rows, time.time_ns())
        self._after(v)
        return False

    # -- writes ---------------------------------------------------------------------------

    async def audit(self, kind: str, **fields: Any) -> None:
        """Append to the local log, then hand on to execution's chain (never waits on it)."""
        record = await asyncio.to_thread(self._audit.append, kind, **fields)
        self.counters["audit_records_total"] += 1
        if self._forward is not None:
            self._forward.submit(record)

    async def set_killswitch(self, on: bool, reason: str, who: str) -> dict[str, Any]:
        """Switch as ``bitrader kill-switch`` does (file, then execution's acknowledgement),
        audit it with its outcome, and look at execution again at once."""
        self.counters["killswitch_actions_total"] += 1
        result: dict[str, Any] = await asyncio.to_thread(
            self._switch.set, on, reason, f"dashboard:{who}"
        )
        error = result["error"] or result["write_error"]
        await self.audit(
            "killswitch",
            on=on,
            reason=reason,
            user=who,
            acknowledged=result["acknowledged"],
            error=error,
        )
        log.warning(
            "kill switch on=%s acknowledged=%s reason=%s user=%s (dashboard) error=%s",
            *(on, result["acknowledged"], reason, who, error),
        )
        self._exec_wake.set()
        return result

    def health(self) -> dict[str, int | float | str]:
        feed = self._feed
        fwd = self._forward
        return {
            **self.access.counters,
            **self.counters,
            **(fwd.counters if fwd is not None else {}),
            "audit_undelivered": fwd.undelivered if fwd is not None else 0,
            "sessions": len(self.access.sessions),
            "events_total": feed.received_total if feed is not None else 0,
            "journal_errors_total": self._journal.errors_total,
            "view_version": self.view.version,
        }
