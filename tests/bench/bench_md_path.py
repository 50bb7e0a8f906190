"""md_path_latency: ts_recv_ns to signal across ingest -> features -> inference (real processes).

simex's generator is set so ingest receives ~1,000 WS messages/s (the rate is measured from
ingest's ``msgs_total`` and reported). A reader here, woken by inference's ``wake.sig.``, takes
``ts_sig_ns - ts_recv_ns`` per SIG_V1 record (``md_path_latency``) and ``time of read -
ts_recv_ns`` (``md_path_read``); capture runs too, as in production. Baseline, measured in the
same run over frames recorded from the same simex: the same pure functions chained in one
process with no hops (WsDispatcher decode -> normalise -> FeatureEngine.update -> OnnxModel.score),
timed from before the decode to after the score for each frame that carries a book.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from ipc.bitunix.schemas_ws import DepthPush, TradePush
from ipc.bitunix.ws_dispatch import WsDispatcher
from ipc.messages import WAKE_SIG, wake_topic
from ipc.sockets import WakeListener
from procs.featurecalc.engine import FEATURES, FeatureEngine
from procs.marketdata.normalise import BookBatch, SymbolMap, TradeBatch, add_depth, add_trades
from procs.models.model import OnnxModel
from shm.records import SIG_V1
from shm.ring import RingNotReady, attach_reader
from tests.bench._common import Result, percentiles_us
from tests.helpers.ingest_proc import SYMBOLS
from tests.helpers.md_path import MODEL, MdPath, run_md_path
from tests.helpers.poll import eventually
from tests.helpers.simex_proc import SimexProc, run_simex, write_config

EVENTS_PER_S = 450.0  # generator actions/s per symbol: ~1,000 md messages/s for two symbols
TARGET_MSGS_PER_S = 1000.0
GOAL = "p99 < 1000 us on the 2-core dev box (provisional)"


def record_frames(sx: SimexProc, n: int, timeout_s: float) -> list[bytes]:
    """Subscribe like ingest does (depth_book15, trade, price) and keep ``n`` push frames."""
    from websockets.sync.client import connect

    args = [{"symbol": s, "ch": ch} for s in SYMBOLS for ch in ("depth_book15", "trade", "price")]
    frames: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    with connect(sx.ws_public_url, max_size=1 << 22) as ws:
        ws.send(json.dumps({"op": "subscribe", "args": args}))
        while len(frames) < n and time.monotonic() < deadline:
            msg = ws.recv(timeout=1.0)
            data = msg.encode() if isinstance(msg, str) else msg
            if data.startswith(b'{"ch":'):
                frames.append(data)
    return frames


def inproc_chain_ns(frames: list[bytes], rounds: int) -> np.ndarray:
    """Per book frame: decode -> normalise -> features -> score, in one process, no hops."""
    symbols = SymbolMap(SYMBOLS)
    books, trades = BookBatch(64), TradeBatch(1024)
    disp = WsDispatcher()

    def on_depth(p: DepthPush) -> None:
        add_depth(books, symbols.id(p.symbol), p)

    def on_trade(p: TradePush) -> None:
        add_trades(trades, symbols.id(p.symbol), p)

    disp.on("depth_book15", on_depth)
    disp.on("trade", on_trade)
    disp.on("price", lambda p: None)
    model = OnnxModel.load(MODEL, FEATURES, batch_max=64)
    out: list[int] = []
    clock, wall = time.perf_counter_ns, time.time_ns
    for r in range(rounds + 1):  # round 0 warms caches, the model and the allocator: not kept
        engine = FeatureEngine(len(SYMBOLS))
        for payload in frames:
            t0 = clock()
            disp.on_text(payload, wall())
            if books.n:
                feats = engine.update(books.take(), trades.take(), ts_feat_ns=wall())
                score = model.score(feats["x"])
                assert np.isfinite(score).all()
                if r:
                    out.append(clock() - t0)
            books.clear()
            trades.clear()
    return np.asarray(out, dtype=np.int64)


def _msgs_total(md: MdPath) -> tuple[float, int]:
    return time.monotonic(), int(md.procs["ingest"].counters()["msgs_total"])


def _attach_sig(ns: str):  # type: ignore[no-untyped-def]
    try:
        return attach_reader(f"{ns}.inference.sig", SIG_V1, 0.01)
    except RingNotReady:
        return None


def measure_path(
    md: MdPath, ns: str, run_dir: Path, warmup_s: float, window_s: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Return (ts_sig - ts_recv, read time - ts_recv, ts_feat - ts_recv) in ns, and ingest's
    messages/s."""
    reader = eventually(lambda: _attach_sig(ns), timeout_s=20, interval_s=0.05)
    wake = WakeListener(f"ipc://{run_dir}/inference.pub", wake_topic(WAKE_SIG))
    sig_lat: list[np.ndarray] = []
    read_lat: list[np.ndarray] = []
    feat_lat: list[np.ndarray] = []
    try:
        end_warmup = time.monotonic() + warmup_s
        while time.monotonic() < end_warmup:
            wake.wait(0.01)
            reader.poll(4096)  # discard: processes still warming up
        t0, m0 = _msgs_total(md)
        end = t0 + window_s
        while time.monotonic() < end:
            wake.wait(0.01)
            batch = reader.poll(4096)
            if batch.size:
                now = time.time_ns()
                recv = batch["ts_recv_ns"]
                sig_lat.append(batch["ts_sig_ns"] - recv)
                read_lat.append(now - recv)
                feat_lat.append(batch["ts_feat_ns"] - recv)
        t1, m1 = _msgs_total(md)
        dropped = reader.dropped_total
    finally:
        wake.close()
        reader.close()
    assert dropped == 0, f"the bench reader was lapped ({dropped} records)"
    cat = np.concatenate
    return cat(sig_lat), cat(read_lat), cat(feat_lat), (m1 - m0) / (t1 - t0)


