"""The tick_to_order bench's alternated rounds: the order they run in and how they pool."""

from __future__ import annotations

import json
from decimal import Decimal

import numpy as np

from ipc.orders import OrderEvent
from tests.bench._common import Result
from tests.bench._tick_group import Window
from tests.bench.bench_tick_to_order import (
    NAME,
    TOPOLOGIES,
    A,
    B,
    _b_arrays,
    _halves_vs_b,
    alternate,
    load_bound,
    main,
)


def _win(seconds: float, sig_ns: list[int], cpu: float, load: float) -> Window:
    arr = np.array(sig_ns, np.int64)
    return Window(
        seconds=seconds,
        ws_messages=1000.0 * seconds,
        signals=float(len(sig_ns)),
        sig_ns=arr,
        sig_recv=arr,
        sig_dropped=1,
        cpu_percent={"hotpath": cpu},
        loadavg=(load, load, load),
        batches=10.0,
        fallback_latency=1.0,
    )


def test_rounds_alternate_abba_and_keep_each_round():
    calls: list[str] = []

    def window(topology: str, r: int) -> Window:
        calls.append(f"{topology}{r}")
        return _win(1.0, [r], 10.0, 1.0)

    def b_run() -> tuple[np.ndarray, np.ndarray, float]:
        calls.append("b")
        # stamps [recv, sig, order, journal, index]: one placed order
        return np.array([[0, 5, 100 * len(calls), 0, 0]], np.int64), np.zeros(1, np.int64), 99.0

    alt = alternate(3, window, b_run)
    others = TOPOLOGIES[1:]
    assert calls == [*(f"{t}0" for t in others), "b", "b", *(f"{t}1" for t in others),
                     *(f"{t}2" for t in others), "b"]  # fmt: skip
    assert [len(w) for w in alt.wins.values()] == [3] * len(others)
    assert alt.b_rates == [99.0] * 3
    # every round's (b) pooled, in round order (order stamp = 100 x its call's position)
    b_at = [100 * (i + 1) for i, c in enumerate(calls) if c == "b"]
    assert alt.pooled_b()["order"].tolist() == b_at


def test_window_pooled_joins_samples_and_sums_counts():
    a, b = _win(10.0, [1, 2], 20.0, 1.0), _win(5.0, [3], 40.0, 3.0)
    p = Window.pooled([a, b])
    assert p.sig_ns.tolist() == [1, 2, 3]
    assert p.sig_recv.tolist() == [1, 2, 3]
    assert p.seconds == 15.0
    assert p.ws_rate == 1000.0
    assert (p.signals, p.sig_dropped, p.batches, p.fallback_latency) == (3.0, 2, 20.0, 2.0)
    assert p.cpu_percent == {"hotpath": 30}
    assert p.loadavg == (2.0, 2.0, 2.0)
    assert Window.pooled([a]) is a


def test_halves_compare_each_part_of_an_order_with_b():
    def order(recv: int, sig: int, out: int) -> OrderEvent:
        z = Decimal(0)
        return OrderEvent(
            1, 0, recv, recv, sig, out, out, "c", "", "BTCUSDT", "BUY", "LIMIT", "GTC",
            z, z, "SENT", "NEW_INTENT", z, z, z,
        )  # fmt: skip

    win = Window(seconds=1.0, ws_messages=1.0, orders=[order(0, 300, 500), order(10, 310, 510)])
    # (b): [recv, sig, order, journal, index]; the second book placed nothing
    stamps = np.array([[0, 100, 400, 0, 0], [5, 50, 0, 0, 1], [10, 110, 410, 0, 2]], np.int64)
    rows = {r.metric: r for r in _halves_vs_b("1k", win, _b_arrays(stamps, np.zeros(3, np.int64)))}
    r2s, s2o = rows["recv_to_sig_p50_vs_b_1k"], rows["sig_to_order_p50_vs_b_1k"]
    assert (r2s.value, r2s.baseline_value) == (0.3, 0.1)  # µs: 300 ns against 100 ns
    assert (s2o.value, s2o.baseline_value) == (0.2, 0.3)
    assert set(rows) == {
        f"{h}_{p}_vs_b_1k" for h in ("recv_to_sig", "sig_to_order") for p in ("p50", "p99")
    }


def test_load_bound_derives_the_loaded_goals_parts_from_the_measured_rows():
    measured = [
        Result(NAME, "p99_vs_b_1k_colocated", 900.0, "us", B, 1000.0, "<= 1.0"),
        Result(NAME, "p99_us_1k_load_colocated", 800.0, "us", B, 1500.0, "<= 0.5"),
        Result(NAME, "p99_us_1k_colocated", 900.0, "us", A, 600.0),
    ]
    got = {(r.name, r.metric): (r.value, r.baseline_value) for r in load_bound(measured)}
    assert got == {
        (B, "p99_1k_load_vs_quiet"): (1500.0, 1000.0),  # the load slowed (b) 1.5 x
        (NAME, "p99_1k_load_vs_quiet_colocated"): (800.0, 900.0),  # and the pipeline 0.89 x
        (NAME, "p99_1k_quiet_vs_b_load_colocated"): (900.0, 1500.0),  # unslowed: 0.6 x (b)
    }
    assert load_bound(measured[1:]) == []  # quick mode: no quiet colocated row
    assert load_bound(measured[:1]) == []  # no loaded variant


def test_load_bound_of_stored_results_and_a_clear_error_for_a_bad_file(tmp_path, capsys):
    good = tmp_path / "results.json"
    rows = [
        Result(NAME, "p99_vs_b_1k_colocated", 900.0, "us", B, 1000.0),
        Result(NAME, "p99_us_1k_load_colocated", 800.0, "us", B, 1500.0),
    ]
    good.write_text(json.dumps([r.as_json() for r in rows]))
    quick = tmp_path / "quick.json"
    quick.write_text(json.dumps([rows[0].as_json()]))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    rows_of_what = tmp_path / "numbers.json"
    rows_of_what.write_text("[1, 2]")
    assert main([str(good), str(quick)]) == 0
    out = capsys.readouterr().out
    assert "p99_1k_quiet_vs_b_load_colocated 900 / 1,500 us = 0.60" in out
    assert "p99_1k_load_vs_quiet 1,500 / 1,000 us = 1.50" in out
    assert f"{quick}: no quiet and loaded colocated p99 rows" in out
    assert main([str(bad), str(rows_of_what)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: not a results file" in err
    assert f"{rows_of_what}: not a results file" in err
    assert main([]) == 2
