"""Venue calls as asyncio tasks on the process's loop, and the fault that any of them raised.

An exception in a task or a loop callback is kept, and ``check`` raises it on the next step:
crash, don't limp.

``start`` starts a call eagerly, as Python 3.12's eager tasks do: its coroutine runs at once,
inside the caller, up to its first suspension (for a live order: the REST request is written to
its socket), and a Task runs the rest from there. Tasks the call creates during that first step
(aiohttp's request body writer) start eagerly too.

Between ``hold`` and ``release`` (execution's step, with a venue whose ``eager_sends`` is set:
the live one) ``spawn`` keeps the calls; ``release`` starts them eagerly, in the order they were
spawned: where the loop's next turn would have started them, with nothing between (so the
journal's rows and the events keep today's order), but before the process's next pass instead
of after it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from asyncio.tasks import _enter_task, _leave_task  # what Task.__step itself uses
from collections.abc import Coroutine, Generator
from typing import Any, Final

log = logging.getLogger(__name__)

_NEW: Final = 0  # not stepped yet
_SUSPENDED: Final = 1  # the first step suspended on what it yielded
_FINISHED: Final = 2  # the first step returned or raised
_HANDED: Final = 3  # the Task runs it now


class _Started(Coroutine[Any, Any, Any]):
    """A coroutine whose first step ran eagerly (``start_eager``); its Task runs the rest.

    The Task's own first step takes over the eager step's outcome: the future it suspended on
    (the Task then waits for it as if it had yielded it itself), its result, or its exception.
    """

    __slots__ = ("__qualname__", "_coro", "_exc", "_first", "_result", "_state")

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._coro = coro
        self.__qualname__ = getattr(coro, "__qualname__", type(coro).__name__)
        self._state = _NEW
        self._first: Any = None
        self._result: Any = None
        self._exc: BaseException | None = None

    def step(self) -> None:
        """The eager first step (in the Task's context, with the Task as the current one)."""
        try:
            self._first = self._coro.send(None)
        except StopIteration as e:
            self._result, self._state = e.value, _FINISHED
        except (KeyboardInterrupt, SystemExit) as e:  # as Task.__step: kept, and raised on
            self._exc, self._state = e, _FINISHED
            raise
        except BaseException as e:  # the Task's, as if it had raised it
            self._exc, self._state = e, _FINISHED
        else:
            self._state = _SUSPENDED

    @property
    def stepped(self) -> bool:
        return self._state != _NEW

    @property
    def error(self) -> BaseException | None:
        """What the first step raised (None while it has not, or when it returned)."""
        return self._exc if self._state == _FINISHED else None

    def send(self, value: Any) -> Any:
        if self._state == _HANDED:
            return self._coro.send(value)
        return self._hand_over()

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        exc = val if val is not None else typ if isinstance(typ, BaseException) else typ()
        if self._state == _HANDED:
            return self._coro.throw(exc)
        if self._state == _SUSPENDED:  # cancelled before its Task's first step
            self._state = _HANDED
            if isinstance(self._first, asyncio.Future):
                self._first.cancel()  # what Task.cancel does to the future its task waits on
            return self._coro.throw(exc)
        return self._hand_over()  # it has finished already: cancelling it changes nothing

    def close(self) -> None:
        self._state = _HANDED
        self._coro.close()

    def __await__(self) -> Generator[Any, None, Any]:
        raise TypeError("run by its Task only")

    def _hand_over(self) -> Any:
        state, self._state = self._state, _HANDED
        if state == _SUSPENDED:
            return self._first
        if state == _NEW:  # never stepped (start_eager failed before its step): run it here
            return self._coro.send(None)
        exc, self._exc = self._exc, None
        if exc is not None:
            raise exc
        raise StopIteration(self._result)


def start_eager(
    loop: asyncio.AbstractEventLoop,
    coro: Coroutine[Any, Any, Any],
    context: contextvars.Context | None = None,
) -> asyncio.Task[Any]:
    """A Task for ``coro`` whose first step has run already, here (3.12's ``eager_start``).

    The step runs in the Task's context with the Task as ``asyncio.current_task()`` (so timeouts
    and ``asyncio.timeout`` cancel the right task), and every task created during it starts
    eagerly as well (the loop's task factory is swapped for the step). When the step finished,
    the Task is done on its first turn on the loop, with that result or exception. Outside a
    running loop (the backtest and the golden session step execution between runs of it) the
    loop is the running one for the step. A ``context`` that is entered already cannot be
    entered again: the call then starts on the loop's next turn, as a plain task's.
    """
    ctx = contextvars.copy_context() if context is None else context
    started = _Started(coro)
    task: asyncio.Task[Any] = asyncio.Task(started, loop=loop, context=ctx)
    outer = asyncio.current_task(loop)
    if outer is not None:
        _leave_task(loop, outer)
    _enter_task(loop, task)
    factory = loop.get_task_factory()
    loop.set_task_factory(_eager_factory)
    running = asyncio._get_running_loop()
    asyncio._set_running_loop(loop)
    try:
        ctx.run(started.step)
    except RuntimeError:
        if started.stepped:  # step() keeps the call's own errors: this one is ctx.run's
            raise
    finally:
        asyncio._set_running_loop(running)
        loop.set_task_factory(factory)
        _leave_task(loop, task)
        if outer is not None:
            _enter_task(loop, outer)
    return task


def _eager_factory(
    loop: asyncio.AbstractEventLoop,
    coro: Any,  # a coroutine (the typeshed's factory type also names generators)
    context: contextvars.Context | None = None,
) -> asyncio.Task[Any]:
    return start_eager(loop, coro, context)


def first_step_error(task: asyncio.Task[Any]) -> BaseException | None:
    """What an eagerly started task's first step raised, before its Task has seen it."""
    coro = task.get_coro()
    return coro.error if isinstance(coro, _Started) else None


class TaskRunner:
    """Owns the tasks spawned on ``loop`` and the first fault seen."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._tasks: set[asyncio.Task[None]] = set()
        self._held: list[Coroutine[Any, Any, None]] | None = None  # spawned while held
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
        """Run ``coro`` as a task from the loop's next turn; while held, from ``release``."""
        if self._held is not None:
            self._held.append(coro)
            return
        # not loop.create_task: inside an eager step its task factory would start this too,
        # ahead of the callbacks the loop has queued before it
        self._track(asyncio.Task(coro, loop=self._loop))

    def hold(self) -> None:
        """Keep what ``spawn`` is given until ``release``."""
        if self._held is None:
            self._held = []

    def release(self) -> None:
        """Start what was spawned since ``hold``, eagerly, in order (see the module's doc)."""
        held, self._held = self._held, None
        for coro in held or ():
            self.start(coro)

    def start(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` now up to its first suspension (``start_eager``), the rest as a task.

        An exception of that first step is this runner's fault at once (``check`` raises it);
        the task ends with it on its first turn, as any task would.
        """
        task = start_eager(self._loop, coro)
        self._track(task)
        err = first_step_error(task)
        if err is not None and not isinstance(err, asyncio.CancelledError) and self.fault is None:
            self.fault = err

    def _track(self, task: asyncio.Task[None]) -> None:
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
