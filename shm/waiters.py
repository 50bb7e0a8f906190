"""Idle strategies for a stage loop that polls rings: spin, block (backoff sleep), hybrid.

``Notifier``/``Waker`` are the wake-up seams; ipc/sockets.py implements them over ZeroMQ, procs
wires the two together (shm never imports ipc or zmq).
"""

from __future__ import annotations

import ctypes
import functools
import os
import struct
import threading
import time
from collections.abc import Callable
from typing import Any, Final, Protocol

WAITER_KINDS: Final = ("block", "hybrid", "spin")
PR_SET_TIMERSLACK: Final = 29  # linux/prctl.h
SYS_SCHED_SETATTR: Final = 314  # x86-64 syscall numbers (shm.ring is x86-64 only too)
SYS_SCHED_GETATTR: Final = 315
SCHED_ATTR_SIZE: Final = 56  # SCHED_ATTR_SIZE_VER1


class Waiter(Protocol):
    """What a stage loop calls: ``idle()`` after a step that did nothing, ``reset()`` after work."""

    def idle(self) -> None:
        """Wait a little before the next poll."""
        ...

    def reset(self) -> None:
        """Forget the idle streak (work arrived)."""
        ...


class Notifier(Protocol):
    """The reader's side of a wake-up channel."""

    def wait(self, timeout_s: float) -> bool:
        """Block up to ``timeout_s``; return True when woken, False on timeout."""
        ...


class Waker(Protocol):
    """The writer's side of a wake-up channel: called after a publish."""

    def notify(self) -> None:
        """Wake readers blocked in their ``Notifier.wait`` (never blocks)."""
        ...


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)  # the process's C library, loaded once


def set_timer_slack(slack_ns: int) -> bool:
    """Set the calling thread's timer slack (Linux prctl); return whether it took effect.

    The default slack of 50 µs stretches every short sleep: ``time.sleep(50e-6)`` takes ~125 µs
    p50 at the default and ~72 µs at 1 ns on the development machine.
    """
    try:
        libc = _libc()
        return int(libc.prctl(PR_SET_TIMERSLACK, slack_ns, 0, 0, 0)) == 0
    except (OSError, AttributeError):  # not Linux / no prctl: keep the default slack
        return False


def set_sched_slice(slice_ns: int) -> bool:
    """Ask the scheduler for a ``slice_ns`` time slice for the calling thread; return whether
    it took (Linux; SCHED_OTHER threads only; the kernel's EEVDF uses it from 6.12 on).

    Under EEVDF a task that wakes on a busy core waits until the running task has used its
    slice (1.4 ms by default on the development machine). A thread that asks for a short slice
    gets an earlier deadline and preempts sooner: measured with a 600 µs-burst neighbour on the
    same core, wake-up p90 529 -> 77 µs, p99 697 -> 166 µs. Its own slices are short too, so it
    yields the core sooner when it runs long: meant for threads that wake, work briefly and block.
    In the whole group on 2 shared cores the effect was not clear (p50 of some hops better, p99
    of others worse: docs/bench-tick-to-order.md, "Per hop"), so no default config asks for it.
    """
    try:
        if os.sched_getscheduler(0) != os.SCHED_OTHER:
            return False  # a real-time or batch thread keeps what it was given
        nice = os.getpriority(os.PRIO_PROCESS, 0)  # this thread's nice (Linux: per thread)
        attr = struct.pack("<IIQiIQQQII", SCHED_ATTR_SIZE, 0, 0, nice, 0, slice_ns, 0, 0, 0, 0)
        buf = ctypes.create_string_buffer(attr, SCHED_ATTR_SIZE)
        libc = _libc()
        return int(libc.syscall(SYS_SCHED_SETATTR, 0, buf, 0)) == 0
    except (OSError, AttributeError):  # not Linux / no such syscall: keep the default slice
        return False


def sched_slice_ns() -> int | None:
    """Return the calling thread's time slice in ns as the kernel reports it (None: unknown)."""
    try:
        buf = ctypes.create_string_buffer(SCHED_ATTR_SIZE)
        libc = _libc()
        if int(libc.syscall(SYS_SCHED_GETATTR, 0, buf, SCHED_ATTR_SIZE, 0)) != 0:
            return None
    except (OSError, AttributeError):
        return None
    return int(struct.unpack_from("<IIQiIQ", buf.raw)[5])


