"""The chaos suite's verdicts, as pure functions over what the run left behind.

Each returns a list of findings (empty: the property held), so a test asserts ``== []`` and its
failure message names every violation. ``tests/unit/test_chaos_checks.py`` feeds each one an
injected violation to show it can fail.

- ``rate_breaches``: our own REST requests per api-key (or per IP for public endpoints) and
  endpoint in any 1 s window, by the request's signed timestamp (when our client sent it, after
  its rate limiter), against the venue's documented limits.
- ``backoff_breaches``: after a rate-limit answer (10005/10006/429) to a new order, no new order
  (reduce-only or not) was sent within the back-off, allowing ``grace_s`` for the answer to
  reach us.
- ``aged_orders``: an order decided on market data older than the staleness limit when it left.
- ``stale_windows`` / ``orders_in_stale_windows``: an order sent while ingest had its symbol
  flagged STALE (from the first STALE book record to the first book record without the flag).
- ``supervisor_events`` / ``crash_loop_findings``: from supervisord's log, every exit per program
  and every FATAL; exits must be the ones the test caused, nothing FATAL it did not cause.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

NS = 1_000_000_000
RATE_LIMIT_CODES = frozenset({10005, 10006, 429})
ORDER_PATHS = frozenset({"/api/v1/futures/trade/place_order", "/api/v1/futures/trade/batch_order"})

# one REST request as simex's request log keeps it (procs/simex/reqlog.py)
Request = Sequence[Any]  # [arrived_ns, client_ts_ms, who, path, code, reduce_only]


def rate_breaches(
    requests: Iterable[Request], limit_for: Callable[[str], float], window_ms: int = 1000
) -> list[str]:
    """Every (who, path) whose requests in some ``window_ms`` exceed ``limit_for(path)``."""
    by: dict[tuple[str, str], list[int]] = defaultdict(list)
    for arrived_ns, client_ts_ms, who, path, _code, _ro in requests:
        by[(who, path)].append(int(client_ts_ms) or int(arrived_ns) // 1_000_000)
    out = []
    for (who, path), stamps in sorted(by.items()):
        limit = limit_for(path)
        window: deque[int] = deque()
        worst, at = 0, 0
        for t in sorted(stamps):
            window.append(t)
            while window[0] <= t - window_ms:
                window.popleft()
            if len(window) > worst:
                worst, at = len(window), t
        if worst > limit:
            out.append(f"{who} {path}: {worst} requests in {window_ms} ms at {at} > {limit:g}")
    return out


def max_rates(requests: Iterable[Request], window_ms: int = 1000) -> dict[str, int]:
    """The most requests any (who, path) sent in one window: the figure for the docs."""
    by: dict[str, list[int]] = defaultdict(list)
    for arrived_ns, client_ts_ms, who, path, _code, _ro in requests:
        by[f"{who} {path}"].append(int(client_ts_ms) or int(arrived_ns) // 1_000_000)
    out = {}
    for key, stamps in by.items():
        stamps.sort()
        window: deque[int] = deque()
        worst = 0
        for t in stamps:
            window.append(t)
            while window[0] <= t - window_ms:
                window.popleft()
            worst = max(worst, len(window))
        out[key] = worst
    return out


def backoff_breaches(
    requests: Iterable[Request], min_backoff_s: float, grace_s: float, who: str
) -> tuple[list[str], int]:
    """New orders (reduce-only ones too) by ``who`` signed within ``(answer + grace_s, answer +
    min_backoff_s)`` of a rate-limit answer to one; also returns how many such answers there
    were."""
    orders = sorted(
        (r for r in requests if r[2] == who and r[3] in ORDER_PATHS), key=lambda r: int(r[0])
    )
    answers = [int(r[0]) for r in orders if int(r[4]) in RATE_LIMIT_CODES]
    out = []
    for ans_ns in answers:
        lo, hi = ans_ns + int(grace_s * NS), ans_ns + int(min_backoff_s * NS)
        for r in orders:
            sent_ns = int(r[1]) * 1_000_000 or int(r[0])
            if lo < sent_ns < hi:
                gap = (sent_ns - ans_ns) / NS
                out.append(f"new order sent {gap:.3f}s after a rate-limit answer at {ans_ns}")
    return out, len(answers)


@dataclass(frozen=True)
class SentOrder:
    client_id: str
    symbol: str
    ts_order_ns: int  # when it left execution
    ts_recv_ns: int  # receipt of the book its decision started from (0: no market data behind)


def aged_orders(orders: Iterable[SentOrder], max_age_s: float) -> tuple[list[str], int]:
    """Orders whose decision's market data was older than ``max_age_s`` when they left; also
    returns how many orders carried a data stamp (the ones this could judge)."""
    out, judged = [], 0
    for o in orders:
        if not o.ts_recv_ns or not o.ts_order_ns:
            continue
        judged += 1
        age = (o.ts_order_ns - o.ts_recv_ns) / NS
        if age > max_age_s:
            out.append(f"{o.client_id} {o.symbol}: decided on data {age:.3f}s old > {max_age_s}")
    return out, judged


@dataclass(frozen=True)
class BookMark:
    """One captured book record: enough to find STALE windows."""

    symbol: str
    seq: int  # the record's position in ingest's ring
    ts_recv_ns: int
    stale: bool


def stale_windows(marks: Iterable[BookMark]) -> list[tuple[str, int, int]]:
    """(symbol, from_ns, to_ns): from a symbol's first STALE record to its next clean one.

    ``marks`` in capture order (file after file). A window the capture did not see whole (a
    ``seq`` step other than +1 inside it: capture was down or lapped, or ingest restarted with a
    new ring) is left out: its clean record may be in the gap. A window still open at the end of
    the capture runs to the last record captured."""
    ordered = list(marks)
    out = []
    open_: dict[str, int] = {}
    gap_since: dict[str, bool] = {}
    prev_seq: int | None = None
    last_ns = 0
    for m in ordered:
        if prev_seq is not None and m.seq != prev_seq + 1:
            for sym in open_:
                gap_since[sym] = True
        prev_seq = m.seq
        last_ns = max(last_ns, m.ts_recv_ns)
        if m.stale:
            if m.symbol not in open_:
                open_[m.symbol] = m.ts_recv_ns
                gap_since[m.symbol] = False
        elif m.symbol in open_:
            start = open_.pop(m.symbol)
            if not gap_since.pop(m.symbol):
                out.append((m.symbol, start, m.ts_recv_ns))
    out += [(sym, start, last_ns) for sym, start in open_.items() if not gap_since[sym]]
    return sorted(out, key=lambda w: w[1])


def orders_in_stale_windows(
    orders: Iterable[SentOrder], windows: Sequence[tuple[str, int, int]], grace_s: float
) -> list[str]:
    """Orders (with market data behind them) that left more than ``grace_s`` into a STALE window
    of their symbol: ``grace_s`` covers the marker's way from ingest's ring into execution."""
    by_sym: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for sym, start, end in windows:
        by_sym[sym].append((start, end))
    out = []
    for o in orders:
        if not o.ts_recv_ns:
            continue  # a kill-switch flatten or a cancel-replace without market data behind it
        for start, end in by_sym.get(o.symbol, ()):
            if start + int(grace_s * NS) < o.ts_order_ns < end:
                late = (o.ts_order_ns - start) / NS
                out.append(f"{o.client_id} {o.symbol}: sent {late:.3f}s into a STALE window")
    return out


_EXITED = re.compile(r"exited: (\S+) \(([^)]*)\)")
_FATAL = re.compile(r"gave up: (\S+) entered FATAL state")
_SPAWNED = re.compile(r"spawned: '(\S+)'")


@dataclass
class ProgramEvents:
    spawned: int = 0
    exits: Counter[str] = field(
        default_factory=Counter
    )  # "terminated by SIGKILL", "exit status 78"
    fatal: int = 0


def supervisor_events(log: str) -> dict[str, ProgramEvents]:
    """Per program: how often supervisord spawned it, each kind of exit, each FATAL."""
    out: dict[str, ProgramEvents] = defaultdict(ProgramEvents)
    for line in log.splitlines():
        if m := _EXITED.search(line):
            why = m.group(2).split(";")[0].strip()
            out[m.group(1)].exits[why] += 1
        elif m := _FATAL.search(line):
            out[m.group(1)].fatal += 1
        elif m := _SPAWNED.search(line):
            out[m.group(1)].spawned += 1
    return dict(out)


def crash_loop_findings(
    events: Mapping[str, ProgramEvents],
    expected_exits: Mapping[str, Counter[str]],
    expected_fatal: Mapping[str, int],
    stops: Mapping[str, int],
) -> list[str]:
    """Exits the test did not cause, FATALs it did not cause, and restarts beyond its faults.

    ``expected_exits`` per program counts the exits the test caused (SIGKILLs, the exit 78 of a
    corrupt journal); ``stops`` the supervisorctl stops it asked for (a SIGTERM exit is expected
    for those). A program may be spawned at most once at start, once per exit and once per
    stop."""
    out = []
    for name, ev in sorted(events.items()):
        want = expected_exits.get(name, Counter())
        for why, n in sorted(ev.exits.items()):
            if why in ("exit status 0", "terminated by SIGTERM"):
                if n > stops.get(name, 0):
                    out.append(f"{name}: {n} clean exits, {stops.get(name, 0)} stops asked")
            elif n != want.get(why, 0):
                out.append(f"{name}: {n} exits '{why}', the test caused {want.get(why, 0)}")
        for why, n in sorted(want.items()):
            if ev.exits.get(why, 0) != n:
                out.append(f"{name}: caused {n} exits '{why}', supervisord saw {ev.exits[why]}")
        if ev.fatal != expected_fatal.get(name, 0):
            out.append(f"{name}: FATAL {ev.fatal} times, expected {expected_fatal.get(name, 0)}")
        bound = 1 + sum(want.values()) + stops.get(name, 0)
        if ev.spawned > bound:
            out.append(f"{name}: spawned {ev.spawned} times > {bound} (a restart loop)")
    return out
