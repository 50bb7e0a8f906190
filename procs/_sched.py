"""A process's scheduling class: policy (``SCHED_FIFO``/``SCHED_RR``/``SCHED_OTHER``/
``SCHED_BATCH``/``SCHED_IDLE``), real-time priority and nice level, from its runtime config.

``Runtime.start`` calls ``apply`` right after pinning, before any thread exists, so every
thread of the process inherits the class (Linux): the zmq I/O threads and the ``/metrics``
server too. That is deliberate: a thread left as ``other`` that holds the GIL (a scrape) and is
preempted by a neighbour would stall the stage's thread until the neighbour's slice ends (tens
of ms on a busy host; measured: recv→signal p99 140 ms under the bench's scrape load). At the
stage's class it runs its few ms to the end and lets go. The CPU set is ``cpus``.

Privileges (docs/operations.md, "Scheduling"): ``fifo``/``rr`` need ``CAP_SYS_NICE`` or an
``RLIMIT_RTPRIO`` at least the priority (``ulimit -r``; ``LimitRTPRIO=`` in systemd); a negative
nice needs ``CAP_SYS_NICE`` or ``RLIMIT_NICE`` (``ulimit -e`` ≥ 20 - nice). ``batch``, ``idle``
and a positive nice need nothing. Without them the process keeps running in the class it has,
logs a warning naming what was refused and why, and ``bitrader health`` shows the class it got;
with ``sched_required = true`` it exits 78 instead.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Final

log = logging.getLogger(__name__)

POLICIES: Final = {
    "other": os.SCHED_OTHER,
    "batch": os.SCHED_BATCH,
    "idle": os.SCHED_IDLE,
    "fifo": os.SCHED_FIFO,
    "rr": os.SCHED_RR,
}
NAMES: Final = {v: k for k, v in POLICIES.items()}
REALTIME: Final = frozenset({"fifo", "rr"})


@dataclass(frozen=True, slots=True)
class SchedClass:
    """What a process asks for: ``policy``, ``priority`` (1-99 real-time, else 0), ``nice``."""

    policy: str = "other"
    priority: int = 0
    nice: int = 0

    def __str__(self) -> str:
        head = f"{self.policy}:{self.priority}" if self.policy in REALTIME else self.policy
        return f"{head} nice {self.nice}" if self.nice else head

    @property
    def is_default(self) -> bool:
        return self == SchedClass()


def current() -> SchedClass:
    """The calling thread's class as the kernel has it."""
    policy = os.sched_getscheduler(0) & ~getattr(os, "SCHED_RESET_ON_FORK", 0)
    return SchedClass(
        policy=NAMES.get(policy, str(policy)),
        priority=os.sched_getparam(0).sched_priority,
        nice=os.getpriority(os.PRIO_PROCESS, 0),  # per thread on Linux: the caller's
    )


def _limits_hint(want: SchedClass) -> str:
    import resource

    hints = []
    if want.policy in REALTIME:
        rt = resource.getrlimit(resource.RLIMIT_RTPRIO)[0]
        hints.append(f"needs CAP_SYS_NICE or RLIMIT_RTPRIO >= {want.priority} (it is {rt})")
    if want.nice < 0:
        lim = resource.getrlimit(resource.RLIMIT_NICE)[0]
        hints.append(f"nice {want.nice} needs CAP_SYS_NICE or RLIMIT_NICE >= "
                     f"{20 - want.nice} (it is {lim})")  # fmt: skip
    return "; ".join(hints)


def apply(want: SchedClass) -> tuple[SchedClass, str]:
    """Give the calling thread ``want``'s class; return the class it now has and what failed
    ("" when everything took). Each part (policy with priority, nice) is tried on its own, so
    a refused real-time policy still leaves a permitted nice level in place."""
    errors = []
    if want.policy != NAMES.get(os.sched_getscheduler(0)) or want.priority:
        try:
            os.sched_setscheduler(0, POLICIES[want.policy], os.sched_param(want.priority))
        except OSError as exc:
            errors.append(f"policy {want.policy}:{want.priority}: {exc.strerror}")
    if want.nice != os.getpriority(os.PRIO_PROCESS, 0):
        try:
            os.setpriority(os.PRIO_PROCESS, 0, want.nice)
        except OSError as exc:
            errors.append(f"nice {want.nice}: {exc.strerror}")
    error = "; ".join(errors)
    if error:
        hint = _limits_hint(want)
        error = f"{error} ({hint})" if hint else error
    return current(), error
