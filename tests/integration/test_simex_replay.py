"""simex with ``market.source = "replay"``: a capture's books reach WS subscribers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from websockets.sync.client import connect

from procs.ml.simcapture import write_sim_capture
from tests.helpers.simex_proc import rest, run_simex, write_config

pytestmark = pytest.mark.integration


def test_replay_source_serves_captured_books_over_ws_and_rest(tmp_path):
    cap = tmp_path / "cap"
    cap.mkdir()
    write_sim_capture(cap, seed=2, duration_s=3.0)
    extra = f"""
[[simex.symbols]]
symbol = "BTCUSDT"
start_price = "30000"
base_precision = 3
min_qty = "0.001"
[[simex.symbols]]
symbol = "ETHUSDT"
start_price = "2000"
base_precision = 2
quote_precision = 2
min_qty = "0.01"
[simex.market]
source = "replay"
replay_path = "{cap}"
replay_speed = 2.0
"""
    cfg = write_config(tmp_path, extra)

    with run_simex(cfg) as sx:
        _, depth = rest(sx, "GET", "/market/depth", {"symbol": "BTCUSDT", "limit": "5"}, key=None)
        with connect(sx.ws_public_url, ping_interval=None, open_timeout=5) as ws:
            assert json.loads(ws.recv(timeout=3))["op"] == "connect"
            ws.send(
                json.dumps(
                    {"op": "subscribe", "args": [{"symbol": "ETHUSDT", "ch": "depth_book5"}]}
                )
            )
            pushes = [json.loads(ws.recv(timeout=3)) for _ in range(3)]

    bids = depth["data"]["bids"]
    assert bids
    assert 25_000 < float(bids[0][0]) < 35_000
    assert all(p["ch"] == "depth_book5" for p in pushes)
    assert 1_500 < float(pushes[-1]["data"]["b"][0][0]) < 2_500


def test_replay_of_missing_path_exits_78(tmp_path):
    cfg = write_config(
        tmp_path, f'[simex.market]\nsource = "replay"\nreplay_path = "{tmp_path}/none"\n'
    )

    out = subprocess.run(
        [sys.executable, "-m", "procs.simex", str(cfg)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert out.returncode == 78
    assert "none" in out.stdout + out.stderr
