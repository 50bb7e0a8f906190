"""Latency models: constant, seeded lognormal, and a live journal's round trips."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from procs.backtest.latency import LatencyConfig, LatencyError, make_latency
from procs.trading.journal import Journal


def test_constant():
    m = make_latency(LatencyConfig(entry_s=0.002, response_s=0.003, cancel_s=0.004))
    assert (m.entry_ns(), m.response_ns(), m.cancel_ns()) == (2_000_000, 3_000_000, 4_000_000)


def test_lognormal_is_seeded_and_keeps_the_median():
    c = LatencyConfig(model="lognormal", entry_s=0.001, sigma=0.5, seed=7)
    a, b = make_latency(c), make_latency(c)
    xs = [a.entry_ns() for _ in range(4000)]
    assert xs[:50] == [b.entry_ns() for _ in range(50)]
    assert 0.9e6 < float(np.median(xs)) < 1.1e6
    assert len(set(xs)) > 100


def test_journal_round_trips_are_replayed_in_order(tmp_path):
    path = tmp_path / "live.sqlite"
    Journal.open(path).close()  # the live schema
    conn = sqlite3.connect(path)
    rows = [  # (old, new, ts_sent_ns, ts_cancel_ns, ts_ns)
        ("SENT", "ACKED", 1000, 0, 5000),  # 4 µs round trip
        ("ACKED", "FILLED", 1000, 0, 9000),  # not a round trip
        ("SENT", "ACKED", 2000, 0, 12000),  # 10 µs
        ("ACKED", "CANCELED", 2000, 20000, 26000),  # cancel: 6 µs
    ]
    for i, (old, new, sent, cancel, ts) in enumerate(rows):
        conn.execute(
            "INSERT INTO order_events(client_id, old, new, ts_sent_ns, ts_cancel_ns, ts_ns,"
            " audit_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (f"c{i}", old, new, sent, cancel, ts, i),
        )
    conn.commit()
    conn.close()
    m = make_latency(LatencyConfig(model="journal", journal=str(path), entry_share=0.5))
    assert [(m.entry_ns(), m.response_ns()) for _ in range(3)] == [
        (2000, 2000),
        (5000, 5000),
        (2000, 2000),
    ]
    assert m.cancel_ns() == 3000
    assert m.describe()["order_round_trips"] == 2


def test_journal_model_errors(tmp_path):
    with pytest.raises(LatencyError, match=r"needs latency\.journal"):
        make_latency(LatencyConfig(model="journal"))
    with pytest.raises(LatencyError, match="no such journal"):
        make_latency(LatencyConfig(model="journal", journal=str(tmp_path / "x")))
    empty = tmp_path / "empty.sqlite"
    Journal.open(empty).close()
    with pytest.raises(LatencyError, match="no acknowledged orders"):
        make_latency(LatencyConfig(model="journal", journal=str(empty)))
