"""``BitunixRest``: one typed method per Bitunix futures REST endpoint (reference §3).

GETs may be retried by the transport; every POST is sent once. ``place_order`` always carries a
``clientId`` (one is generated when the caller gave none), so a place whose outcome is unknown
can be matched later through ``get_order_detail(client_id=...)`` or the ``order`` push.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Final

import msgspec

from ipc.bitunix.requests import ModifyOrder, PlaceOrder, TpslRequest, new_client_id
from ipc.bitunix.rest import RestTransport
from ipc.bitunix.schemas_rest import (
    Account,
    BatchResult,
    DepthSnapshot,
    FundingRate,
    FundingRateHistory,
    HistoryPositions,
    HistoryTrades,
    Kline,
    LeverageMarginMode,
    Order,
    OrderAck,
    OrderList,
    Position,
    PositionTier,
    Ticker,
    TpslAck,
    TpslOrder,
    TradingPair,
)

__all__ = ["MAX_BATCH_ORDERS", "BitunixRest"]

MAX_BATCH_ORDERS: Final = 20
_M: Final = "/api/v1/futures/market"
_A: Final = "/api/v1/futures/account"
_T: Final = "/api/v1/futures/trade"
_P: Final = "/api/v1/futures/position"
_S: Final = "/api/v1/futures/tpsl"


class _TpslList(msgspec.Struct, frozen=True):
    orderList: list[TpslOrder] = []


def _one(value: object) -> object:
    # the venue sends some single objects as a one-element list
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _csv(symbols: Sequence[str] | None) -> str | None:
    return ",".join(symbols) if symbols else None


class BitunixRest(RestTransport):
    """Typed Bitunix futures REST client; see ``RestTransport`` for lifecycle and counters."""

    # ---- market (public) ----
    async def trading_pairs(self, symbols: Sequence[str] | None = None) -> list[TradingPair]:
        """Return the symbol rules (precisions, min qty, status)."""
        out: list[TradingPair] = await self.get(
            f"{_M}/trading_pairs", list[TradingPair], {"symbols": _csv(symbols)}, auth=False
        )
        return out

    async def tickers(self, symbols: Sequence[str] | None = None) -> list[Ticker]:
        """Return 24h tickers."""
        out: list[Ticker] = await self.get(
            f"{_M}/tickers", list[Ticker], {"symbols": _csv(symbols)}, auth=False
        )
        return out

    async def depth(self, symbol: str, limit: str | int = "max") -> DepthSnapshot:
        """Return a REST depth snapshot (``limit`` 1/5/15/50/max), levels as floats."""
        out: DepthSnapshot = await self.get(
            f"{_M}/depth", DepthSnapshot, {"symbol": symbol, "limit": str(limit)}, auth=False
        )
        return out

    async def klines(
        self,
        symbol: str,
        interval: str,
        *,
        limit: int | None = None,
        start_time_ms: int | None = None,
        end_time_ms: int | None = None,
        price_type: str | None = None,
    ) -> list[Kline]:
        """Return candles sorted by ``time`` (the venue's order is undocumented)."""
        params = {
            "symbol": symbol,
            "interval": interval,
            "limit": limit,
            "startTime": start_time_ms,
            "endTime": end_time_ms,
            "type": price_type,
        }
        out: list[Kline] = await self.get(f"{_M}/kline", list[Kline], params, auth=False)
        return sorted(out, key=lambda k: int(k.time))

    async def funding_rate(self, symbol: str) -> FundingRate | None:
        """Return one symbol's funding rate (the venue wraps it in a list)."""
        out = await self.get(
            f"{_M}/funding_rate", FundingRate | list[FundingRate], {"symbol": symbol}, auth=False
        )
        one = _one(out)
        return one if isinstance(one, FundingRate) else None

    async def funding_rates(self) -> list[FundingRate]:
        """Return every symbol's funding rate (❓ scale: compare with WS ``price.fr``)."""
        out: list[FundingRate] = await self.get(
            f"{_M}/funding_rate/batch", list[FundingRate], None, auth=False
        )
        return out

    async def funding_rate_history(
        self,
        symbol: str,
        *,
        start_time_ms: int | None = None,
        end_time_ms: int | None = None,
        limit: int | None = None,
    ) -> list[FundingRateHistory]:
        """Return past funding settlements (``startTime``; the doc's ``starTime`` is a typo ❓)."""
        params = {
            "symbol": symbol,
            "startTime": start_time_ms,
            "endTime": end_time_ms,
            "limit": limit,
        }
        out: list[FundingRateHistory] = await self.get(
            f"{_M}/get_funding_rate_history", list[FundingRateHistory], params, auth=False
        )
        return out

    # ---- account ----
    async def account(self, margin_coin: str = "USDT") -> Account | None:
        """Return the futures account (``data`` object or one-element list)."""
        out = await self.get(_A, Account | list[Account], {"marginCoin": margin_coin})
        one = _one(out)
        return one if isinstance(one, Account) else None

    async def leverage_margin_mode(
        self, symbol: str, margin_coin: str = "USDT"
    ) -> LeverageMarginMode | None:
        """Return a symbol's leverage and margin mode."""
        out = await self.get(
            f"{_A}/get_leverage_margin_mode",
            LeverageMarginMode | list[LeverageMarginMode],
            {"symbol": symbol, "marginCoin": margin_coin},
        )
        one = _one(out)
        return one if isinstance(one, LeverageMarginMode) else None

    async def change_leverage(self, symbol: str, leverage: int, margin_coin: str = "USDT") -> None:
        """Set leverage (re-read with ``leverage_margin_mode``: the reply shape varies)."""
        body = {"symbol": symbol, "leverage": leverage, "marginCoin": margin_coin}
        await self.post(f"{_A}/change_leverage", None, body)

    async def change_margin_mode(
        self, symbol: str, margin_mode: str, margin_coin: str = "USDT"
    ) -> None:
        """Set ``ISOLATION`` or ``CROSS`` (20006 with open orders or positions)."""
        body = {"marginMode": margin_mode, "symbol": symbol, "marginCoin": margin_coin}
        await self.post(f"{_A}/change_margin_mode", None, body)

    async def change_position_mode(self, position_mode: str) -> None:
        """Set ``ONE_WAY`` or ``HEDGE`` account-wide (20009 with positions or orders)."""
        await self.post(f"{_A}/change_position_mode", None, {"positionMode": position_mode})

    async def adjust_position_margin(
        self,
        symbol: str,
        amount: Decimal,
        *,
        margin_coin: str = "USDT",
        side: str | None = None,
        position_id: str | None = None,
    ) -> None:
        """Add (positive) or remove (negative) isolated margin."""
        body = {
            "symbol": symbol,
            "amount": amount,
            "marginCoin": margin_coin,
            "side": side,
            "positionId": position_id,
        }
        await self.post(f"{_A}/adjust_position_margin", None, _drop_none(body))

    # ---- trade ----
    async def place_order(self, order: PlaceOrder) -> OrderAck:
        """Place one order; a timeout raises ``UnknownOutcome`` (match later by clientId)."""
        if order.clientId is None:
            order = msgspec.structs.replace(order, clientId=new_client_id())
        ack: OrderAck = await self.post(f"{_T}/place_order", OrderAck, order)
        if ack.clientId is None:
            ack = msgspec.structs.replace(ack, clientId=order.clientId)
        return ack

    async def batch_place(self, symbol: str, orders: Sequence[PlaceOrder]) -> BatchResult:
        """Place up to 20 orders of one symbol; each gets a clientId if it had none."""
        if not 0 < len(orders) <= MAX_BATCH_ORDERS:
            raise ValueError(f"batch needs 1..{MAX_BATCH_ORDERS} orders, was {len(orders)}")
        items = []
        for o in orders:
            d = msgspec.to_builtins(o, builtin_types=(Decimal,), enc_hook=str)
            d.pop("symbol", None)
            d.setdefault("clientId", new_client_id())
            items.append(d)
        out: BatchResult = await self.post(
            f"{_T}/batch_order", BatchResult, {"symbol": symbol, "orderList": items}
        )
        return out

    async def cancel_orders(
        self, symbol: str, *, order_ids: Sequence[str] = (), client_ids: Sequence[str] = ()
    ) -> BatchResult:
        """Cancel by orderId and/or clientId; success means accepted, not final."""
        lst = [{"orderId": i} for i in order_ids] + [{"clientId": c} for c in client_ids]
        if not lst:
            raise ValueError("cancel_orders needs at least one order id or client id")
        out = await self.post(
            f"{_T}/cancel_orders", BatchResult | None, {"symbol": symbol, "orderList": lst}
        )
        return out if out is not None else BatchResult()

    async def cancel_all_orders(self, symbol: str | None = None) -> BatchResult:
        """Cancel every open order (of ``symbol``, or all)."""
        out = await self.post(
            f"{_T}/cancel_all_orders", BatchResult | None, _drop_none({"symbol": symbol})
        )
        return out if out is not None else BatchResult()

    async def modify_order(self, modify: ModifyOrder) -> OrderAck:
        """Change an open order's qty and price."""
        if modify.orderId is None and modify.clientId is None:
            raise ValueError("modify_order needs orderId or clientId")
        out: OrderAck = await self.post(f"{_T}/modify_order", OrderAck, modify)
        return out

    async def close_all_positions(self, symbol: str | None = None) -> None:
        """Market-close every position (of ``symbol``, or all)."""
        await self.post(f"{_T}/close_all_position", None, _drop_none({"symbol": symbol}))

    async def flash_close_position(self, position_id: str) -> None:
        """Market-close one position at once."""
        await self.post(f"{_T}/flash_close_position", None, {"positionId": position_id})

    async def order_detail(
        self, *, order_id: str | None = None, client_id: str | None = None
    ) -> Order | None:
        """Return one order by orderId or clientId."""
        if order_id is None and client_id is None:
            raise ValueError("order_detail needs order_id or client_id")
        out = await self.get(
            f"{_T}/get_order_detail",
            Order | list[Order] | None,
            {"orderId": order_id, "clientId": client_id},
        )
        one = _one(out)
        return one if isinstance(one, Order) else None

    async def pending_orders(self, symbol: str | None = None, **filters: object) -> OrderList:
        """Return open orders (filters: orderId, clientId, status, startTime, skip, limit...)."""
        return await self._order_list(f"{_T}/get_pending_orders", symbol, filters)

    async def history_orders(self, symbol: str | None = None, **filters: object) -> OrderList:
        """Return past orders (filters as the venue names them)."""
        return await self._order_list(f"{_T}/get_history_orders", symbol, filters)

    async def _order_list(self, path: str, symbol: str | None, f: dict[str, object]) -> OrderList:
        out = await self.get(path, OrderList | list[Order] | None, {"symbol": symbol, **f})
        if isinstance(out, list):
            return OrderList(orderList=out, total=len(out))
        return out if out is not None else OrderList()

    async def history_trades(self, symbol: str | None = None, **filters: object) -> HistoryTrades:
        """Return our fills."""
        out = await self.get(
            f"{_T}/get_history_trades", HistoryTrades | None, {"symbol": symbol, **filters}
        )
        return out if out is not None else HistoryTrades()

    # ---- positions ----
    async def pending_positions(
        self, symbol: str | None = None, position_id: str | None = None
    ) -> list[Position]:
        """Return open positions (side normalised to LONG/SHORT)."""
        out = await self.get(
            f"{_P}/get_pending_positions",
            list[Position] | None,
            {"symbol": symbol, "positionId": position_id},
        )
        return out if out is not None else []

    async def history_positions(
        self, symbol: str | None = None, **filters: object
    ) -> HistoryPositions:
        """Return closed positions."""
        out = await self.get(
            f"{_P}/get_history_positions",
            HistoryPositions | list[Position] | None,
            {"symbol": symbol, **filters},
        )
        if isinstance(out, list):
            return HistoryPositions(positionList=out, total=len(out))
        return out if out is not None else HistoryPositions()

    async def position_tiers(self, symbol: str) -> list[PositionTier]:
        """Return the symbol's risk tiers."""
        out = await self.get(
            f"{_P}/get_position_tiers", list[PositionTier] | None, {"symbol": symbol}
        )
        return out if out is not None else []

    # ---- TP/SL ----
    async def place_tpsl(self, req: TpslRequest) -> TpslAck:
        """Place a TP/SL order on a position."""
        return await self._tpsl_post(f"{_S}/place_order", req)

    async def place_position_tpsl(self, req: TpslRequest) -> TpslAck:
        """Place a position-level TP/SL."""
        return await self._tpsl_post(f"{_S}/position/place_order", req)

    async def modify_tpsl(self, req: TpslRequest) -> TpslAck:
        """Modify a TP/SL order (``orderId`` required)."""
        return await self._tpsl_post(f"{_S}/modify_order", req)

    async def modify_position_tpsl(self, req: TpslRequest) -> TpslAck:
        """Modify a position-level TP/SL."""
        return await self._tpsl_post(f"{_S}/position/modify_order", req)

    async def cancel_tpsl(self, symbol: str, order_id: str) -> TpslAck:
        """Cancel a TP/SL order."""
        return await self._tpsl_post(f"{_S}/cancel_order", {"symbol": symbol, "orderId": order_id})

    async def _tpsl_post(self, path: str, body: object) -> TpslAck:
        out = await self.post(path, TpslAck | list[TpslAck] | None, body)
        one = _one(out)
        return one if isinstance(one, TpslAck) else TpslAck()

    async def pending_tpsl(self, symbol: str | None = None, **filters: object) -> list[TpslOrder]:
        """Return open TP/SL orders."""
        return await self._tpsl_list(f"{_S}/get_pending_orders", symbol, filters)

    async def history_tpsl(self, symbol: str | None = None, **filters: object) -> list[TpslOrder]:
        """Return past TP/SL orders."""
        return await self._tpsl_list(f"{_S}/get_history_orders", symbol, filters)

    async def _tpsl_list(
        self, path: str, symbol: str | None, f: dict[str, object]
    ) -> list[TpslOrder]:
        out = await self.get(path, list[TpslOrder] | _TpslList | None, {"symbol": symbol, **f})
        if isinstance(out, _TpslList):
            return out.orderList
        return out if out is not None else []


def _drop_none(body: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in body.items() if v is not None}