def run(quick: bool) -> list[Result]:
    warmup_s, window_s = (2.0, 5.0) if quick else (3.0, 20.0)
    n_frames, rounds = (1500, 2) if quick else (4000, 3)
    ns = f"bench{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="br-md-") as tmp:
        tmp_path = Path(tmp)
        run_dir = Path("/tmp") / f"br-{uuid.uuid4().hex[:10]}"
        run_dir.mkdir()
        (tmp_path / "sx").mkdir()
        market = f"[simex.market]\nevents_per_s = {EVENTS_PER_S}\n"
        try:
            with run_simex(write_config(tmp_path / "sx", market)) as sx:
                frames = record_frames(sx, n_frames, timeout_s=30)
                with run_md_path(sx, tmp_path, run_dir, ns) as md:
                    sig_ns, read_ns, feat_ns, rate = measure_path(
                        md, ns, run_dir, warmup_s, window_s
                    )
                    rcs = md.stop_all()
                assert set(rcs.values()) == {0}, md.logs()
        finally:
            for p in run_dir.iterdir():
                p.unlink()
            run_dir.rmdir()
    base_ns = inproc_chain_ns(frames, rounds)
    print(
        f"md_path: ingest received {rate:.0f} msgs/s (target {TARGET_MSGS_PER_S:.0f}); "
        f"{sig_ns.size} signals in {window_s:.0f} s; baseline {base_ns.size} book frames "
        f"of {len(frames)} recorded; p50 per hop: recv->feat "
        f"{np.median(feat_ns) / 1e3:.0f} us, feat->sig {np.median(sig_ns - feat_ns) / 1e3:.0f} us",
        file=sys.stderr,
    )
    out: list[Result] = []
    base = percentiles_us(base_ns)
    for name, samples in (("md_path_latency", sig_ns), ("md_path_read", read_ns)):
        for q, value, b in zip(("p50", "p99", "p99.9"), percentiles_us(samples), base, strict=True):
            out.append(Result(name, q, value, "us", "inproc_chain", b, GOAL if q == "p99" else ""))
    out.append(
        Result(
            "md_path_rate", "msgs_per_s", rate, "msg/s", "target_rate", TARGET_MSGS_PER_S, "~1.0"
        )
    )
    return out
