"""Execution's order events (``ipc.orders``) as ``ORDER_V2`` rows, and the gap finder.

Pure: no I/O, no clocks. ``order_row`` maps one decoded event onto the row's fields;
``find_gaps`` finds the breaks in a batch's ``seq`` that ``procs.capture.proc`` writes into the
file's ``gaps`` table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from ipc.orders import (
    BreakerEvent,
    FillEvent,
    OrderEvent,
    OrderMessage,
    PositionEvent,
    RiskEvent,
)
from procs.tickstore.layout import KIND_BREAKER, KIND_FILL, KIND_ORDER, KIND_POSITION, KIND_RISK

__all__ = ["find_gaps", "order_row"]

_NO_SYMBOLS: Final[Mapping[str, int]] = {}


def _side(side: str) -> int:
    s = side.upper()
    return 1 if s == "BUY" else -1 if s == "SELL" else 0


def _f(value: Any) -> float:
    return math.nan if value is None else float(value)


def order_row(
    msg: OrderMessage, ts_capture_ns: int, symbol_ids: Mapping[str, int] = _NO_SYMBOLS
) -> dict[str, Any]:
    """Return the ORDER_V2 field values for one decoded order event (absent fields: zero).

    ``symbol_id`` is the symbol's position in the file's symbol map (-1: not in it, or none).
    Rows without a tick behind them (position, risk, breaker) take ``ts_recv_ns = ts_ns``.
    """
    row: dict[str, Any] = {"seq": msg.seq, "ts_ns": msg.ts_ns, "ts_capture_ns": ts_capture_ns}
    row["ts_recv_ns"] = msg.ts_ns
    if isinstance(msg, (OrderEvent, FillEvent)):
        row |= {
            "ts_event_ns": msg.ts_event_ns,
            "ts_recv_ns": msg.ts_recv_ns or msg.ts_ns,
            "ts_feat_ns": msg.ts_feat_ns,
            "ts_sig_ns": msg.ts_sig_ns,
            "ts_order_ns": msg.ts_order_ns,
            "symbol": msg.symbol,
            "client_id": msg.client_id,
            "order_id": msg.order_id,
            "side": _side(msg.side),
            "qty": float(msg.qty),
            "fee": float(msg.fee),
        }
    if isinstance(msg, OrderEvent):
        row |= {
            "kind": KIND_ORDER,
            "order_type": msg.order_type,
            "tif": msg.tif,
            "price": _f(msg.price),
            "status": msg.status,
            "old_status": msg.old_status,
            "filled_qty": float(msg.filled_qty),
            "avg_price": float(msg.avg_price),
            "reduce_only": int(msg.reduce_only),
            "reason": msg.reason,
        }
    elif isinstance(msg, FillEvent):
        row |= {"kind": KIND_FILL, "fill_id": msg.fill_id, "price": float(msg.price)}
        row["position_side"] = msg.position_side
    elif isinstance(msg, PositionEvent):
        row |= {
            "kind": KIND_POSITION,
            "symbol": msg.symbol,
            "position_side": msg.position_side,
            "qty": float(msg.qty),
            "price": float(msg.avg_price),
            "avg_price": float(msg.avg_price),
            "realised": float(msg.realised),
            "unrealised": float(msg.unrealised),
            "fee": float(msg.fees),
            "funding": float(msg.funding),
            "mark": float(msg.mark),
        }
    elif isinstance(msg, RiskEvent):
        row |= {"kind": KIND_RISK, "client_id": msg.client_id, "symbol": msg.symbol}
        row |= {"reason": msg.reason, "detail": msg.detail}
    elif isinstance(msg, BreakerEvent):
        row |= {"kind": KIND_BREAKER, "old_status": msg.old, "status": msg.new}
        row |= {"reason": msg.trigger, "detail": msg.detail}
    row["symbol_id"] = symbol_ids.get(row.get("symbol", ""), -1)
    return {k: v.encode() if isinstance(v, str) else v for k, v in row.items()}


def find_gaps(
    seq: npt.NDArray[np.int64], expected: int | None, limit: int
) -> tuple[list[tuple[int, int]], int]:
    """Return up to ``limit`` breaks ``(expected_seq, seq)`` in ``seq`` (``expected``: the seq
    the batch should start with, None when unknown) and the number of breaks in all.
    """
    out: list[tuple[int, int]] = []
    total = 0
    if seq.size == 0:
        return out, 0
    first = int(seq[0])
    if expected is not None and first != expected:
        out.append((expected, first))
        total = 1
    if seq.size > 1:
        bad = np.flatnonzero(np.diff(seq) != 1)
        total += int(bad.size)
        idx = bad[: max(0, limit - len(out))].tolist()
        out.extend((int(seq[i]) + 1, int(seq[i + 1])) for i in idx)
    return out[:limit], total
