"""Eager start of venue calls (``procs.trading.tasks``): the call runs up to its first
suspension inside ``start``, its Task runs the rest, and faults, cancellation, the current task,
context variables and the hold/release order behave as for a task the loop started."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvloop

from procs.trading.tasks import TaskRunner, start_eager

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


@pytest.fixture(params=["asyncio", "uvloop"])
def loop(request: pytest.FixtureRequest) -> Iterator[asyncio.AbstractEventLoop]:
    lp = asyncio.new_event_loop() if request.param == "asyncio" else uvloop.new_event_loop()
    yield lp
    lp.close()


def in_callback(loop: asyncio.AbstractEventLoop, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` from a plain loop callback (as execution's step runs) and return its value."""
    out: list[Any] = []

    async def main() -> None:
        fut = loop.create_future()

        def cb() -> None:
            out.append(fn())
            fut.set_result(None)

        loop.call_soon(cb)
        await fut

    loop.run_until_complete(main())
    return out[0]


def turns(loop: asyncio.AbstractEventLoop, n: int = 3) -> None:
    for _ in range(n):
        loop.run_until_complete(asyncio.sleep(0))


def cancellable(
    loop: asyncio.AbstractEventLoop, seen: list[str], gate: list[asyncio.Future[None]]
) -> Any:
    """A call that waits on a future it puts in ``gate``, noting "cancelled" if cancelled."""

    async def call() -> None:
        gate.append(loop.create_future())
        try:
            await gate[0]
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    return call()


def test_a_call_that_finishes_at_once_runs_inside_start(loop: asyncio.AbstractEventLoop) -> None:
    runner, seen = TaskRunner(loop), []

    async def call() -> None:
        seen.append(("ran", asyncio.current_task() is not None, VAR.get()))
        VAR.set("inside")

    def go() -> list[Any]:
        VAR.set("caller")
        runner.start(call())
        return [list(seen), VAR.get(), runner.busy]

    ran, var_after, busy = in_callback(loop, go)
    assert ran == [("ran", True, "caller")]  # before start returned; in a task; caller's context
    assert var_after == "caller"  # the call's own context is a copy, as a task's
    assert busy  # its Task is done on its first turn on the loop
    turns(loop)
    assert not runner.busy
    assert runner.fault is None
    runner.check()


def test_a_call_that_suspends_resumes_in_its_task(loop: asyncio.AbstractEventLoop) -> None:
    runner, seen = TaskRunner(loop), []
    gate: list[asyncio.Future[int]] = []

    async def call() -> None:
        me = asyncio.current_task()
        VAR.set("mine")
        gate.append(loop.create_future())
        seen.append("before")
        got = await gate[0]
        seen.append(("after", got, asyncio.current_task() is me, VAR.get()))

    in_callback(loop, lambda: runner.start(call()))
    assert seen == ["before"]  # the first step ran inside start, up to its await
    turns(loop)
    assert seen == ["before"]
    assert runner.busy
    gate[0].set_result(7)
    turns(loop)
    assert seen == ["before", ("after", 7, True, "mine")]  # the same task, the same context
    assert not runner.busy
    assert runner.fault is None


def test_a_first_step_that_raises_is_a_fault_at_once(loop: asyncio.AbstractEventLoop) -> None:
    runner = TaskRunner(loop)

    async def call() -> None:
        raise ValueError("refused at once")

    in_callback(loop, lambda: runner.start(call()))
    with pytest.raises(ValueError, match="refused at once"):
        runner.check()  # before the loop ran its Task
    turns(loop)
    assert not runner.busy  # its Task ended with it; nothing left unretrieved
    assert isinstance(runner.fault, ValueError)


def test_a_call_that_raises_after_resuming_is_a_fault(loop: asyncio.AbstractEventLoop) -> None:
    runner = TaskRunner(loop)
    gate: list[asyncio.Future[None]] = []

    async def call() -> None:
        gate.append(loop.create_future())
        await gate[0]
        raise RuntimeError("refused later")

    in_callback(loop, lambda: runner.start(call()))
    runner.check()  # nothing yet
    gate[0].set_result(None)
    turns(loop)
    with pytest.raises(RuntimeError, match="refused later"):
        runner.check()


