"""A recorded execution session: a fixed sequence of sig/book records fed to ``ExecutionProc``
(paper venue, fake clock), and the order and fill events it produced.

``tests/unit/procs/execution/data/session.npz`` holds the records (generated once by
``make_session``, seeded); ``session_orders.json`` holds the events the code produced before the
hot-path work of issue 12. The test replays the records and compares. Regenerate (only when a
change is *meant* to alter orders, and say so in the commit):

    .venv/bin/python -m tests.helpers.golden_session --write

``session_journal.json`` holds digests of the same session's journal (every row of every table,
the audit chain's hashes included, with a fixed audit key and journal clock: ``run_journaled``)
and of every event it published, as the code wrote them before the order path's cuts of issue
12 (branch i12-order); ``--write-journal`` regenerates it, under the same rule.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sqlite3
import time
import types
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from prometheus_client import CollectorRegistry

from ipc.orders import ORDER_EVENT_DECODER, FillEvent, OrderEvent
from procs.trading.compose import LoopWaiter
from procs.trading.config import (
    BreakerConfig,
    ExecutionConfig,
    PaperConfig,
    RiskConfig,
    StrategyConfig,
    SymbolConfig,
)
from procs.trading.engine import ExecutionProc
from procs.trading.journal import Journal
from procs.trading.killswitch import FileStore, KillSwitch
from procs.trading.metrics import make_metrics
from procs.trading.venue import PaperVenueAdapter
from shm.records import BOOK_V1, FLAG_STALE, SIG_V1, Records
from shm.ring import RingReader, RingSpec, RingWriter
from tests.helpers.execution_fakes import RecordingPublisher

DATA = Path(__file__).resolve().parents[1] / "unit" / "procs" / "execution" / "data"
SESSION = DATA / "session.npz"
GOLDEN = DATA / "session_orders.json"
GOLDEN_JOURNAL = DATA / "session_journal.json"
AUDIT_KEY = bytes(range(7, 39))  # the journaled run's fixed audit key (32 bytes)
T0 = 1_700_000_000 * 1_000_000_000
STEP_NS = 1_000_000  # the fake clock advances 1 ms per group of records
LEVELS = 15
# (symbol, symbol_id, tick, step, start mid)
SYMBOLS = (("BTCUSDT", 1, 0.1, 0.0001, 60000.0), ("ETHUSDT", 2, 0.01, 0.001, 3000.0))


def _book(rng: np.random.Generator, sid: int, tick: float, step: float, mid_ticks: int,
          spread: int, ts: int, flags: int) -> Records:  # fmt: skip
    r = np.zeros(1, dtype=BOOK_V1)
    r["ts_event_ns"], r["ts_recv_ns"], r["ts_pub_ns"] = ts - 500_000, ts, ts + 20_000
    r["symbol_id"], r["flags"], r["n_bids"], r["n_asks"] = sid, flags, LEVELS, LEVELS
    bid0, ask0 = mid_ticks - spread // 2, mid_ticks - spread // 2 + spread
    gaps_b = np.cumsum(rng.integers(1, 3, LEVELS)) - 1
    gaps_a = np.cumsum(rng.integers(1, 3, LEVELS)) - 1
    r["bid_px"][0, :LEVELS] = [round((bid0 - g) * tick, 8) for g in gaps_b]
    r["ask_px"][0, :LEVELS] = [round((ask0 + g) * tick, 8) for g in gaps_a]
    r["bid_qty"][0, :LEVELS] = [round(int(q) * step, 8) for q in rng.integers(1, 5000, LEVELS)]
    r["ask_qty"][0, :LEVELS] = [round(int(q) * step, 8) for q in rng.integers(1, 5000, LEVELS)]
    return r


def _sig(sid: int, mid: float, score: float, ts: int, flags: int) -> Records:
    r = np.zeros(1, dtype=SIG_V1)
    r["ts_event_ns"], r["ts_recv_ns"] = ts - 500_000, ts
    r["ts_feat_ns"], r["ts_sig_ns"] = ts + 40_000, ts + 60_000
    r["symbol_id"], r["flags"], r["mid"], r["score"] = sid, flags, mid, score
    return r


def make_session(n_groups: int = 2000, seed: int = 12) -> dict[str, np.ndarray]:
    """Seeded random walks: per group (1 ms), a book per symbol (sometimes one symbol, sometimes
    a stale one), then usually a signal per symbol whose score wanders through every regime."""
    rng = np.random.default_rng(seed)
    books, sigs, book_group, sig_group = [], [], [], []
    mids = [round(m / tick) for _, _, tick, _, m in SYMBOLS]
    scores = [0.0 for _ in SYMBOLS]
    for g in range(n_groups):
        ts = T0 + g * STEP_NS
        for k, (_, sid, tick, step, _) in enumerate(SYMBOLS):
            if rng.random() < 0.15:
                continue  # no push for this symbol in this group
            mids[k] += int(rng.choice([-2, -1, 0, 0, 0, 1, 2]))
            spread = int(rng.choice([1, 1, 1, 2, 3]))
            stale = FLAG_STALE if rng.random() < 0.005 else 0
            books.append(_book(rng, sid, tick, step, mids[k], spread, ts + k, stale))
            book_group.append(g)
            if rng.random() < 0.1:
                continue  # a book without a signal
            scores[k] = float(np.clip(0.9 * scores[k] + rng.normal(0, 0.35), -1, 1))
            mid = round(mids[k] * tick, 8)
            sflags = FLAG_STALE if stale or rng.random() < 0.003 else 0
            sigs.append(_sig(sid, mid, scores[k], ts + k, sflags))
            sig_group.append(g)
    return {
        "books": np.concatenate(books),
        "sigs": np.concatenate(sigs),
        "book_group": np.asarray(book_group, dtype=np.int64),
        "sig_group": np.asarray(sig_group, dtype=np.int64),
    }


def _config(tmp: Path) -> ExecutionConfig:
    syms = [
        SymbolConfig(symbol=s, symbol_id=i, tick=Decimal(repr(t)), step=Decimal(repr(q)),
                     min_qty=Decimal(repr(q)))
        for s, i, t, q, _ in SYMBOLS
    ]  # fmt: skip
    return ExecutionConfig(
        symbols=syms,
        mode="paper",
        journal_path=str(tmp / "j.sqlite"),
        killswitch_path=str(tmp / "ks.json"),
        strategy=StrategyConfig(
            enter_score=0.2,
            exit_score=0.05,
            take_score=0.85,
            sizing="vol_scaled",
            vol_halflife_s=1.0,
            target_notional_usdt=Decimal(1000),
            requote_ticks=1,
            improve_ticks=1,
        ),
        risk=RiskConfig(
            max_order_notional_usdt=Decimal(100000),
            max_position_notional_usdt=Decimal(100000),
            max_total_notional_usdt=Decimal(200000),
            max_orders_per_window=1000,
            daily_loss_limit_usdt=Decimal(10**6),
            max_drawdown_usdt=Decimal(10**6),
        ),
        breaker=BreakerConfig(reducing_loss_usdt=Decimal(10**6), halt_loss_usdt=Decimal(10**6)),
        paper=PaperConfig(queue_ahead_fraction=0.5),
    )


def run_session(
    tmp: Path,
    ns: str,
    session: dict[str, np.ndarray],
    published: list[tuple[bytes, bytes]] | None = None,
) -> list[dict[str, Any]]:
    """Replay ``session`` through a fresh ExecutionProc; its order and fill events as dicts
    (every published (topic, payload) appended to ``published`` when given)."""
    config = _config(tmp)
    sig_w = RingWriter(RingSpec(name=f"{ns}.inference.sig", dtype=SIG_V1, capacity=1024))
    book_w = RingWriter(RingSpec(name=f"{ns}.ingest.md.book", dtype=BOOK_V1, capacity=1024))
    loop = asyncio.new_event_loop()
    clock = [T0 - 10 * 1_000_000_000]
    holder: list[ExecutionProc] = []
    venue = PaperVenueAdapter(
        config.paper,
        local=lambda cid: holder[0].tracker.get(cid) if cid in holder[0].tracker else None,
        positions=lambda: holder[0].positions.snapshots(),
        balance=lambda: Decimal(0),
        order_ids="P",  # as the golden file was written: P1, P2, ...
    )
    pub = RecordingPublisher()
    proc = ExecutionProc(
        config,
        sig=RingReader(f"{ns}.inference.sig", SIG_V1),
        book=RingReader(f"{ns}.ingest.md.book", BOOK_V1),
        venue=venue,
        journal=Journal.open(config.journal_path),
        publisher=pub,
        killswitch=KillSwitch(FileStore(config.killswitch_path), config.killswitch_poll_s),
        metrics=make_metrics(CollectorRegistry()),
        loop=loop,
        clock=lambda: clock[0],
    )
    holder.append(proc)
    waiter = LoopWaiter(loop, 0.001)
    try:
        loop.run_until_complete(proc.open())
        for _ in range(20):
            clock[0] += 60_000_000
            proc.step()
            waiter.reset()
            if proc.reconciled:
                break
        assert proc.reconciled, "the paper session did not reconcile"
        books, sigs = session["books"], session["sigs"]
        bg, sg = session["book_group"], session["sig_group"]
        bi = si = 0
        for g in range(int(max(bg[-1], sg[-1])) + 1):
            clock[0] = T0 + g * STEP_NS + 300_000
            bj = int(np.searchsorted(bg, g, side="right"))
            sj = int(np.searchsorted(sg, g, side="right"))
            if bj > bi:
                book_w.publish(books[bi:bj])
            if sj > si:
                sig_w.publish(sigs[si:sj])
            bi, si = bj, sj
            proc.step()
            waiter.reset()  # the loop: sends, paper answers, fills
        if published is not None:
            published.extend(pub.sent)
        events = [ORDER_EVENT_DECODER.decode(p) for _, p in pub.sent]
        return [
            {"kind": type(e).__name__, **msgspec.to_builtins(msgspec.structs.asdict(e))}
            for e in events
            if isinstance(e, OrderEvent | FillEvent)
        ]
    finally:
        proc.close()
        sig_w.close()
        book_w.close()
        loop.close()


def run_journaled(tmp: Path, ns: str) -> dict[str, Any]:
    """``run_session`` with a fixed audit key and journal clock: digests of its journal (every
    row of every table, in table then rowid order, audit hashes included) and its events."""
    import procs.trading.journal as journal_module

    key = tmp / "audit.key"  # what Journal.open reads beside the journal (0600)
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, AUDIT_KEY.hex().encode() + b"\n")
    os.close(fd)
    wall = [1_800_000_000_000_000_000]

    def time_ns() -> int:  # the journal's own stamps (meta rows, its first audit row)
        wall[0] += 1000
        return wall[0]

    # (getattr/setattr: the module does not export ``time``, so mypy --strict refuses the dot)
    name = "time"
    real = getattr(journal_module, name)
    setattr(journal_module, name, types.SimpleNamespace(time_ns=time_ns, monotonic=time.monotonic))
    published: list[tuple[bytes, bytes]] = []
    try:
        run_session(tmp, ns, load_session(), published)
    finally:
        setattr(journal_module, name, real)
    rows, counts = hashlib.sha256(), {}
    with sqlite3.connect(tmp / "j.sqlite") as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in sorted(tables):
            n = 0
            for row in conn.execute(f"SELECT * FROM {table} ORDER BY rowid"):
                rows.update(json.dumps([table, *row]).encode() + b"\n")
                n += 1
            counts[table] = n
        head = list(conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone())
    events = hashlib.sha256()
    for topic, payload in published:
        events.update(len(topic).to_bytes(4, "big") + topic + len(payload).to_bytes(4, "big"))
        events.update(payload)
    return {
        "journal_sha256": rows.hexdigest(),
        "audit_head": head,
        "rows": counts,
        "events_sha256": events.hexdigest(),
        "events": len(published),
    }


def load_session() -> dict[str, np.ndarray]:
    with np.load(SESSION) as f:
        out = {k: f[k] for k in f.files}
    out["books"] = out["books"].astype(BOOK_V1)  # the file keeps fields, not the ring's dtype
    out["sigs"] = out["sigs"].astype(SIG_V1)
    return out


def main() -> None:
    import tempfile

    from tests.conftest import unique_ns

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--write", action="store_true", help="write session.npz and the golden file")
    ap.add_argument("--write-journal", action="store_true", help="write session_journal.json")
    args = ap.parse_args()
    if args.write_journal:
        with tempfile.TemporaryDirectory() as tmp:
            got = run_journaled(Path(tmp), unique_ns())
        GOLDEN_JOURNAL.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        print(got)
        return
    DATA.mkdir(parents=True, exist_ok=True)
    if args.write and not SESSION.exists():
        np.savez_compressed(SESSION, **make_session())  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory() as tmp:
        events = run_session(Path(tmp), unique_ns(), load_session())
    kinds = {k: sum(e["kind"] == k for e in events) for k in ("OrderEvent", "FillEvent")}
    print(f"{len(events)} events: {kinds}")
    if args.write:
        GOLDEN.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in events))


if __name__ == "__main__":
    main()
