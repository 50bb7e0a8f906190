"""The journal's intent and order rows as plain column values, before ``stored`` converts them:
the generic form ``journal_rows.intent_row``/``order_row`` build directly (tests check them
against it; ``tests.bench._order_ab`` times it as the path before)."""

from __future__ import annotations

from procs.trading.model import OrderRequest, OrderStatus
from procs.trading.orders import Order


def intent_values(req: OrderRequest, ts_ns: int) -> tuple[object, ...]:
    s = req.stamps
    return (
        req.client_id, req.symbol, req.side, req.order_type, req.tif, req.qty, req.price,
        req.reduce_only, req.position_side, req.tag, s.ts_event_ns, s.ts_recv_ns,
        s.ts_feat_ns, s.ts_sig_ns, req.ts_order_ns, ts_ns,
    )  # fmt: skip


def order_values(o: Order, old: OrderStatus, cause: str, ts_ns: int) -> tuple[object, ...]:
    return (
        o.client_id, old, o.status, o.order_id, o.filled_qty, o.avg_price, o.fee, o.mtime_ms,
        o.ts_sent_ns, o.ts_cancel_ns, cause, o.reason, ts_ns,
    )  # fmt: skip
