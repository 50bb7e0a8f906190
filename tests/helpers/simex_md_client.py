"""One market-data subscriber for the simex_md_rate benchmark (picows client, one process).

Usage: python -m tests.helpers.simex_md_client WS_URL SYMBOLS WARMUP_S WINDOW_S
Subscribes depth_book15 + trade on each symbol (one message), skips WARMUP_S, counts frames for
WINDOW_S, prints one JSON line: frames, depth, trade, bytes, window_s, first_error.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect


class Counter(WSListener):
    def __init__(self, symbols: list[str], warmup_s: float, window_s: float) -> None:
        super().__init__()
        self.symbols = symbols
        self.start = time.monotonic() + warmup_s
        self.end = self.start + window_s
        self.frames = self.depth = self.trade = self.nbytes = 0
        self.done = asyncio.get_running_loop().create_future()
        self.error = ""

    def on_ws_connected(self, transport: WSTransport) -> None:
        args = [{"symbol": s, "ch": ch} for s in self.symbols for ch in ("depth_book15", "trade")]
        transport.send(WSMsgType.TEXT, json.dumps({"op": "subscribe", "args": args}).encode())

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        now = time.monotonic()
        if now < self.start:
            return
        if now >= self.end:
            if not self.done.done():
                self.done.set_result(None)
            return
        payload = frame.get_payload_as_bytes()
        self.frames += 1
        self.nbytes += len(payload)
        if payload.startswith(b'{"ch":"depth_book15"'):
            self.depth += 1
        elif payload.startswith(b'{"ch":"trade"'):
            self.trade += 1
        elif not self.error:
            self.error = payload[:120].decode(errors="replace")

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.done.done():
            self.error = self.error or "disconnected"
            self.done.set_result(None)


async def run(url: str, symbols: list[str], warmup_s: float, window_s: float) -> dict[str, object]:
    listener: Counter | None = None

    def factory() -> Counter:
        nonlocal listener
        listener = Counter(symbols, warmup_s, window_s)
        return listener

    transport, _ = await ws_connect(factory, url, enable_auto_ping=False)
    assert listener is not None
    await asyncio.wait_for(listener.done, warmup_s + window_s + 10)
    t0 = listener.start
    elapsed = min(time.monotonic(), listener.end) - t0
    transport.disconnect()
    return {
        "frames": listener.frames,
        "depth": listener.depth,
        "trade": listener.trade,
        "bytes": listener.nbytes,
        "window_s": elapsed,
        "first_error": listener.error,
    }


def main() -> int:
    url, symbols, warmup, window = (
        sys.argv[1],
        sys.argv[2].split(","),
        float(sys.argv[3]),
        float(sys.argv[4]),
    )
    print(json.dumps(uvloop.run(run(url, symbols, warmup, window))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
