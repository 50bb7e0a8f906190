"""Circuit breaker ACTIVE → REDUCING → HALTED: it only escalates on its own; an operator resets it.

REDUCING allows reduce-only orders; HALTED allows cancels only. Every transition carries its
trigger and a detail line, for the journal and the log. The operator reset is ``bitrader breaker
reset`` (execution's ``breaker_reset`` control command).

A venue rate-limit answer (10005/10006, HTTP 429) is no verdict on trading: it starts a
back-off (``backoff_left_s``; doubling from ``RATE_LIMIT_BACKOFF_MIN_S`` to ``..._MAX_S``,
cleared by the next accepted order) during which no new order goes out, reduce-only ones
included, and counts as neither a reject nor a REST error.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from procs.trading.config import BreakerConfig

NS: Final = 1_000_000_000
RATE_LIMIT_BACKOFF_MIN_S: Final = 1.0
RATE_LIMIT_BACKOFF_MAX_S: Final = 30.0
log = logging.getLogger(__name__)


class BreakerState(enum.IntEnum):
    ACTIVE = 0
    REDUCING = 1
    HALTED = 2


class BreakerTrigger(enum.StrEnum):
    CONSECUTIVE_REJECTS = "consecutive_rejects"
    REST_ERROR_RATE = "rest_error_rate"
    WS_DISCONNECTED = "ws_disconnected"
    STALE_DATA = "stale_data"
    LATENCY_SPIKE = "latency_spike"
    LOSS_LIMIT = "loss_limit"
    JOURNAL = "journal"  # the journal cannot take a write (disk full): nothing may trade
    MANUAL = "manual"  # an operator tripped it
    RESET = "reset"  # an operator reset it


@dataclass(frozen=True, slots=True)
class BreakerTransition:
    old: BreakerState
    new: BreakerState
    trigger: BreakerTrigger
    detail: str
    ts_ns: int


class Breaker:
    """Owns the breaker state; fed by the process with outcomes and observations, never by I/O."""

    def __init__(self, config: BreakerConfig, state: BreakerState = BreakerState.ACTIVE) -> None:
        self._c = config
        self.state = state
        self.transitions_total = 0
        self._rejects = 0
        self._rest: deque[tuple[int, bool]] = deque()
        self._rest_errors = 0  # the failures in _rest, kept in step (no scan per result)
        self._ws_down_since_ns: int | None = None
        self._slow = 0
        self._backoff_s = 0.0
        self.backoff_until_ns = 0
        self.rate_limited_total = 0

    def on_rate_limited(self, ts_ns: int) -> float:
        """The venue said "too many requests": back off (no new orders); return for how long."""
        self.rate_limited_total += 1
        self._backoff_s = min(
            RATE_LIMIT_BACKOFF_MAX_S, max(RATE_LIMIT_BACKOFF_MIN_S, self._backoff_s * 2)
        )
        self.backoff_until_ns = max(self.backoff_until_ns, ts_ns + int(self._backoff_s * NS))
        log.warning("venue rate limit: no new orders for %.1fs", self._backoff_s)
        return self._backoff_s

    def hold_reason(self, ts_ns: int, *, reduce_only: bool = False) -> str:
        """Why a new order must wait now, without any state change ("" when it may go): a
        rate-limit back-off (every order: the venue refuses a reduce-only one too, and each
        refusal doubles the back-off), or, for an order that is not reduce-only, the private WS
        down (no fills would reach us; a brief reconnect must not latch REDUCING, so it only
        holds orders until ``ws_reducing_after_s``)."""
        if ts_ns < self.backoff_until_ns:
            return "rate_limited"
        if self._ws_down_since_ns is not None and not reduce_only:
            return "ws_down"
        return ""

    def backoff_left_s(self, ts_ns: int) -> float:
        """Seconds of rate-limit back-off left (0: none)."""
        return max(0.0, (self.backoff_until_ns - ts_ns) / NS)

    def allows(self, *, reduce_only: bool = False, cancel: bool = False) -> bool:
        """Whether an action may go out now: cancels always, reduce-only unless HALTED."""
        if cancel:
            return True
        if self.state is BreakerState.HALTED:
            return False
        return reduce_only or self.state is BreakerState.ACTIVE

    def _trip(
        self, to: BreakerState, trigger: BreakerTrigger, detail: str, ts_ns: int
    ) -> BreakerTransition | None:
        if to <= self.state:
            return None  # never de-escalate on its own
        return self._enter(BreakerTransition(self.state, to, trigger, detail, ts_ns))

    def _enter(self, t: BreakerTransition) -> BreakerTransition:
        self.state = t.new
        self.transitions_total += 1
        log.warning(
            "breaker old=%s new=%s trigger=%s detail=%s",
            t.old.name,
            t.new.name,
            t.trigger,
            t.detail,
        )
        return t

    def on_journal_down(self, detail: str, ts_ns: int) -> BreakerTransition | None:
        """The journal refused a write: halt (cancels only) until an operator restarts."""
        return self._trip(BreakerState.HALTED, BreakerTrigger.JOURNAL, detail, ts_ns)

    def trip(self, detail: str, ts_ns: int) -> BreakerTransition | None:
        """An operator (or the kill switch) halts trading by hand."""
        return self._trip(BreakerState.HALTED, BreakerTrigger.MANUAL, detail, ts_ns)

    def reset(self, operator: str, ts_ns: int) -> BreakerTransition | None:
        """Operator reset back to ACTIVE; clears the counters so old evidence does not re-trip."""
        self._rejects = 0
        self._rest.clear()
        self._rest_errors = 0
        self._slow = 0
        self._backoff_s, self.backoff_until_ns = 0.0, 0
        if self.state is BreakerState.ACTIVE:
            return None
        return self._enter(
            BreakerTransition(
                self.state, BreakerState.ACTIVE, BreakerTrigger.RESET, f"reset by {operator}", ts_ns
            )
        )

    def on_order_result(
        self, accepted: bool, ts_ns: int, detail: str = ""
    ) -> BreakerTransition | None:
        """Venue verdict on a new order: a run of rejects halts."""
        if accepted:
            self._rejects = 0
            self._backoff_s = 0.0  # the venue takes orders again: the next limit starts short
            return None
        self._rejects += 1
        if self._rejects >= self._c.max_consecutive_rejects:
            msg = f"{self._rejects} consecutive rejects, last: {detail}"
            return self._trip(BreakerState.HALTED, BreakerTrigger.CONSECUTIVE_REJECTS, msg, ts_ns)
        return None

    def on_rest_result(self, ok: bool, ts_ns: int) -> BreakerTransition | None:
        """Outcome of any REST call (transport errors and error codes count as failures)."""
        rest = self._rest
        rest.append((ts_ns, ok))
        self._rest_errors += not ok
        horizon = ts_ns - int(self._c.rest_error_window_s * NS)
        while rest and rest[0][0] <= horizon:
            self._rest_errors -= not rest.popleft()[1]
        n = len(rest)
        errors = self._rest_errors
        if n >= self._c.rest_error_min_requests and errors > self._c.rest_error_rate_max * n:
            msg = f"{errors}/{n} REST errors in {self._c.rest_error_window_s}s"
            return self._trip(BreakerState.HALTED, BreakerTrigger.REST_ERROR_RATE, msg, ts_ns)
        return None

    def on_ws(self, connected: bool, ts_ns: int) -> BreakerTransition | None:
        """Private WS connection state change; the durations are judged in ``tick``."""
        if connected:
            self._ws_down_since_ns = None
            return None
        if self._ws_down_since_ns is None:
            self._ws_down_since_ns = ts_ns
        return self.tick(ts_ns)

    def on_data_age(self, age_s: float, ts_ns: int) -> BreakerTransition | None:
        if age_s > self._c.stale_data_s:
            msg = f"market data {age_s:.3f}s old"
            return self._trip(BreakerState.REDUCING, BreakerTrigger.STALE_DATA, msg, ts_ns)
        return None

    def on_latency(self, latency_s: float, ts_ns: int) -> BreakerTransition | None:
        """Tick-to-ack latency of one order: a run of slow ones reduces."""
        if latency_s <= self._c.latency_spike_s:
            self._slow = 0
            return None
        self._slow += 1
        if self._slow >= self._c.latency_spike_count:
            msg = (
                f"{self._slow} orders slower than {self._c.latency_spike_s}s, last {latency_s:.3f}s"
            )
            return self._trip(BreakerState.REDUCING, BreakerTrigger.LATENCY_SPIKE, msg, ts_ns)
        return None

    def on_pnl(self, day_pnl: Decimal, ts_ns: int) -> BreakerTransition | None:
        loss = -day_pnl
        if loss >= self._c.halt_loss_usdt:
            return self._trip(
                BreakerState.HALTED, BreakerTrigger.LOSS_LIMIT, f"day pnl {day_pnl}", ts_ns
            )
        if loss >= self._c.reducing_loss_usdt:
            return self._trip(
                BreakerState.REDUCING, BreakerTrigger.LOSS_LIMIT, f"day pnl {day_pnl}", ts_ns
            )
        return None

    def tick(self, ts_ns: int, journal_error: str = "") -> BreakerTransition | None:
        """Time-based triggers and the journal's write state; call it on every loop pass
        (cheap). A ``journal_error`` (the disk refused a write) halts."""
        if journal_error:
            return self.on_journal_down(journal_error, ts_ns)
        if self._ws_down_since_ns is None:
            return None
        down_s = (ts_ns - self._ws_down_since_ns) / NS
        if down_s >= self._c.ws_halt_after_s:
            msg = f"private WS down {down_s:.1f}s"
            return self._trip(BreakerState.HALTED, BreakerTrigger.WS_DISCONNECTED, msg, ts_ns)
        if down_s >= self._c.ws_reducing_after_s:
            msg = f"private WS down {down_s:.1f}s"
            return self._trip(BreakerState.REDUCING, BreakerTrigger.WS_DISCONNECTED, msg, ts_ns)
        return None
