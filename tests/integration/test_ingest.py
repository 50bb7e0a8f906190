"""simex → ``python -m procs.ingest`` → rings read here: stamps, staleness, reconnect, exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tomllib
import urllib.request
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ipc.messages import PUB_DECODER, Heartbeat, decode, hb_topic, wake_topic
from ipc.sockets import connect_sub
from procs.group.health import query_health
from shm.records import BOOK_V1, FLAG_CROSSED, FLAG_SNAPSHOT, FLAG_STALE, Records
from shm.ring import attach_reader
from shm.segment import SHM_DIR
from tests.conftest import ROOT, free_port
from tests.helpers.ingest_proc import SYMBOLS, Ingest, ingest_toml, run_ingest
from tests.helpers.poll import eventually
from tests.helpers.simex_proc import SimexProc, control, run_simex, write_config

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sx_module(tmp_path_factory) -> Iterator[SimexProc]:
    cfg = write_config(tmp_path_factory.mktemp("simex_ingest"))
    with run_simex(cfg) as proc:
        yield proc


@pytest.fixture
def sx(sx_module) -> Iterator[SimexProc]:
    yield sx_module
    control(sx_module, "/_simex/faults/reset", {})


@pytest.fixture
def ingest(sx, tmp_path, run_dir, ns) -> Iterator[Ingest]:
    with run_ingest(sx, tmp_path, run_dir, ns) as ing:
        yield ing


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
        text: str = r.read().decode()
    return text


def _scrape_when(port: int, needle: str) -> str:
    text = _scrape(port)
    return text if needle in text else ""


def test_ingest_heartbeat_and_metrics_show_progress(sx, tmp_path, run_dir, ns):
    port = free_port()
    with run_ingest(sx, tmp_path, run_dir, ns, metrics_port=port) as ing:
        sub = connect_sub(ing.pub, [hb_topic("ingest")])
        try:
            eventually(lambda: _seen_every_symbol(ing, 10, 1), timeout_s=10)

            def beat_with_progress() -> Heartbeat | None:
                got = sub.recv(0.3)
                hb = None if got is None else decode(PUB_DECODER, got[1], got[0])
                return hb if isinstance(hb, Heartbeat) and hb.last_seq > 0 else None

            hb = eventually(beat_with_progress, timeout_s=5)
        finally:
            sub.close()
        text = eventually(partial(_scrape_when, port, 'channel="trade"'), timeout_s=5)

    assert hb.proc == "ingest"
    for name in (
        'bitrader_md_messages_total{channel="depth_book15",proc="ingest"}',
        'bitrader_md_messages_total{channel="trade",proc="ingest"}',
        'bitrader_md_records_total{proc="ingest",ring="md.book"}',
        'bitrader_md_records_total{proc="ingest",ring="md.trade"}',
        'bitrader_md_feed_latency_seconds_bucket{le="0.0001",proc="ingest"}',
        'bitrader_md_feed_latency_seconds_bucket{le="10.0",proc="ingest"}',
        'bitrader_md_publish_seconds_count{proc="ingest",ring="md.book"}',
        'bitrader_md_stale_symbols{proc="ingest"} 0.0',
        'bitrader_md_reconnects_total{proc="ingest"} 0.0',
        'bitrader_step_seconds_count{proc="ingest"}',
    ):
        assert name in text, name


def _seen_every_symbol(ing: Ingest, books_min: int, trades_min: int) -> bool:
    books, trades = ing.drain()
    return all(
        np.count_nonzero(books["symbol_id"] == sid) >= books_min
        and np.count_nonzero(trades["symbol_id"] == sid) >= trades_min
        for sid in range(len(SYMBOLS))
    )


def _snapshots(ing: Ingest) -> set[int]:
    books, _ = ing.drain()
    sids = set(books[(books["flags"] & FLAG_SNAPSHOT) != 0]["symbol_id"].tolist())
    return sids if len(sids) == len(SYMBOLS) else set()


def _assert_ordered(recs: Records) -> None:
    assert recs["seq"][0] == 0
    assert np.all(np.diff(recs["seq"]) == 1)


def test_ingest_simex_feed_publishes_ordered_stamped_books_and_trades_per_symbol(ingest, run_dir):
    sub = connect_sub(ingest.pub, [wake_topic("md")])
    try:
        eventually(lambda: _seen_every_symbol(ingest, 20, 3) and _snapshots(ingest), timeout_s=10)
        woke = eventually(lambda: sub.recv(0.05), timeout_s=3)
    finally:
        sub.close()
    books, trades = ingest.drain()

    _assert_ordered(books)
    _assert_ordered(trades)
    assert ingest.book.dropped_total == ingest.trade.dropped_total == 0
    for recs in (books, trades):
        assert np.all(recs["ts_event_ns"] > 0)
        assert np.all(recs["ts_event_ns"] <= recs["ts_recv_ns"])
        assert np.all(recs["ts_recv_ns"] <= recs["ts_pub_ns"])
        assert np.all(np.diff(recs["ts_pub_ns"]) >= 0)
    live = books[(books["flags"] & (FLAG_SNAPSHOT | FLAG_STALE | FLAG_CROSSED)) == 0]
    assert len(live) >= 20
    assert np.all((live["n_bids"] >= 0) & (live["n_bids"] <= 15))
    assert np.all((live["n_asks"] >= 0) & (live["n_asks"] <= 15))
    assert live["n_bids"].max() >= 2
    assert live["n_asks"].max() >= 2
    two_sided = live[(live["n_bids"] > 0) & (live["n_asks"] > 0)]
    assert len(two_sided) > len(live) // 2
    assert np.all(two_sided["bid_px"][:, 0] < two_sided["ask_px"][:, 0])
    for rec in live:  # valid levels best first; unused levels are NaN
        nb, na = int(rec["n_bids"]), int(rec["n_asks"])
        assert np.all(np.diff(rec["bid_px"][:nb]) < 0)
        assert np.isnan(rec["bid_px"][nb:]).all()  # unused levels are NaN
        assert np.all(np.diff(rec["ask_px"][:na]) > 0)
        assert np.isnan(rec["ask_px"][na:]).all()
        assert np.all(rec["bid_qty"][:nb] > 0)
        assert np.all(rec["ask_qty"][:na] > 0)
    snaps = books[(books["flags"] & FLAG_SNAPSHOT) != 0]
    assert set(snaps["symbol_id"].tolist()) == set(range(len(SYMBOLS)))  # start-up resync
    assert set(np.unique(trades["side"]).tolist()) <= {-1, 1}
    assert np.all((trades["px"] > 0) & (trades["qty"] > 0))
    assert woke is not None
    assert woke[0] == wake_topic("md")
    counters = eventually(lambda: ingest.counters().get("msgs_per_s", 0) > 0 and ingest.counters())
    assert counters["stale_symbols"] == 0
    assert counters["last_seq"] >= int(books["seq"][-1])
    assert counters["decode_errors_total"] == 0


def _stale_books(ing: Ingest, sid: int) -> Records:
    books, _ = ing.drain()
    mine: Records = books[books["symbol_id"] == sid]
    stale: Records = mine[(mine["flags"] & FLAG_STALE) != 0]
    return stale


def _stale_count(ing: Ingest, sid: int) -> int:
    return len(_stale_books(ing, sid))


def test_ingest_paused_market_data_marks_stale_then_resume_clears(sx, ingest):
    eventually(lambda: _seen_every_symbol(ingest, 5, 0), timeout_s=10)
    control(sx, "/_simex/faults", {"pause_md": True})

    for sid in range(len(SYMBOLS)):
        eventually(partial(_stale_count, ingest, sid), timeout_s=5)
    stale_health = eventually(lambda: ingest.counters().get("stale_symbols") == len(SYMBOLS))
    control(sx, "/_simex/faults", {"pause_md": False})
    mark = len(ingest.all_books())
    eventually(lambda: ingest.counters().get("stale_symbols") == 0, timeout_s=5)
    eventually(lambda: _seen_every_symbol(ingest, 5, 0) and len(ingest.drain()[0]) > mark + 10)

    assert stale_health
    books = ingest.all_books()
    stale = books[(books["flags"] & FLAG_STALE) != 0]
    assert np.all(stale["ts_event_ns"] <= stale["ts_recv_ns"])
    assert np.all(stale["ts_recv_ns"] <= stale["ts_pub_ns"])
    assert np.all(stale["ts_event_ns"] > 0)  # a copy of the last real book keeps its stamp
    for sid in range(len(SYMBOLS)):
        mine = books[books["symbol_id"] == sid]
        last_stale = np.flatnonzero(mine["flags"] & FLAG_STALE)[-1]
        after = mine[last_stale + 1 :]
        assert len(after) > 0
        assert np.all((after["flags"] & FLAG_STALE) == 0)  # fresh data clears the verdict
    _assert_ordered(books)


def test_ingest_ws_drop_reconnects_resubscribes_and_publishes_snapshot(sx, ingest):
    eventually(lambda: _seen_every_symbol(ingest, 5, 1), timeout_s=10)
    books, trades = ingest.drain()
    snaps_before = int(np.count_nonzero(books["flags"] & FLAG_SNAPSHOT))
    n_books, n_trades = len(books), len(trades)

    dropped = control(sx, "/_simex/ws/drop", {"scope": "public"})
    eventually(lambda: ingest.counters().get("reconnects_total", 0) >= 1, timeout_s=5)

    def snapshot_then_flow() -> bool:
        bk, tr = ingest.drain()
        snap_at = np.flatnonzero(bk["flags"] & FLAG_SNAPSHOT)
        after = bk[snap_at[-1] + 1 :]
        return (
            len(snap_at) >= snaps_before + len(SYMBOLS)
            and len(set(after["symbol_id"].tolist())) == len(SYMBOLS)  # resubscribed
            and len(tr) > n_trades
        )

    eventually(snapshot_then_flow, timeout_s=5)
    books, trades = ingest.drain()
    assert dropped["dropped"] >= 1
    new_snaps = books[n_books:][(books[n_books:]["flags"] & FLAG_SNAPSHOT) != 0]
    assert set(new_snaps["symbol_id"].tolist()) == set(range(len(SYMBOLS)))
    assert np.all((books[n_books:]["flags"] & FLAG_STALE) == 0)  # back well within stale_after
    _assert_ordered(books)
    _assert_ordered(trades)


def test_ingest_sigterm_exits_zero_and_unlinks_rings(ingest):
    eventually(lambda: _seen_every_symbol(ingest, 1, 0), timeout_s=10)
    assert (SHM_DIR / ingest.book_ring).exists()

    rc = ingest.stop()

    assert rc == 0, ingest.log()
    assert not (SHM_DIR / ingest.book_ring).exists()
    assert not (SHM_DIR / ingest.trade_ring).exists()
    log = ingest.log()
    assert "stopping (SIGTERM)" in log
    assert "Traceback" not in log


def test_ingest_bad_config_exits_78(tmp_path: Path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(
        '[ingest]\nsymbols = []\n[ingest.runtime]\npub_endpoint = "ipc:///tmp/x.pub"\n'
        'control_endpoint = "ipc:///tmp/x.ctl"\n'
    )
    out = subprocess.run(
        [sys.executable, "-m", "procs.ingest", str(cfg)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 78, out.stdout + out.stderr
    assert "$.ingest" in out.stdout + out.stderr


def test_ingest_depth_books_channel_publishes_local_book_tops(sx, tmp_path, run_dir, ns):
    with run_ingest(sx, tmp_path, run_dir, ns, 'depth_channel = "depth_books"') as ing:
        eventually(lambda: _seen_every_symbol(ing, 20, 1), timeout_s=10)
        books, _ = ing.drain()
        counters = ing.counters()

    ws_books = books[books["ts_event_ns"] != books["ts_recv_ns"]]  # REST snapshots share both
    assert counters["decode_errors_total"] == 0
    for sid in range(len(SYMBOLS)):
        mine = ws_books[ws_books["symbol_id"] == sid]
        assert int(mine[0]["flags"]) & FLAG_SNAPSHOT  # first push after subscribe
        assert np.all((mine[1:]["flags"] & (FLAG_SNAPSHOT | FLAG_CROSSED)) == 0)
        two_sided = mine[(mine["n_bids"] > 0) & (mine["n_asks"] > 0)]
        assert len(two_sided) > 10
        assert np.all(two_sided["bid_px"][:, 0] < two_sided["ask_px"][:, 0])
        assert np.all(mine["n_bids"] <= 15)


def test_ingest_started_before_simex_waits_for_it_without_refusal_warnings(tmp_path, run_dir, ns):
    sx_cfg = write_config(tmp_path)
    ports = tomllib.loads(sx_cfg.read_text())["simex"]
    urls = SimpleNamespace(
        rest_url=f"http://127.0.0.1:{ports['rest_port']}",
        ws_public_url=f"ws://127.0.0.1:{ports['ws_port']}/public/",
    )
    cfg = tmp_path / "ingest.toml"
    cfg.write_text(ingest_toml(urls, run_dir))  # type: ignore[arg-type]
    log_path = tmp_path / "ingest.log"
    env = {**os.environ, "BITRADER_RUN_DIR": str(run_dir), "BITRADER_NS": ns}
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "procs.ingest", str(cfg)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    ctl = f"ipc://{run_dir}/ingest.ctl"
    try:
        eventually(lambda: "to accept connections" in log_path.read_text(), timeout_s=30)
        waiting = query_health(ctl, 5.0)  # it answers health while it waits
        rings_first = (SHM_DIR / f"{ns}.ingest.md.book").exists()  # readers can attach meanwhile
        with run_simex(sx_cfg):
            eventually(lambda: (SHM_DIR / f"{ns}.ingest.md.book").exists(), timeout_s=30)
            with attach_reader(f"{ns}.ingest.md.book", BOOK_V1, 5.0, from_start=True) as book:
                eventually(lambda: len(book.poll(64)) > 0, timeout_s=30)
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    log = log_path.read_text(errors="replace")

    assert rc == 0, log
    assert waiting["proc"] == "ingest"
    assert rings_first
    assert "waiting up to 30s for the venue at 127.0.0.1:" in log
    assert "the venue accepts connections after" in log
    for noise in ("Connect call failed", "ConnectionRefused", "retrying", "level=WARNING"):
        assert noise not in log, log
