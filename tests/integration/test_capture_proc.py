"""``python -m procs.capture`` as a real process: clean stop, SIGKILL mid-write, lapped reader."""

from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from decimal import Decimal

import msgspec
import numpy as np
import pytest

from ipc.orders import FillEvent
from ipc.sockets import bind_pub
from procs.capture.proc import ORDER_DTYPE, RING_DTYPES, STREAM_ORDERS
from procs.tickstore.store import CaptureReader, list_captures, open_capture
from shm.records import Records
from shm.ring import RingSpec, RingWriter
from tests.conftest import free_port
from tests.helpers.md_path import Proc, capture_toml, start_proc
from tests.helpers.poll import eventually

pytestmark = pytest.mark.integration

RING_NAMES = {
    "md.book": "{ns}.ingest.md.book",
    "md.trade": "{ns}.ingest.md.trade",
    "feat": "{ns}.features.feat",
    "sig": "{ns}.inference.sig",
}


def random_records(rng: np.random.Generator, dtype: np.dtype, n: int) -> Records:
    return np.frombuffer(rng.bytes(n * dtype.itemsize), dtype=dtype).copy()


@pytest.fixture
def rings(ns: str) -> Iterator[dict[str, RingWriter]]:
    out = {
        s: RingWriter(RingSpec(name=n.format(ns=ns), dtype=RING_DTYPES[s], capacity=4096))
        for s, n in RING_NAMES.items()
    }
    yield out
    for w in out.values():
        w.close()


def counter(p: Proc, key: str) -> int:
    return int(p.counters().get(key, 0))


