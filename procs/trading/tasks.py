"""Venue calls as asyncio tasks on the process's loop, and the fault that any of them raised.

An exception in a task or a loop callback is kept, and ``check`` raises it on the next step:
crash, don't limp.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class TaskRunner:
    """Owns the tasks spawned on ``loop`` and the first fault seen."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._tasks: set[asyncio.Task[None]] = set()
        self.fault: BaseException | None = None

    def install(self) -> None:
        """Catch errors of plain loop callbacks too (call once the loop is ours)."""
        self._loop.set_exception_handler(self._on_loop_error)

    @property
    def busy(self) -> bool:
        """Whether a spawned task is not done yet (``asyncio.all_tasks`` for this runner's)."""
        return any(not t.done() for t in self._tasks)

    def check(self) -> None:
        if self.fault is not None:
            raise self.fault  # a callback or task failed: crash, don't limp

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and self.fault is None:
            self.fault = task.exception()

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, ctx: dict[str, Any]) -> None:
        exc = ctx.get("exception")
        log.error("event loop error message=%s exception=%r", ctx.get("message"), exc)
        if isinstance(exc, Exception) and self.fault is None:
            self.fault = exc

    async def drain(self, timeout_s: float = 1.0) -> None:
        """Let in-flight calls finish briefly, then cancel what is left."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout_s)
        for t in list(self._tasks):
            t.cancel()
