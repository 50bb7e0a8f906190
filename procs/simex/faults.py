"""Run-time fault injection state: what to break, how often, seeded where randomised.

The control API edits a FaultState; REST, WS and the market loop consult ``Faults``.
"""

from __future__ import annotations

import random
import time
from typing import Annotated, Any, Final, Literal

import msgspec

__all__ = ["FaultState", "Faults"]

Rate = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
MAX_STALL_S: Final = 3600.0
Seconds = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_STALL_S)]


class FaultState(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Every knob; the defaults mean no fault."""

    rest_error_rate: Rate = 0.0  # share of REST requests answered with rest_error_status
    rest_error_status: Annotated[int, msgspec.Meta(ge=500, le=599)] = 503
    rate_limit_rate: Rate = 0.0  # share of REST requests answered with code 10005
    ack_delay_s: Seconds = 0.0  # extra delay before REST trade/account POST responses
    push_delay_s: Seconds = 0.0  # extra delay before every WS push (public and private)
    clock_skew_ms: int = 0  # added to every server timestamp (pushes, ping, REST times)
    reject_signatures: bool = False  # REST answers 10007, WS login answers false
    pause_md: bool = False  # no generator flow, no market-data pushes
    ws_stall_until_ns: int = 0  # WS connections get nothing (and answer nothing) until then
    ws_stall_scope: Literal["all", "public", "private"] = "all"


class Faults:
    """Mutable fault state plus a seeded random stream for the rate-based ones."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self.state = FaultState()
        self._rng = random.Random(seed)
        self.injected_total: dict[str, int] = {}

    def update(self, changes: dict[str, Any]) -> FaultState:
        """Merge ``changes`` (validated: unknown or out-of-range fields raise ValidationError)."""
        if "ws_stall_s" in changes:
            changes = dict(changes)
            stall = changes.pop("ws_stall_s")
            if type(stall) not in (int, float) or not 0 <= stall <= MAX_STALL_S:
                raise ValueError(
                    f"ws_stall_s must be seconds in [0, {MAX_STALL_S:g}], was {stall!r}"
                )
            changes["ws_stall_until_ns"] = time.time_ns() + int(stall * 1e9) if stall > 0 else 0
        merged = msgspec.structs.asdict(self.state) | changes
        self.state = msgspec.convert(merged, FaultState)
        return self.state

    def reset(self) -> FaultState:
        self.state = FaultState()
        self._rng = random.Random(self._seed)
        return self.state

    def rest_fault(self) -> Literal["error", "ratelimit"] | None:
        s = self.state
        if s.rest_error_rate and self._rng.random() < s.rest_error_rate:
            return self._count("error")
        if s.rate_limit_rate and self._rng.random() < s.rate_limit_rate:
            return self._count("ratelimit")
        return None

    def stalled(self, private: bool) -> bool:
        s = self.state
        if not s.ws_stall_until_ns or time.time_ns() >= s.ws_stall_until_ns:
            return False
        return s.ws_stall_scope == "all" or (s.ws_stall_scope == "private") == private

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.state.clock_skew_ms

    def _count(self, kind: Literal["error", "ratelimit"]) -> Literal["error", "ratelimit"]:
        self.injected_total[kind] = self.injected_total.get(kind, 0) + 1
        return kind