def test_capture_proc_sigterm_writes_clean_file_with_attrs(tmp_path, run_dir, ns, rings):
    rng = np.random.default_rng(11)
    pub = bind_pub(f"ipc://{run_dir}/execution.pub")
    extra = f'order_endpoints = ["ipc://{run_dir}/execution.pub"]'
    cap = start_proc("capture", capture_toml(tmp_path / "cap", extra), tmp_path, run_dir, ns)
    try:
        eventually(lambda: cap.counters().get("attached") == "md.book,md.trade,feat,sig", 15)
        sent = {s: random_records(rng, RING_DTYPES[s], 300) for s in rings}
        for s, w in rings.items():
            w.publish(sent[s])
        eventually(lambda: counter(cap, "records_total") == 1200, timeout_s=10)
        fill = FillEvent(1, 2, 3, 4, 5, 6, 7, "f", "c", "o", "BTCUSDT", "BUY", "BOTH",
                         Decimal("0.5"), Decimal("60000"), Decimal("0.1"))  # fmt: skip
        body = msgspec.msgpack.encode(fill)

        def fill_seen() -> bool:  # PUB/SUB drops until the subscription has propagated
            pub.send(b"fill.BTCUSDT.", body)
            return counter(cap, "orders.records_total") > 0

        eventually(fill_seen, timeout_s=10)
        pub.send(b"heartbeat.", body)  # not one of execution's topics: never stored
        assert cap.stop() == 0, cap.log()
    finally:
        pub.close()
        if cap.proc.poll() is None:
            cap.kill()

    [path] = list_captures(tmp_path / "cap")
    c = open_capture(path)
    assert c.clean
    assert c.attrs["config_hash"] == hashlib.sha256(cap.config_path.read_bytes()).hexdigest()
    assert c.attrs["symbols"] == ["BTCUSDT", "ETHUSDT"]
    assert c.attrs["venue"] == "simex"
    assert c.attrs["schema_version"] == 2
    for s, want in sent.items():
        assert c.streams[s].tobytes() == want.tobytes(), s
    orders = c.streams[STREAM_ORDERS]
    assert orders.dtype == ORDER_DTYPE
    assert orders.size >= 1
    assert set(orders["fill_id"]) == {b"f"}
    assert "stopping (SIGTERM)" in cap.log()
    h5dump = shutil.which("h5dump")  # test_capture_files requires it; here: if installed
    if h5dump:  # the process's own file, read by HDF5 1.10
        done = subprocess.run([h5dump, "-H", str(path)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert "error" not in (done.stdout + done.stderr).lower()


def test_capture_proc_sigkill_leaves_file_readable_to_last_flush(tmp_path, run_dir, ns, rings):
    rng = np.random.default_rng(12)
    text = capture_toml(tmp_path / "cap", 'streams = ["md.trade"]', flush_s=0.1)
    cap = start_proc("capture", text, tmp_path, run_dir, ns)
    w = rings["md.trade"]
    sent: list[Records] = []
    flushed = 0
    try:
        eventually(lambda: cap.counters().get("attached") == "md.trade", timeout_s=15)

        def write_until_flushed() -> bool:  # keep writing while capture flushes twice
            nonlocal flushed
            batch = random_records(rng, RING_DTYPES["md.trade"], 50)
            w.publish(batch)
            sent.append(batch)
            c = cap.counters()
            flushed = int(c.get("flushed_records_total", 0))
            return int(c.get("flushes_total", 0)) >= 3 and flushed >= 100

        eventually(write_until_flushed, timeout_s=15, interval_s=0.005)
        for _ in range(5):  # more writes after the flush we saw: these may be lost
            batch = random_records(rng, RING_DTYPES["md.trade"], 50)
            w.publish(batch)
            sent.append(batch)
        cap.proc.send_signal(signal.SIGKILL)
        assert cap.proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if cap.proc.poll() is None:
            cap.kill()

    [path] = list_captures(tmp_path / "cap")
    with CaptureReader(path) as r:
        assert not r.clean  # the writer never closed it
        got = r.read("md.trade")
    everything = b"".join(b.tobytes() for b in sent)
    assert got.size >= flushed  # all that the last observed flush wrote is still there
    assert got.tobytes() == everything[: got.nbytes]  # and it is an exact prefix


def test_capture_proc_lagging_counts_drops_instead_of_blocking(tmp_path, run_dir, ns):
    rng = np.random.default_rng(13)
    name = f"{ns}.ingest.md.book"
    dtype = RING_DTYPES["md.book"]
    extra = 'streams = ["md.book"]\nbatch_max = 16'
    port = free_port()
    text = capture_toml(tmp_path / "cap", extra, runtime_extra=f"metrics_port = {port}")
    with RingWriter(RingSpec(name=name, dtype=dtype, capacity=16)) as w:
        cap = start_proc("capture", text, tmp_path, run_dir, ns)
        try:
            eventually(lambda: cap.counters().get("attached") == "md.book", timeout_s=15)
            batch = random_records(rng, dtype, 16)
            for _ in range(5000):  # 80,000 records into 16 slots, as fast as the writer goes
                w.publish(batch)
            published = w.next_seq
            eventually(lambda: counter(cap, "ring_lag_records") == 0, timeout_s=10)
            c = cap.counters()
            metrics = _scrape(port)
            assert cap.stop() == 0, cap.log()
        finally:
            if cap.proc.poll() is None:
                cap.kill()
    assert published == 80_000
    dropped = int(c["md.book.ring_dropped_total"])
    assert dropped > 0
    [path] = list_captures(tmp_path / "cap")
    with CaptureReader(path) as r:
        captured = r.count("md.book")
    assert captured == int(c["md.book.records_total"])
    assert captured + dropped == published  # every record is either captured or counted
    book = 'proc="capture",ring="md.book"'
    assert f"bitrader_ring_dropped_records_total{{{book}}} {float(dropped)}" in metrics
    assert f"bitrader_ring_lag_records{{{book}}} 0.0" in metrics
    assert (
        f'bitrader_capture_records_total{{proc="capture",stream="md.book"}} {float(captured)}'
        in metrics
    )


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
        text: str = r.read().decode()
    return text


def test_capture_proc_unknown_config_field_exits_78(tmp_path, run_dir, ns):
    text = capture_toml(tmp_path / "cap", "flush_seconds = 1.0")
    cap = start_proc("capture", text, tmp_path, run_dir, ns)
    assert cap.proc.wait(timeout=15) == 78
    assert "flush_seconds" in cap.log()
    assert not (tmp_path / "cap").exists()  # nothing was created
