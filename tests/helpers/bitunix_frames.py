"""Recorded-style Bitunix WS frames for benchmarks and tests (seeded, reproducible)."""

from __future__ import annotations

import json
import random


def depth_book15_frames(n: int, *, seed: int = 7, symbol: str = "BTCUSDT") -> list[bytes]:
    """Return ``n`` depth_book15 pushes shaped like the venue's (string levels, ~700 bytes)."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        mid = 60000 + rnd.random() * 100
        b = [[f"{mid - 0.1 * (k + 1):.1f}", f"{rnd.random() * 3:.4f}"] for k in range(15)]
        a = [[f"{mid + 0.1 * (k + 1):.1f}", f"{rnd.random() * 3:.4f}"] for k in range(15)]
        push = {
            "ch": "depth_book15",
            "symbol": symbol,
            "ts": 1732178884994 + i,
            "data": {"b": b, "a": a},
        }
        out.append(json.dumps(push, separators=(",", ":")).encode())
    return out
