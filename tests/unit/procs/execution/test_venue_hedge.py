"""LiveVenue's place body in hedge mode: a close names its position (id and direction)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest

from ipc.bitunix.fields import decoder
from ipc.bitunix.requests import PlaceOrder
from ipc.bitunix.schemas_rest import Position
from procs.trading.model import PositionSide, Side
from procs.trading.venue import LiveVenue, VenueRejected

from .helpers import req


@dataclass
class Ack:
    orderId: str = "1"


@dataclass
class FakeRest:
    positions: list[Position] = field(default_factory=list)
    bodies: list[PlaceOrder] = field(default_factory=list)
    position_calls: list[str | None] = field(default_factory=list)

    async def place_order(self, body: PlaceOrder) -> Ack:
        self.bodies.append(body)
        return Ack()

    async def pending_positions(self, symbol: str | None = None) -> list[Position]:
        self.position_calls.append(symbol)
        return self.positions


def position(pid: str, side: str) -> Position:
    raw = f'{{"positionId":"{pid}","symbol":"BTCUSDT","qty":"0.5","side":"{side}"}}'
    return decoder(Position).decode(raw.encode())


def place(rest: FakeRest, *, hedge: bool, **kw: Any) -> PlaceOrder:
    venue = LiveVenue(rest, None, hedge=hedge)  # type: ignore[arg-type]  # place needs no WS
    asyncio.run(venue.place(req(**kw)))
    return rest.bodies[-1]


def test_hedge_close_long_names_position_id_and_long_side():
    close = {"side": Side.SELL, "reduce_only": True, "position_side": PositionSide.LONG}
    body = place(FakeRest(), hedge=True, position_id="P9", **close)

    assert (body.side, body.tradeSide, body.positionId) == ("BUY", "CLOSE", "P9")


def test_hedge_close_without_known_id_asks_rest_for_the_leg():
    rest = FakeRest(positions=[position("L1", "LONG"), position("S1", "SHORT")])
    close = {"side": Side.BUY, "reduce_only": True, "position_side": PositionSide.SHORT}
    body = place(rest, hedge=True, **close)

    assert (body.side, body.tradeSide, body.positionId) == ("SELL", "CLOSE", "S1")
    assert rest.position_calls == ["BTCUSDT"]


def test_hedge_close_with_no_open_leg_is_refused_before_sending():
    rest = FakeRest(positions=[position("L1", "LONG")])
    close = {"side": Side.BUY, "reduce_only": True, "position_side": PositionSide.SHORT}

    with pytest.raises(VenueRejected):
        place(rest, hedge=True, **close)
    assert rest.bodies == []


def test_hedge_open_and_one_way_orders_carry_no_position_id():
    opened = place(FakeRest(), hedge=True, side=Side.SELL, position_side=PositionSide.SHORT)
    one_way = place(FakeRest(), hedge=False, side=Side.SELL, reduce_only=True)

    assert (opened.side, opened.tradeSide, opened.positionId) == ("SELL", "OPEN", None)
    assert (one_way.tradeSide, one_way.positionId, one_way.reduceOnly) == (None, None, True)
    assert Decimal(str(one_way.qty)) == Decimal("0.01")
