"""Baseline (b) of tick_to_order: the path as one asyncio process, as a user would write it.

``serve``: a ``websockets`` server replaying recorded simex frames with their recorded arrival
offsets (looping), to every client that subscribes. ``client``: a ``websockets`` client that
``json.loads`` each frame, builds the BOOK_V1/TRADE_V1 rows with ``float()``, and runs the very
same compute as baseline (a) (``tests.bench._tick_chain.Decider``) inline on the event loop.

Usage:
  python -m tests.bench._tick_asyncio serve PORT FRAMES_FILE SENT.npy  (prints "ready"; stdin EOF
      stops and writes the send stamps of the first client's frames)
  python -m tests.bench._tick_asyncio client URL CONFIG SECONDS OUT.npz [METRICS_PORT]
      (with METRICS_PORT: a prometheus_client /metrics thread and a tick-to-order histogram,
      as a user would add one; the loaded variant scrapes it)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import msgspec
import numpy as np

from shm.records import BOOK_DEPTH, BOOK_V1, TRADE_V1
from tests.bench._tick_chain import JOURNAL_FS, SYMBOLS, Decider, execution_config

FRAMES_TYPE = list[tuple[int, bytes]]


def save_frames(path: Path, frames: list[tuple[int, bytes]]) -> None:
    path.write_bytes(msgspec.msgpack.encode(frames))


def load_frames(path: Path) -> list[tuple[int, bytes]]:
    return msgspec.msgpack.decode(path.read_bytes(), type=FRAMES_TYPE)


async def serve(port: int, frames_path: Path, sent_path: Path) -> None:
    import websockets

    frames = load_frames(frames_path)
    period_ns = frames[-1][0] + (frames[-1][0] // max(len(frames) - 1, 1))
    sent: list[int] = []  # time.time_ns() after each send, first client only

    async def replay(ws: websockets.ServerConnection) -> None:
        await ws.recv()  # the subscribe
        record = not sent
        t0 = time.perf_counter_ns()
        i, lap = 0, 0
        while True:
            off, raw = frames[i]
            due = t0 + lap * period_ns + off
            now = time.perf_counter_ns()
            if due > now + 200_000:
                await asyncio.sleep((due - now) / 1e9)
            await ws.send(raw.decode())
            if record:
                sent.append(time.time_ns())
            i += 1
            if i == len(frames):
                i, lap = 0, lap + 1

    async def handler(ws: websockets.ServerConnection) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            await replay(ws)

    async with websockets.serve(handler, "127.0.0.1", port, compression=None, max_size=None):
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    np.save(sent_path, np.array(sent, dtype=np.int64))


def _ms_iso(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


class UserClient:
    """json + float() decoding into one-row record arrays, then the shared compute."""

    def __init__(self, decider: Decider) -> None:
        self.d = decider
        self.sid = {s: i for i, s in enumerate(SYMBOLS)}
        self.book: np.ndarray = np.zeros(1, BOOK_V1)
        self.trades: np.ndarray = np.zeros(256, TRADE_V1)
        self.n_trades = 0
        self.marks: dict[str, float] = {}
        self.out: list[tuple[int, int, int, int, int]] = []
        self.messages = 0

    def on_message(self, raw: str | bytes, ts_recv: int) -> None:
        msg = json.loads(raw)
        ch = msg.get("ch")
        if ch is None:
            return
        self.messages += 1
        sid = self.sid.get(msg["symbol"], -1)
        if sid < 0:
            return
        data = msg["data"]
        if ch == "price":
            self.marks[msg["symbol"]] = float(data["mp"])
        elif ch == "trade":
            for t in data:
                if self.n_trades == len(self.trades):
                    self.d.absorb_trades(self.trades)
                    self.n_trades = 0
                row = self.trades[self.n_trades : self.n_trades + 1]
                row["ts_event_ns"] = _ms_iso(t["t"]) * 1_000_000
                row["ts_recv_ns"] = ts_recv
                row["symbol_id"] = sid
                row["side"] = 1 if t["s"].lower() == "buy" else -1
                row["px"] = float(t["p"])
                row["qty"] = float(t["v"])
                self.n_trades += 1
        elif ch == "depth_book15":
            self._on_book(sid, msg["ts"], data, ts_recv)

    def _on_book(
        self, sid: int, ts_ms: int, data: dict[str, list[list[str]]], ts_recv: int
    ) -> None:
        b = self.book
        bids = [(float(p), float(q)) for p, q in data["b"][:BOOK_DEPTH]]
        asks = [(float(p), float(q)) for p, q in data["a"][:BOOK_DEPTH]]
        b["ts_event_ns"] = ts_ms * 1_000_000
        b["ts_recv_ns"] = ts_recv
        b["symbol_id"] = sid
        b["n_bids"], b["n_asks"] = len(bids), len(asks)
        for side, levels in (("bid", bids), ("ask", asks)):
            px, qty = b[f"{side}_px"][0], b[f"{side}_qty"][0]
            px[:] = 0.0
            qty[:] = 0.0
            if levels:
                px[: len(levels)] = [p for p, _ in levels]
                qty[: len(levels)] = [q for _, q in levels]
        s = self.d.decide(b, self.trades[: self.n_trades])
        self.n_trades = 0
        index = self.messages - 1  # this frame's position in the server's send order
        self.out.append((s.ts_recv_ns, s.ts_sig_ns, s.ts_order_ns, s.journal_ns, index))


async def client(url: str, config_path: Path, seconds: float, out: Path, port: int) -> None:
    import websockets
    from prometheus_client import Histogram, start_http_server

    hist = Histogram("b_tick_to_order_seconds", "tick to order")
    if port:
        start_http_server(port, "127.0.0.1")

    with tempfile.TemporaryDirectory(prefix="tto-b", dir=JOURNAL_FS) as tmp:
        cfg = execution_config(config_path.read_text(), Path(tmp))
        decider = Decider(cfg, asyncio.get_running_loop())
        await decider.open()
        user = UserClient(decider)
        args = [{"symbol": s, "ch": c} for s in SYMBOLS for c in ("depth_book15", "trade", "price")]
        try:
            async with websockets.connect(url, max_size=None, compression=None) as ws:
                await ws.send(json.dumps({"op": "subscribe", "args": args}))
                warm_end = time.monotonic() + min(2.0, seconds / 4)
                end = warm_end + seconds
                started = False
                t0 = m0 = 0.0
                async for msg in ws:
                    ts_recv = time.time_ns()
                    user.on_message(msg, ts_recv)
                    if user.out and user.out[-1][0] == ts_recv and user.out[-1][2]:
                        hist.observe((user.out[-1][2] - ts_recv) / 1e9)
                    now = time.monotonic()
                    if not started and now >= warm_end:
                        started, t0, m0 = True, now, user.messages
                        user.out.clear()
                    if now >= end:
                        break
                elapsed = time.monotonic() - t0
        finally:
            await decider.aclose()
            decider.close()
    arr = np.array(user.out, dtype=np.int64).reshape(-1, 5)
    np.savez(out, stamps=arr, rate=np.array([(user.messages - m0) / elapsed]))


def main(argv: list[str]) -> int:
    if argv[0] == "serve":
        asyncio.run(serve(int(argv[1]), Path(argv[2]), Path(argv[3])))
    elif argv[0] == "client":
        port = int(argv[5]) if len(argv) > 5 else 0
        asyncio.run(client(argv[1], Path(argv[2]), float(argv[3]), Path(argv[4]), port))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
