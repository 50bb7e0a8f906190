"""Builders shared by the execution unit tests."""

from __future__ import annotations

import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from procs.trading.instruments import Instrument
from procs.trading.model import OrderRequest, OrderType, Side, TimeInForce

D = Decimal


def btc(**kw: Any) -> Instrument:
    base = {
        "symbol": "BTCUSDT",
        "tick": D("0.1"),
        "step": D("0.0001"),
        "min_qty": D("0.0001"),
        "max_limit_qty": D("100"),
        "max_market_qty": D("50"),
        "price_protect_scope": D("0.02"),
        "symbol_id": 1,
    }
    base.update(kw)
    return Instrument(**base)  # type: ignore[arg-type]  # test overrides by name


def req(
    cid: str = "br-1-1",
    side: Side = Side.BUY,
    qty: str = "0.01",
    price: str | None = "60000",
    symbol: str = "BTCUSDT",
    **kw: Any,
) -> OrderRequest:
    order_type = OrderType.MARKET if price is None else OrderType.LIMIT
    tif = kw.pop("tif", TimeInForce.IOC if price is None else TimeInForce.GTC)
    return OrderRequest(
        client_id=cid,
        symbol=symbol,
        side=side,
        qty=D(qty),
        price=None if price is None else D(price),
        order_type=order_type,
        tif=tif,
        **kw,
    )


def run_until_killed(script: str, *args: str) -> None:
    """Run ``script`` (Python source) in a child process from the repository root, and check
    that it ended by its own SIGKILL (a crash at the point it chose)."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=Path(__file__).parents[4],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
