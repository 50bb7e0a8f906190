"""The exchange's order checks: field validation with the venue's error codes and the direction
an order trades in (one-way or hedge mode). The matching rules' own checks (effect, reduce-only)
come from ``procs.matching.rules``; here their refusals become the venue's ``ExchangeError``.
"""

from __future__ import annotations

from decimal import Decimal

from procs.exchange.model import ZERO, Account, ExchangeError, Position, SymbolSpec
from procs.matching.rules import MatchReject, check_effect, reduce_only_check

__all__ = ["direction", "signed_position", "validate_order"]


def validate_order(
    spec: SymbolSpec,
    side: str,
    otype: str,
    effect: str,
    qty: Decimal,
    price: Decimal | None,
) -> None:
    """Refuse what the venue refuses before booking: side, type, effect, size and price grid."""
    if side not in ("BUY", "SELL"):
        raise ExchangeError(10002, "side must be BUY or SELL")
    if otype not in ("LIMIT", "MARKET"):
        raise ExchangeError(10002, "orderType must be LIMIT or MARKET")
    try:
        check_effect(effect)
    except MatchReject as exc:
        raise ExchangeError(exc.code, exc.msg) from None
    if not qty.is_finite() or qty <= 0 or qty != qty.quantize(spec.step):
        raise ExchangeError(
            10002, f"qty must be positive with at most {spec.base_precision} decimals"
        )
    market = otype == "MARKET"
    if qty < spec.min_qty:
        raise ExchangeError(30017 if market else 30016, "Qty below minimum")
    if qty > (spec.max_market_qty if market else spec.max_limit_qty):
        raise ExchangeError(30039 if market else 30013, "Exceeds max order qty")
    if not market and (
        price is None or not price.is_finite() or price <= 0 or price != price.quantize(spec.tick)
    ):
        raise ExchangeError(
            10002, f"price must be positive with at most {spec.quote_precision} decimals"
        )


def direction(
    acct: Account,
    symbol: str,
    side: str,
    trade_side: str,
    position_id: str,
    reduce_only: bool,
) -> tuple[bool, str, str, bool]:
    """Return (book is_buy, trade_side, hedge position side, closing)."""
    if acct.position_mode == "HEDGE":
        if trade_side not in ("OPEN", "CLOSE"):
            raise ExchangeError(10002, "tradeSide must be OPEN or CLOSE")
        pos_side = "LONG" if side == "BUY" else "SHORT"
        if trade_side == "OPEN":
            return side == "BUY", "OPEN", pos_side, False
        # hedge close per the reference: side names the position (BUY closes the long), and
        # positionId is required "when tradeSide=CLOSE"
        if not position_id:
            raise ExchangeError(10002, "positionId is required when tradeSide=CLOSE")
        pos = acct.positions.get((symbol, pos_side))
        if pos is None or pos.position_id != position_id:
            raise ExchangeError(30004, "Position does not exist")
        return side != "BUY", "CLOSE", pos_side, True
    is_buy = side == "BUY"
    if reduce_only:
        try:
            reduce_only_check(signed_position(acct.positions.get((symbol, "NET"))), is_buy)
        except MatchReject as exc:
            raise ExchangeError(exc.code, exc.msg) from None
    return is_buy, trade_side if trade_side in ("OPEN", "CLOSE") else "OPEN", "", False


def signed_position(pos: Position | None) -> Decimal:
    """A net position as a signed quantity (long > 0; None: flat)."""
    if pos is None:
        return ZERO
    return pos.qty if pos.side == "LONG" else -pos.qty
