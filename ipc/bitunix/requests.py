"""Request bodies for Bitunix futures POST endpoints (reference §3.9-3.14), as msgspec Structs.

Field names are the wire names. ``None`` fields are left out of the JSON. Prices and quantities
are ``Decimal`` (encoded as strings, already rounded by the caller to the symbol's precision).
"""

from __future__ import annotations

import itertools
import os
import time
from decimal import Decimal
from typing import Final

import msgspec

__all__ = ["ModifyOrder", "PlaceOrder", "TpslRequest", "new_client_id"]

_PREFIX: Final = f"br{os.getpid() % 100000:05d}{int(time.time()) % 1000000:06d}"
_COUNTER: Final = itertools.count()


def new_client_id() -> str:
    """Return a clientId unique to this process run (prefix, pid, start time, counter)."""
    return f"{_PREFIX}{next(_COUNTER):08d}"


class PlaceOrder(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One order for ``place_order`` (``symbol`` is dropped inside ``batch_order`` lists)."""

    symbol: str
    side: str
    orderType: str
    qty: Decimal
    price: Decimal | None = None
    tradeSide: str | None = None
    positionId: str | None = None
    effect: str | None = None
    clientId: str | None = None
    reduceOnly: bool | None = None
    marginCoin: str | None = None
    tpPrice: Decimal | None = None
    tpStopType: str | None = None
    tpOrderType: str | None = None
    tpOrderPrice: Decimal | None = None
    slPrice: Decimal | None = None
    slStopType: str | None = None
    slOrderType: str | None = None
    slOrderPrice: Decimal | None = None


class ModifyOrder(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """``modify_order``: ``orderId`` or ``clientId``, plus the new ``qty`` and ``price``."""

    qty: Decimal
    price: Decimal
    orderId: str | None = None
    clientId: str | None = None
    tpPrice: Decimal | None = None
    tpStopType: str | None = None
    tpOrderType: str | None = None
    tpOrderPrice: Decimal | None = None
    slPrice: Decimal | None = None
    slStopType: str | None = None
    slOrderType: str | None = None
    slOrderPrice: Decimal | None = None


class TpslRequest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """TP/SL place/modify body (order-level or position-level; unused fields stay None)."""

    symbol: str | None = None
    positionId: str | None = None
    orderId: str | None = None
    tpPrice: Decimal | None = None
    tpStopType: str | None = None
    tpOrderType: str | None = None
    tpOrderPrice: Decimal | None = None
    tpQty: Decimal | None = None
    slPrice: Decimal | None = None
    slStopType: str | None = None
    slOrderType: str | None = None
    slOrderPrice: Decimal | None = None
    slQty: Decimal | None = None
