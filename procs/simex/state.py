"""Save and restore simex's accounts: balances, settings, positions, open orders, TP/SL, and
the newest ``CLOSED_KEPT`` closed orders (a query by clientId after a restart finds them, as on
the venue, whose history outlives any restart).

msgspec JSON, written atomically (temp file + rename). Restoring into a configuration that lacks
a saved account or symbol is an error (StateError), never a silent loss.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Final

import msgspec

from procs._files import write_private
from procs.exchange.engine import Exchange
from procs.exchange.model import Order, Position, TpslOrder
from procs.matching.book import Resting

__all__ = ["STATE_VERSION", "SavedAccount", "SavedState", "StateError", "load_state", "save_state"]

STATE_VERSION: Final = 1
CLOSED_KEPT: Final = 2000  # closed orders kept per account across a restart


class StateError(Exception):
    """A state file that cannot be restored; the message names the file and the reason."""


class SavedAccount(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    wallet: Decimal
    initial: Decimal
    fees_total: Decimal
    pnl_total: Decimal
    funding_total: Decimal = Decimal(0)
    position_mode: str
    leverage: dict[str, int]
    margin_mode: dict[str, str]
    open_orders: list[Order]
    positions: list[Position]
    tpsl: list[TpslOrder]
    closed_orders: list[Order] = []  # the newest closed ones, oldest first


class SavedState(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    version: int
    saved_at_ms: int
    next_id: int
    last_price: dict[str, Decimal]
    accounts: list[SavedAccount]


def snapshot(ex: Exchange, ts_ms: int) -> SavedState:
    accounts = [
        SavedAccount(
            name=a.name,
            wallet=a.wallet,
            initial=a.initial,
            fees_total=a.fees_total,
            pnl_total=a.pnl_total,
            funding_total=a.funding_total,
            position_mode=a.position_mode,
            leverage=dict(a.leverage),
            margin_mode=dict(a.margin_mode),
            open_orders=list(a.open_orders.values()),
            positions=list(a.positions.values()),
            tpsl=[t for t in a.tpsl.values() if t.status == "NEW"],
            closed_orders=[o for o in a.orders.values() if o.order_id not in a.open_orders][
                -CLOSED_KEPT:
            ],
        )
        for a in ex.accounts.values()
    ]
    return SavedState(
        version=STATE_VERSION,
        saved_at_ms=ts_ms,
        next_id=ex.next_id,
        last_price=dict(ex.last_price),
        accounts=accounts,
    )


def save_state(ex: Exchange, path: str | Path, ts_ms: int) -> None:
    """Write the state atomically: a crash mid-write leaves the previous file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, msgspec.json.encode(snapshot(ex, ts_ms)), durable=True)


def load_state(ex: Exchange, path: str | Path) -> SavedState:
    """Restore ``path`` into a fresh Exchange; raise StateError naming what does not fit."""
    try:
        state = msgspec.json.decode(Path(path).read_bytes(), type=SavedState)
    except (OSError, msgspec.DecodeError) as exc:
        raise StateError(f"state file={path}: {exc}") from None
    if state.version != STATE_VERSION:
        raise StateError(f"state file={path}: version {state.version}, expected {STATE_VERSION}")
    for saved in state.accounts:
        if saved.name not in ex.accounts:
            raise StateError(f"state file={path}: account {saved.name!r} is not configured")
        symbols = {o.symbol for o in saved.open_orders} | {p.symbol for p in saved.positions}
        missing = symbols - set(ex.specs)
        if missing:
            raise StateError(f"state file={path}: symbols {sorted(missing)} are not configured")
    ex.next_id = max(ex.next_id, state.next_id)
    ex.last_price.update({k: v for k, v in state.last_price.items() if k in ex.specs})
    for saved in state.accounts:
        _restore_account(ex, saved)
    return state


def _restore_account(ex: Exchange, saved: SavedAccount) -> None:
    acct = ex.accounts[saved.name]
    acct.wallet, acct.initial = saved.wallet, saved.initial
    acct.fees_total, acct.pnl_total = saved.fees_total, saved.pnl_total
    acct.funding_total = saved.funding_total
    acct.position_mode = saved.position_mode
    acct.leverage, acct.margin_mode = dict(saved.leverage), dict(saved.margin_mode)
    for p in saved.positions:
        key = (p.symbol, "NET" if p.position_mode == "ONE_WAY" else p.side)
        acct.positions[key] = p
    for o in saved.closed_orders:
        acct.orders[o.order_id] = o
        if o.client_id:
            acct.client_ids[o.client_id] = o.order_id
    for o in saved.open_orders:
        acct.orders[o.order_id] = o
        acct.open_orders[o.order_id] = o
        if o.client_id:
            acct.client_ids[o.client_id] = o.order_id
        if o.price is not None:
            ex.books[o.symbol].add(Resting(o.order_id, acct.name, o.is_buy, o.price, o.remaining))
    for t in saved.tpsl:
        acct.tpsl[t.order_id] = t
        ex.tpsl_live[t.symbol] = ex.tpsl_live.get(t.symbol, 0) + 1
