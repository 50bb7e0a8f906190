"""What simex and the execution journal say, for the whole-group e2e tests.

``SimexView`` reads simex over signed REST with the observer key (same account as execution's
key, its own rate budget). ``JournalView`` reads execution's SQLite journal read-only. Both turn
the answers into plain Decimals keyed by symbol so a test compares them with ``==``.
"""

from __future__ import annotations

import sqlite3
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from ipc.bitunix.signing import new_nonce, query_string, sign_rest
from tests.helpers.group_config import OBSERVER_KEY
from tests.helpers.simex_proc import http

P = "/api/v1/futures"


@dataclass(frozen=True)
class SimexView:
    rest_url: str
    api_key: str = OBSERVER_KEY[0]
    secret: str = OBSERVER_KEY[1]

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """Signed GET; return ``data`` or raise with simex's answer."""
        params = params or {}
        nonce, ts = new_nonce(), str(int(time.time() * 1000))
        sign = sign_rest(
            nonce=nonce,
            timestamp=ts,
            api_key=self.api_key,
            query=query_string(params),
            body="",
            secret=self.secret,
        )
        headers = {"api-key": self.api_key, "nonce": nonce, "timestamp": ts, "sign": sign}
        url = self.rest_url + P + path + ("?" + urllib.parse.urlencode(params) if params else "")
        status, body = http("GET", url, None, headers)
        if status != 200 or not isinstance(body, dict) or body.get("code") != 0:
            raise AssertionError(f"simex GET {path} {params}: {status} {body}")
        return body["data"]

    def _paged(self, path: str, key: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            data = self.get(path, {"limit": "100", "skip": str(len(out))})
            out += data[key]
            if not data[key] or len(out) >= int(data["total"]):
                return out

    def open_orders(self) -> list[dict[str, Any]]:
        return self._paged("/trade/get_pending_orders", "orderList")

    def history_orders(self) -> list[dict[str, Any]]:
        return self._paged("/trade/get_history_orders", "orderList")

    def all_orders(self) -> list[dict[str, Any]]:
        return self.open_orders() + self.history_orders()

    def positions(self) -> dict[str, Decimal]:
        """Signed position per symbol (long > 0); flat symbols are left out."""
        out: dict[str, Decimal] = {}
        for p in self.get("/position/get_pending_positions") or []:
            q = Decimal(p["qty"]) * (1 if p["side"] in ("LONG", "BUY") else -1)
            out[p["symbol"]] = out.get(p["symbol"], Decimal(0)) + q
        return {s: q for s, q in out.items() if q}

    def wallet(self) -> Decimal:
        """Wallet balance: available + frozen + margin (as execution reconciles it)."""
        a = self.get("/account", {"marginCoin": "USDT"})
        return Decimal(a["available"]) + Decimal(a["frozen"]) + Decimal(a["margin"])


def duplicates(ids: list[str]) -> dict[str, int]:
    return {k: n for k, n in Counter(ids).items() if n > 1}


class JournalView:
    """Read-only queries on execution's journal (it is in WAL mode: readers never block it)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if not self.path.exists():
            return []
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)
        try:
            return list(conn.execute(sql, args))
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise
        finally:
            conn.close()

    def client_ids(self) -> list[str]:
        return [r[0] for r in self.rows("SELECT client_id FROM intents ORDER BY id")]

    def fills_count(self) -> int:
        return int(self.rows("SELECT count(*) FROM fills")[0][0]) if self.path.exists() else 0

    def positions(self) -> dict[str, Decimal]:
        """Signed position per symbol from every journaled fill (flat symbols left out)."""
        out: dict[str, Decimal] = {}
        for sym, side, qty in self.rows("SELECT symbol, side, qty FROM fills ORDER BY id"):
            q = Decimal(qty) if side == "BUY" else -Decimal(qty)
            out[sym] = out.get(sym, Decimal(0)) + q
        return {s: q for s, q in out.items() if q}

    def cash(self) -> Decimal:
        """Realised PnL (average cost, one-way) − fees + funding over every journaled fill."""
        pos: dict[str, tuple[Decimal, Decimal]] = {}  # symbol -> (signed qty, cost of it)
        total = Decimal(0)
        sql = "SELECT symbol, side, qty, price, fee FROM fills ORDER BY id"
        for sym, side, qty_t, px_t, fee_t in self.rows(sql):
            qty, px = Decimal(qty_t), Decimal(px_t)
            total -= Decimal(fee_t)
            signed = qty if side == "BUY" else -qty
            q, cost = pos.get(sym, (Decimal(0), Decimal(0)))
            if q and (q > 0) != (signed > 0):  # reduces (and may flip)
                closed = min(abs(signed), abs(q))
                avg = cost / q
                total += closed * (px - avg) * (1 if q > 0 else -1)
                q_new = q + signed
                if abs(signed) > abs(q):  # flipped: the rest opens at px
                    pos[sym] = (q_new, q_new * px)
                else:
                    pos[sym] = (q_new, avg * q_new)
            else:
                pos[sym] = (q + signed, cost + signed * px)
        for (amount,) in self.rows("SELECT amount FROM funding"):
            total += Decimal(amount)
        return total

    def breaker_events(self) -> list[tuple[str, str, str, str]]:
        return [
            (str(a), str(b), str(c), str(d))
            for a, b, c, d in self.rows(
                "SELECT old, new, trigger, detail FROM breaker_events ORDER BY id"
            )
        ]

    def intents_after(self, audit_ts_ns: int) -> int:
        return int(self.rows("SELECT count(*) FROM intents WHERE ts_ns > ?", (audit_ts_ns,))[0][0])