class SpinWaiter:
    """Return at once: the loop busy-polls. Only for a process pinned to an isolated core."""

    def idle(self) -> None:
        """Do nothing: poll again immediately."""

    def reset(self) -> None:
        """Do nothing."""


class BlockWaiter:
    """Back off: ``yields`` sched_yield calls, then sleeps doubling from min to max.

    Parameters
    ----------
    min_sleep_s, max_sleep_s
        First and longest sleep of an idle streak, in seconds.
    yields
        Idle calls answered with ``os.sched_yield()`` before the first sleep.
    timer_slack_ns
        Timer slack set for the waiting thread on its first idle (None keeps the default).
    """

    def __init__(
        self,
        *,
        min_sleep_s: float = 50e-6,
        max_sleep_s: float = 1e-3,
        yields: int = 0,
        timer_slack_ns: int | None = 1,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0 < min_sleep_s <= max_sleep_s:
            raise ValueError(
                f"need 0 < min_sleep_s <= max_sleep_s, was {min_sleep_s} and {max_sleep_s}"
            )
        if yields < 0:
            raise ValueError(f"yields must be >= 0, was {yields}")
        self._min = min_sleep_s
        self._max = max_sleep_s
        self._yields = yields
        self._slack = timer_slack_ns
        self._sleep = sleep
        self._slack_thread: int | None = None
        self._streak = 0
        self._next = min_sleep_s

    def idle(self) -> None:
        """Yield or sleep, longer the longer the idle streak."""
        if self._slack is not None and self._slack_thread != threading.get_ident():
            self._slack_thread = threading.get_ident()
            set_timer_slack(self._slack)
        self._streak += 1
        if self._streak <= self._yields:
            os.sched_yield()
            return
        self._sleep(self._next)
        self._next = min(self._next * 2, self._max)

    def reset(self) -> None:
        """Start the next idle streak from the shortest wait."""
        self._streak = 0
        self._next = self._min


class HybridWaiter:
    """Spin for ``spin_s`` after work, then block on ``notifier`` up to ``block_timeout_s``.

    The timeout bounds the cost of a lost wake-up (PUB/SUB may drop one). The waiting thread's
    scheduler slice is the process's (``[<proc>.runtime] sched_slice_us``, set at start-up).
    """

    def __init__(
        self,
        notifier: Notifier,
        *,
        spin_s: float = 20e-6,
        block_timeout_s: float = 1e-3,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if spin_s < 0 or block_timeout_s <= 0:
            raise ValueError(
                f"need spin_s >= 0 and block_timeout_s > 0, was {spin_s} and {block_timeout_s}"
            )
        self._notifier = notifier
        self._spin_s = spin_s
        self._timeout_s = block_timeout_s
        self._clock = clock
        self._spin_until: float | None = None
        self.wakeups_total = 0
        self.timeouts_total = 0

    def idle(self) -> None:
        """Return at once inside the spin window, otherwise block on the notifier."""
        now = self._clock()
        if self._spin_until is None:
            self._spin_until = now + self._spin_s
        if now < self._spin_until:
            return
        if self._notifier.wait(self._timeout_s):
            self.wakeups_total += 1
        else:
            self.timeouts_total += 1

    def reset(self) -> None:
        """Open a fresh spin window on the next idle."""
        self._spin_until = None


def make_waiter(kind: str, notifier: Notifier | None = None, **params: Any) -> Waiter:
    """Build the waiter named by config: ``"spin"``, ``"block"`` or ``"hybrid"`` (needs a notifier).

    Raises
    ------
    ValueError
        Unknown kind, a hybrid waiter without a notifier, or a bad parameter.
    """
    try:
        if kind == "spin" and not params:
            return SpinWaiter()
        if kind == "block":
            return BlockWaiter(**params)
        if kind == "hybrid":
            if notifier is None:
                raise ValueError("waiter 'hybrid' needs a notifier")
            return HybridWaiter(notifier, **params)
    except TypeError as e:
        raise ValueError(f"waiter {kind!r}: {e}") from None
    if kind == "spin":
        raise ValueError(f"waiter 'spin' takes no parameters, got {sorted(params)}")
    raise ValueError(f"waiter kind must be one of {', '.join(WAITER_KINDS)}, was {kind!r}")
