"""The dashboard's view: journal rows, events and health replies in, one snapshot out."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from ipc.orders import PositionEvent
from procs.dashboard.view import JournalRows, Limits, View, percentiles

NS = 1_000_000_000
LIMITS = Limits(
    position_notional={"BTCUSDT": 1000.0, "ETHUSDT": 1000.0},
    position_qty={"BTCUSDT": 0.05, "ETHUSDT": None},
    total_notional=3000.0,
)


def _view() -> View:
    return View(LIMITS, chart_points=10, recent_rows=3)


def _intent(cid: str, recv_ns: int = 0) -> dict:
    return {
        "client_id": cid, "symbol": "BTCUSDT", "side": "BUY", "order_type": "LIMIT",
        "tif": "GTC", "qty": "0.002", "price": "60000", "ts_recv_ns": recv_ns, "ts_ns": recv_ns,
    }  # fmt: skip


def _event(cid: str, new: str, sent_ns: int = 0) -> dict:
    return {"client_id": cid, "new": new, "filled_qty": "0", "order_id": "", "ts_sent_ns": sent_ns}


def test_open_orders_follow_the_journaled_status_until_terminal():
    v = _view()
    v.on_journal(JournalRows(intents=[_intent("a"), _intent("b")]))
    v.on_journal(JournalRows(order_events=[_event("a", "SENT"), _event("b", "ACKED")]))
    open_mid = [o["client_id"] for o in v.snapshot(0)["open_orders"]]

    v.on_journal(JournalRows(order_events=[_event("a", "CANCELED"), _event("b", "PART_FILLED")]))

    assert sorted(open_mid) == ["a", "b"]
    [b] = v.snapshot(0)["open_orders"]
    assert (b["client_id"], b["status"]) == ("b", "PART_FILLED")


def test_tick_to_order_is_sent_stamp_minus_tick_receive_stamp():
    v = _view()
    v.on_journal(JournalRows(intents=[_intent("a", 1_000_000), _intent("b", 2_000_000)]))

    v.on_journal(
        JournalRows(
            order_events=[
                _event("a", "NEW_INTENT"),
                _event("a", "SENT", 1_250_000),
                _event("b", "SENT", 3_000_000),
                _event("b", "ACKED"),
            ]
        )
    )

    snap = v.snapshot(0)
    assert snap["tick_to_order_n"] == 2
    assert snap["tick_to_order_us"]["p50"] == 250.0
    assert snap["tick_to_order_us"]["max"] == 1000.0


def test_refusals_count_by_reason_and_fills_keep_the_newest():
    v = _view()
    risk = [{"reason": r, "symbol": "BTCUSDT", "detail": "", "ts_ns": 1} for r in "xyx"]
    fills = [{"fill_id": f"f{i}", "ts_ns": i} for i in range(5)]

    v.on_journal(JournalRows(risk_events=risk, fills=fills))

    snap = v.snapshot(0)
    assert snap["refusals"] == {"x": 2, "y": 1}
    assert [f["fill_id"] for f in snap["fills"]] == ["f4", "f3", "f2"]
    assert snap["fills_seen"] == 5


def test_operator_commands_are_listed_apart_from_refusals():
    v = _view()
    rows = [
        {"reason": "operator.kill_switch", "symbol": "", "detail": "on=1 source=cli", "ts_ns": 1},
        {"reason": "order_rate", "symbol": "BTCUSDT", "detail": "", "ts_ns": 2},
    ]

    v.on_journal(JournalRows(risk_events=rows))

    snap = v.snapshot(0)
    assert snap["refusals"] == {"order_rate": 1}
    assert [a["reason"] for a in snap["operator_actions"]] == ["operator.kill_switch"]


def test_breaker_history_is_newest_first_with_its_causes():
    v = _view()
    rows = [
        {"old": "ACTIVE", "new": "REDUCING", "trigger": "stale_data", "detail": "6 s", "ts_ns": 1},
        {"old": "REDUCING", "new": "HALTED", "trigger": "loss_limit", "detail": "-250", "ts_ns": 2},
    ]

    v.on_journal(JournalRows(breaker_events=rows))

    assert [b["trigger"] for b in v.snapshot(0)["breaker_history"]] == ["loss_limit", "stale_data"]


def test_positions_exposure_against_limits_uses_the_mark():
    v = _view()
    health = {
        "state": "running",
        "counters": {"positions": json.dumps({"BTCUSDT": "0.01", "ETHUSDT": "0"})},
    }
    v.on_execution(health, now_ns=0)
    v.on_position(
        PositionEvent(
            seq=1, ts_ns=5, symbol="BTCUSDT", position_side="BOTH", qty=Decimal("0.01"),
            avg_price=Decimal(59000), realised=Decimal(1), unrealised=Decimal(10),
            fees=Decimal("0.1"), funding=Decimal(0), mark=Decimal(60000),
        )
    )  # fmt: skip

    rows, total = v.positions()

    btc = rows[0]
    assert (btc["symbol"], btc["qty"], btc["mark"]) == ("BTCUSDT", 0.01, 60000.0)
    assert btc["notional"] == pytest.approx(600.0)
    assert btc["used"] == pytest.approx(0.6)
    assert btc["limit_qty"] == 0.05
    assert rows[1]["notional"] == 0.0
    assert total == pytest.approx(600.0)


def test_pnl_net_and_one_chart_point_per_second():
    v = _view()
    counters = {
        "realised_pnl": 5.0, "unrealised_pnl": -1.0, "fees": 0.5, "funding": 0.25, "state": "active"
    }  # fmt: skip

    for t in (0, NS // 2, NS, 3 * NS // 2, 3 * NS):
        v.on_execution({"state": "running", "counters": counters}, now_ns=t)

    snap = v.snapshot(3 * NS)
    assert snap["pnl"]["net"] == pytest.approx(3.75)
    assert [p[0] for p in snap["chart"]] == [0.0, 1000.0, 3000.0]
    assert snap["chart"][0][1:] == [3.75, 5.0, -1.0]


def test_no_chart_point_while_executions_pnl_is_not_known_yet():
    v = _view()
    v.on_journal(JournalRows(fills=[{"fill_id": "f1", "ts_ns": 1}]))
    zeros = {"realised_pnl": 0.0, "unrealised_pnl": 0.0, "fees": 0.0, "funding": 0.0}
    known = {**zeros, "realised_pnl": -2.0, "fees": 1.5, "state": "active"}

    v.on_execution({"state": "running", "counters": {**zeros, "state": "reconciling"}}, 0)
    v.on_execution({"state": "running", "counters": {**zeros, "state": "active"}}, NS)
    v.on_execution({"state": "running", "counters": known}, 2 * NS)

    assert [p[1] for p in v.snapshot(0)["chart"]] == [-3.5]


def test_version_moves_only_on_change():
    v = _view()
    data = {"state": "running", "counters": {"breaker": "ACTIVE"}}
    v.on_execution(data, now_ns=0)
    before = v.version

    v.on_journal(JournalRows())
    v.on_killswitch({"on": False, "reason": "", "ts_ns": 0, "source": ""})
    v.on_execution(data, now_ns=NS // 10)  # same reply, no chart point due
    same = v.version
    v.on_execution(None, now_ns=NS // 5, error="timeout")

    assert same == before
    assert v.version > same
    assert v.snapshot(0)["execution"]["ok"] is False


@pytest.mark.parametrize(
    ("samples", "expected"),
    [([], [None, None]), ([5.0], [5.0, 5.0]), ([float(i) for i in range(1, 101)], [50.0, 99.0])],
)
def test_percentiles_nearest_rank(samples, expected):
    assert percentiles(samples, (50, 99)) == expected