def test_drain_cancels_a_suspended_call(loop: asyncio.AbstractEventLoop) -> None:
    runner, seen = TaskRunner(loop), []
    gate: list[asyncio.Future[None]] = []

    in_callback(loop, lambda: runner.start(cancellable(loop, seen, gate)))
    turns(loop)
    loop.run_until_complete(runner.drain(0.01))
    turns(loop)
    assert seen == ["cancelled"]
    assert gate[0].cancelled()
    assert not runner.busy
    assert runner.fault is None


def test_a_cancel_before_its_tasks_first_turn_reaches_the_call(
    loop: asyncio.AbstractEventLoop,
) -> None:
    seen: list[str] = []
    gate: list[asyncio.Future[None]] = []

    call = cancellable(loop, seen, gate)
    task = in_callback(loop, lambda: (t := start_eager(loop, call), t.cancel())[0])
    turns(loop)
    assert task.cancelled()
    assert seen == ["cancelled"]
    assert gate[0].cancelled()  # as Task.cancel cancels the future its task waits on


def test_a_finished_call_keeps_its_result_when_cancelled(loop: asyncio.AbstractEventLoop) -> None:
    async def call() -> int:
        return 5

    task = in_callback(loop, lambda: (t := start_eager(loop, call()), t.cancel())[0])
    turns(loop)
    assert not task.cancelled()
    assert task.result() == 5


def test_tasks_made_in_the_first_step_start_eagerly_too(loop: asyncio.AbstractEventLoop) -> None:
    """aiohttp writes a request's body from a task it creates: that one must run at once too."""
    seen: list[str] = []

    async def writer() -> None:
        seen.append("writer")

    async def call() -> None:
        inner = asyncio.get_running_loop().create_task(writer())
        seen.append("after create_task")
        await inner

    in_callback(loop, lambda: start_eager(loop, call()))
    assert seen == ["writer", "after create_task"]
    assert loop.get_task_factory() is None  # the eager factory was for the step only


def test_the_callers_current_task_is_restored(loop: asyncio.AbstractEventLoop) -> None:
    async def call() -> asyncio.Task[Any] | None:
        return asyncio.current_task()

    async def outer() -> tuple[Any, Any, Any]:
        me = asyncio.current_task()
        t = start_eager(loop, call())
        return me, asyncio.current_task(), t

    me, after, t = loop.run_until_complete(outer())
    assert after is me
    turns(loop)
    assert t.result() is t
    assert t is not me


def test_hold_keeps_spawned_calls_and_release_starts_them_in_order(
    loop: asyncio.AbstractEventLoop,
) -> None:
    runner, seen = TaskRunner(loop), []

    async def call(name: str) -> None:
        seen.append(name)
        if name == "a":  # a call spawned from a started call waits for the loop, as ever
            loop.call_soon(seen.append, "a's callback")
            runner.spawn(call("from a"))

    def go() -> tuple[list[str], list[str]]:
        runner.hold()
        runner.spawn(call("a"))
        runner.spawn(call("b"))
        before = list(seen)
        runner.release()
        return before, list(seen)

    before, at_release = in_callback(loop, go)
    assert before == []
    assert at_release == ["a", "b"]  # at release, in order, nothing between them
    turns(loop)
    assert seen == ["a", "b", "a's callback", "from a"]  # the loop's queue, in its order
    assert not runner.busy
    assert runner.fault is None


def test_start_outside_a_running_loop_runs_the_call_there(loop: asyncio.AbstractEventLoop) -> None:
    """The backtest and the golden session step execution between runs of the loop."""
    runner, seen = TaskRunner(loop), []

    async def call() -> None:
        seen.append(asyncio.get_running_loop() is loop)

    runner.start(call())
    assert seen == [True]
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()  # not left set
    turns(loop)
    assert not runner.busy
    assert runner.fault is None


def test_a_context_entered_already_starts_the_call_on_the_loop(
    loop: asyncio.AbstractEventLoop,
) -> None:
    seen: list[str] = []

    async def call() -> None:
        seen.append("ran")

    def go() -> tuple[asyncio.Task[Any], list[str]]:
        ctx = contextvars.copy_context()
        task = ctx.run(lambda: start_eager(loop, call(), ctx))  # ctx is entered here
        return task, list(seen)

    task, at_return = in_callback(loop, go)
    assert at_return == []  # not run twice, not lost: on the loop's next turn
    turns(loop)
    assert seen == ["ran"]
    assert task.done()
    assert task.exception() is None
