"""CaptureProc with real in-memory rings and a real CaptureWriter: bytes in equal bytes out."""

from __future__ import annotations

import errno
from collections import deque
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import msgspec
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from ipc.orders import BreakerEvent, FillEvent, OrderEvent, PositionEvent, RiskEvent
from procs._config import RuntimeConfig
from procs.capture.proc import (
    KIND_FILL,
    KIND_ORDER,
    KIND_POSITION,
    ORDER_DTYPE,
    RING_DTYPES,
    STREAM_ORDERS,
    CaptureConfig,
    CaptureProc,
    CountingWriter,
    make_metrics,
    make_streams,
    order_row,
)
from procs.tickstore import STREAM_BOOK, STREAM_FEAT, STREAM_SIG
from procs.tickstore.store import CaptureReader, read_stream
from shm.records import Records
from shm.ring import RingReader, RingSpec, RingWriter
from tests.helpers.poll import eventually

T_CAPTURE = 1_767_225_600_123_456_789


def random_records(rng: np.random.Generator, dtype: np.dtype, n: int) -> Records:
    """Random bytes, padding included: a byte comparison then checks every byte."""
    return np.frombuffer(rng.bytes(n * dtype.itemsize), dtype=dtype).copy()


def make_config(tmp_path: Path, ns: str, **kw: object) -> CaptureConfig:
    runtime = RuntimeConfig(
        pub_endpoint=f"ipc://{tmp_path}/c.pub", control_endpoint=f"ipc://{tmp_path}/c.ctl"
    )
    fields: dict[str, object] = {
        "runtime": runtime,
        "directory": str(tmp_path / "cap"),
        "book_ring": f"{ns}.ingest.md.book",
        "trade_ring": f"{ns}.ingest.md.trade",
        "feat_ring": f"{ns}.features.feat",
        "sig_ring": f"{ns}.inference.sig",
        "symbols": ["BTCUSDT", "ETHUSDT"],
        "batch_max": 64,
        "attach_retry_s": 0.01,
        **kw,
    }
    return CaptureConfig(**fields)  # type: ignore[arg-type]


class FakeSub:
    def __init__(self) -> None:
        self.queue: deque[tuple[bytes, bytes]] = deque()
        self.closed = False

    def recv(self, timeout_s: float) -> tuple[bytes, bytes] | None:
        assert timeout_s == 0
        return self.queue.popleft() if self.queue else None

    def close(self) -> None:
        self.closed = True


class Clock:
    def __init__(self, t: int = 0) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t


def make_proc(
    config: CaptureConfig, sub: FakeSub | None = None, mono: Clock | None = None
) -> tuple[CaptureProc, CountingWriter]:
    streams = dict(make_streams(config))
    if sub is not None:
        streams[STREAM_ORDERS] = ORDER_DTYPE
    writer = CountingWriter(config.directory, streams=streams, flush_s=0.05)
    proc = CaptureProc(
        config,
        sink=writer,
        metrics=make_metrics(CollectorRegistry()),
        orders=sub,
        clock_ns=lambda: T_CAPTURE,
        mono_ns=mono or Clock(),
    )
    return proc, writer


@pytest.fixture
def writers(tmp_path: Path, ns: str) -> Iterator[dict[str, RingWriter]]:
    cfg = make_config(tmp_path, ns)
    out = {
        stream: RingWriter(RingSpec(name=name, dtype=RING_DTYPES[stream], capacity=1024))
        for stream, name in cfg.ring_names().items()
    }
    yield out
    for w in out.values():
        w.close()


def drain(proc: CaptureProc, max_steps: int = 1000) -> int:
    total = 0
    for _ in range(max_steps):
        n = proc.step()
        if n == 0:
            return total
        total += n
    raise AssertionError("capture never drained")


def read_all(path: Path) -> dict[str, Records]:
    with CaptureReader(path) as r:
        return {s: r.read(s) for s in r.streams}


def order_events() -> list[tuple[bytes, object]]:
    d = Decimal
    stamps = (1, 2, 3, 4, 5, 6)
    return [
        (b"ord.BTCUSDT.", OrderEvent(10, *stamps, "c1", "o1", "BTCUSDT", "BUY", "LIMIT", "GTC",
                                     d("0.01"), d("60000.5"), "NEW", "NEW_INTENT", d(0), d(0),
                                     d(0), reason="r")),
        (b"ord.ETHUSDT.", OrderEvent(11, *stamps, "c2", "o2", "ETHUSDT", "SELL", "MARKET",
                                     "IOC", d("1"), None, "FILLED", "NEW", d("1"), d("3000"),
                                     d("0.6"), reduce_only=True)),
        (b"fill.BTCUSDT.", FillEvent(12, *stamps, "f1", "c1", "o1", "BTCUSDT", "BUY", "BOTH",
                                     d("0.01"), d("60000.5"), d("0.12"))),
        (b"pos.BTCUSDT.", PositionEvent(13, 7, "BTCUSDT", "BOTH", d("-0.5"), d("60000"),
                                        d("1.5"), d("-2"), d("0.3"), d("0.01"), d("60001"))),
        (b"risk.", RiskEvent(14, 8, "c3", "BTCUSDT", "max_position", "too big")),
        (b"brk.", BreakerEvent(15, 9, "ACTIVE", "HALTED", "drawdown", "-5%")),
    ]  # fmt: skip


def expected_orders(events: list[tuple[bytes, object]]) -> Records:
    out: Records = np.zeros(len(events), ORDER_DTYPE)
    ids = {"BTCUSDT": 0, "ETHUSDT": 1}
    for i, (_, ev) in enumerate(events):
        for k, v in order_row(ev, T_CAPTURE, ids).items():  # type: ignore[arg-type]
            out[i][k] = v
    return out


def test_capture_rings_to_hdf5_bytes_identical_per_stream(tmp_path, ns, writers):
    rng = np.random.default_rng(7)
    proc, writer = make_proc(make_config(tmp_path, ns))
    sent: dict[str, list[Records]] = {s: [] for s in writers}
    for _ in range(5):  # several batches, some larger than batch_max (64)
        for stream, w in writers.items():
            batch = random_records(rng, RING_DTYPES[stream], int(rng.integers(1, 150)))
            w.publish(batch)
            sent[stream].append(batch)
        drain(proc)
    path = writer.path
    proc.close()

    got = read_all(path)
    assert set(got) == set(writers)
    for stream, parts in sent.items():
        want = b"".join(p.tobytes() for p in parts)
        assert got[stream].dtype == RING_DTYPES[stream]
        assert got[stream].tobytes() == want, stream


def test_capture_order_events_stored_as_order_v2_rows(tmp_path, ns):
    sub = FakeSub()
    events = order_events()
    enc = msgspec.msgpack.Encoder()
    sub.queue.extend((topic, enc.encode(ev)) for topic, ev in events)
    sub.queue.append((b"ord.BTCUSDT.", b"\x01not msgpack of an event"))
    proc, writer = make_proc(make_config(tmp_path, ns, streams=["sig"]), sub=sub)
    assert drain(proc) == len(events)
    assert proc.health()["orders_malformed_total"] == 1
    path = writer.path
    proc.close()
    assert sub.closed

    got = read_all(path)[STREAM_ORDERS]
    with CaptureReader(path) as r:
        name, gaps = r.dtype_name(STREAM_ORDERS), r.gaps()
    assert name == "ORDER_V2"
    assert got.dtype == ORDER_DTYPE
    assert got.tobytes() == expected_orders(events).tobytes()
    assert gaps.size == 0  # seq 10..15, every topic captured: no gap
    assert got["symbol_id"].tolist() == [0, 1, 0, 0, 0, -1]
    # rows without a tick behind them carry their own time as ts_recv_ns, never 0
    assert got["ts_recv_ns"].tolist() == [2, 2, 2, 7, 8, 9]
    assert list(got["kind"][:4]) == [KIND_ORDER, KIND_ORDER, KIND_FILL, KIND_POSITION]
    assert list(got["side"][:3]) == [1, -1, 1]
    assert np.isnan(got["price"][1])
    assert got["price"][0] == 60000.5
    assert got["client_id"][0] == b"c1"
    assert got["status"][5] == b"HALTED"
    assert got["qty"][3] == -0.5
    assert got["reduce_only"][1] == 1
    assert (got["ts_capture_ns"] == T_CAPTURE).all()


def test_capture_ring_appearing_later_is_attached_on_retry(tmp_path, ns):
    mono = Clock()
    cfg = make_config(tmp_path, ns, streams=["md.trade"], attach_retry_s=1.0)
    proc, writer = make_proc(cfg, mono=mono)
    assert proc.step() == 0
    assert proc.health()["attached"] == ""
    rng = np.random.default_rng(1)
    with RingWriter(
        RingSpec(name=cfg.trade_ring, dtype=RING_DTYPES["md.trade"], capacity=256)
    ) as w:
        batch = random_records(rng, RING_DTYPES["md.trade"], 10)
        w.publish(batch)
        mono.t = 500_000_000  # before the retry is due: still not attached
        assert proc.step() == 0
        mono.t = 1_000_000_000
        assert drain(proc) == 10  # attached from the start: records published before attach
        assert proc.health()["attached"] == "md.trade"
        path = writer.path
        proc.close()
    assert read_all(path)["md.trade"].tobytes() == batch.tobytes()


def test_capture_writer_restart_is_followed_and_captured(tmp_path, ns):
    cfg = make_config(tmp_path, ns, streams=["feat"])
    proc, writer = make_proc(cfg)
    rng = np.random.default_rng(2)
    dtype = RING_DTYPES["feat"]
    first, second = random_records(rng, dtype, 20), random_records(rng, dtype, 30)
    spec = RingSpec(name=cfg.feat_ring, dtype=dtype, capacity=256)
    with RingWriter(spec) as w:
        w.publish(first)
        assert drain(proc) == 20
    with RingWriter(spec) as w:  # a restarted writer: a new segment under the same name
        w.publish(second)
        eventually(lambda: proc.step() > 0, timeout_s=5)  # reader notices it when idle
        drain(proc)
        assert proc.health()["feat.reattach_total"] == 1
        path = writer.path
        proc.close()
    assert read_all(path)["feat"].tobytes() == first.tobytes() + second.tobytes()


def test_capture_lapped_reader_counts_drops_writer_unaffected(tmp_path, ns):
    cfg = make_config(tmp_path, ns, streams=["md.book"], batch_max=8)
    proc, writer = make_proc(cfg)
    rng = np.random.default_rng(3)
    dtype = RING_DTYPES["md.book"]
    with RingWriter(RingSpec(name=cfg.book_ring, dtype=dtype, capacity=16)) as w:
        assert proc.step() == 0  # attached at the (empty) live edge
        batches = [random_records(rng, dtype, 16) for _ in range(10)]
        for b in batches:
            w.publish(b)  # the writer never waits for the reader
        assert w.next_seq == 160
        got = drain(proc)
        h = proc.health()
        path = writer.path
        proc.close()
    assert got == 16  # only what the ring still held
    assert h["ring_dropped_total"] == 144
    assert h["md.book.ring_dropped_total"] == 144
    assert h["ring_dropped_total"] + got == 160
    assert read_all(path)["md.book"].tobytes() == batches[-1].tobytes()


class DiskFullWriter(CountingWriter):
    """A real writer whose write seam raises ENOSPC while ``full`` is set (as HDF5 would)."""

    full = False

    def _write_rows(self, st, records):  # type: ignore[no-untyped-def]
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        super()._write_rows(st, records)


def seq_records(dtype: np.dtype, start: int, n: int) -> Records:
    recs: Records = np.zeros(n, dtype)
    recs["seq"] = np.arange(start, start + n)
    return recs


def test_capture_full_disk_write_error_pauses_counts_then_resumes_in_new_file(
    tmp_path, ns, writers, caplog
):
    cfg = make_config(tmp_path, ns, streams=["md.trade"], min_free_bytes=0)
    mono = Clock()
    writer = DiskFullWriter(cfg.directory, streams=dict(make_streams(cfg)), flush_s=0.05)
    proc = CaptureProc(cfg, sink=writer, metrics=make_metrics(CollectorRegistry()), mono_ns=mono)
    dtype = RING_DTYPES["md.trade"]
    writers["md.trade"].publish(seq_records(dtype, 0, 10))
    drain(proc)
    writer.flush()  # on disk: a failure later cannot take these
    writer.full = True
    writers["md.trade"].publish(seq_records(dtype, 10, 5))
    drain(proc)  # no exception: the failed write pauses writing
    writers["md.trade"].publish(seq_records(dtype, 15, 5))
    drain(proc)  # paused: dropped and counted
    h = proc.health()
    assert h["write_errors_total"] == 1
    assert h["write_paused"] == "write_failed"
    assert h["write_dropped_total"] == 10
    assert "capture writing paused (write_failed)" in caplog.text
    writer.full = False
    mono.t = 2_000_000_000  # the retry is due: the broken file is closed, a new one started
    writers["md.trade"].publish(seq_records(dtype, 20, 5))
    drain(proc)
    h = proc.health()
    proc.close()

    assert h["write_paused"] == "no"
    assert h["gap_records_total"] == 10
    assert "capture writing resumed" in caplog.text
    assert len(writer.paths) == 2
    first, second = read_all(writer.paths[0]), read_all(writer.paths[1])
    assert first["md.trade"]["seq"].tolist() == list(range(10))
    assert second["md.trade"]["seq"].tolist() == list(range(20, 25))
    with CaptureReader(writer.paths[1]) as r:
        [gap] = r.gaps().tolist()
    assert gap[1:] == (10, 20, 10, b"md.trade", b"write_failed")


def test_capture_low_disk_pauses_before_hdf5_sees_it_and_resumes_same_file(
    tmp_path, ns, writers, caplog
):
    free = [1 << 40]
    mono = Clock()
    cfg = make_config(tmp_path, ns, streams=["md.book"], min_free_bytes=1000)
    writer = CountingWriter(cfg.directory, streams=dict(make_streams(cfg)), flush_s=0.05)
    proc = CaptureProc(
        cfg,
        sink=writer,
        metrics=make_metrics(CollectorRegistry()),
        mono_ns=mono,
        disk_free=lambda: free[0],
    )
    dtype = RING_DTYPES["md.book"]
    writers["md.book"].publish(seq_records(dtype, 0, 4))
    drain(proc)
    free[0] = 999
    mono.t = 200_000_000
    writers["md.book"].publish(seq_records(dtype, 4, 6))
    drain(proc)
    assert proc.health()["write_paused"] == "low_disk"
    free[0] = 1500  # not yet twice the minimum: stays paused
    mono.t = 1_300_000_000
    proc.step()
    assert proc.health()["write_paused"] == "low_disk"
    free[0] = 2000
    mono.t = 2_400_000_000
    writers["md.book"].publish(seq_records(dtype, 10, 3))
    drain(proc)
    h = proc.health()
    proc.close()

    assert h["write_paused"] == "no"
    assert h["write_errors_total"] == 0  # HDF5 never failed
    assert h["md.book.write_dropped_total"] == 6
    assert writer.paths == [writer.path]  # the same file goes on
    assert read_all(writer.path)["md.book"]["seq"].tolist() == [0, 1, 2, 3, 10, 11, 12]
    with CaptureReader(writer.path) as r:
        [gap] = r.gaps().tolist()
    assert gap[1:] == (4, 10, 6, b"md.book", b"write_failed")


def test_capture_lapped_reader_writes_the_loss_into_gaps(tmp_path, ns):
    cfg = make_config(tmp_path, ns, streams=["md.trade"], batch_max=8, min_free_bytes=0)
    proc, writer = make_proc(cfg)
    dtype = RING_DTYPES["md.trade"]
    with RingWriter(RingSpec(name=cfg.trade_ring, dtype=dtype, capacity=16)) as w:
        w.publish(seq_records(dtype, 0, 4))
        drain(proc)
        for start in range(4, 44, 8):  # 40 more into a ring of 16: the reader is lapped
            w.publish(seq_records(dtype, start, 8))
        drain(proc)
        h = proc.health()
        path = writer.path
        proc.close()
    with CaptureReader(path) as r:
        seq = r.read("md.trade")["seq"]
        gaps = r.gaps()
    assert seq.tolist() == [0, 1, 2, 3, *range(28, 44)]  # what the ring still held
    assert gaps[["expected_seq", "seq", "lost"]].tolist() == [(4, 28, 24)]
    assert h["md.trade.ring_dropped_total"] == 24  # the same loss, counted by the reader
    assert gaps["reason"].tolist() == [b"lapped"]


def test_capture_orders_gap_in_publisher_seq_is_counted_unless_topics_filtered(tmp_path, ns):
    enc = msgspec.msgpack.Encoder()
    events = order_events()
    kept = [events[0], events[1], events[4], events[5]]  # seq 10, 11, 14, 15: 12, 13 lost
    for topics, want in ((None, [(12, 14, 2)]), (["ord.", "fill."], [])):
        sub = FakeSub()
        sub.queue.extend((t, enc.encode(ev)) for t, ev in kept)
        kw = {} if topics is None else {"order_topics": topics}
        cfg = make_config(tmp_path / str(topics), ns, streams=["sig"], **kw)
        proc, writer = make_proc(cfg, sub=sub)
        drain(proc)
        proc.close()
        with CaptureReader(writer.path) as r:
            gaps = r.gaps()
        assert gaps[["expected_seq", "seq", "lost"]].tolist() == want


def test_capture_config_rejects_unknown_field_and_empty_capture(tmp_path, ns):
    with pytest.raises(TypeError):
        make_config(tmp_path, ns, flush_seconds=1.0)
    with pytest.raises(ValueError, match="nothing to capture"):
        make_config(tmp_path, ns, streams=[])
    with pytest.raises(ValueError, match="end with"):
        make_config(tmp_path, ns, order_topics=["ord"])


def test_capture_health_reports_file_rate_and_flushes(tmp_path, ns, writers):
    mono = Clock()
    proc, writer = make_proc(make_config(tmp_path, ns), mono=mono)
    writers["md.trade"].publish(np.zeros(50, RING_DTYPES["md.trade"]))
    drain(proc)
    mono.t = 2_000_000_000
    writer.flush()
    h = proc.health()
    proc.close()
    assert h["file"] == str(writer.paths[-1])
    assert h["records_total"] == 50
    assert h["md.trade.records_total"] == 50
    assert h["records_per_s"] == pytest.approx(25.0)
    assert int(h["flushes_total"]) >= 1
    assert h["flushed_records_total"] == 50


def test_capture_rotation_by_size_keeps_every_record_across_files(tmp_path, ns, writers):
    rng = np.random.default_rng(4)
    cfg = make_config(tmp_path, ns, streams=["md.book"])
    dtype = RING_DTYPES["md.book"]
    writer = CountingWriter(
        cfg.directory, streams=dict(make_streams(cfg)), rotate_bytes=100 * dtype.itemsize
    )
    proc = CaptureProc(cfg, sink=writer, metrics=make_metrics(CollectorRegistry()))
    sent = [random_records(rng, dtype, 40) for _ in range(10)]
    for batch in sent:
        writers["md.book"].publish(batch)
        drain(proc)
    h = proc.health()
    proc.close()
    assert h["rotations_total"] == len(writer.paths) - 1
    assert len(writer.paths) >= 3
    got = read_stream(writer.paths, "md.book", dtype)
    assert got.tobytes() == b"".join(b.tobytes() for b in sent)


def test_disk_free_is_read_at_scrape_time_and_nan_when_unreadable(tmp_path):
    import math

    from prometheus_client import CollectorRegistry

    from procs.capture.proc import make_metrics, watch_disk

    registry = CollectorRegistry()
    m = make_metrics(registry)
    watch_disk(m, tmp_path)
    assert registry.get_sample_value("bitrader_capture_disk_free_bytes") > 0
    watch_disk(m, tmp_path / "gone")
    assert math.isnan(registry.get_sample_value("bitrader_capture_disk_free_bytes"))


class NoFileYetWriter(CountingWriter):
    """A real writer whose first ``opens_failing`` file creations fail (as on a full disk)."""

    opens_failing = 0

    def _open(self, now_ns):  # type: ignore[no-untyped-def]
        if NoFileYetWriter.opens_failing:
            NoFileYetWriter.opens_failing -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        super()._open(now_ns)


def test_capture_starting_on_a_full_disk_pauses_then_writes_and_counts(tmp_path, ns, writers):
    cfg = make_config(tmp_path, ns, streams=["md.trade"], min_free_bytes=0)
    mono = Clock()
    NoFileYetWriter.opens_failing = 2  # at start, and at the first retry
    writer = NoFileYetWriter(
        cfg.directory, streams=dict(make_streams(cfg)), flush_s=0.05, tolerate_failure=True
    )
    proc = CaptureProc(cfg, sink=writer, metrics=make_metrics(CollectorRegistry()), mono_ns=mono)
    dtype = RING_DTYPES["md.trade"]
    assert writer.paths == []
    assert proc.health()["write_paused"] == "write_failed"
    writers["md.trade"].publish(seq_records(dtype, 0, 7))
    drain(proc)
    mono.t = 1_500_000_000  # first retry: creating the file fails again
    proc.step()
    assert proc.health()["write_paused"] == "write_failed"
    mono.t = 3_000_000_000  # second retry: there is room
    writers["md.trade"].publish(seq_records(dtype, 7, 3))
    drain(proc)
    h = proc.health()
    proc.close()

    assert h["write_paused"] == "no"
    assert h["write_dropped_total"] == 7
    assert len(writer.paths) == 1
    with CaptureReader(writer.path) as r:
        assert r.read("md.trade")["seq"].tolist() == [7, 8, 9]
        [gap] = r.gaps().tolist()
    assert gap[1:] == (0, 7, 7, b"md.trade", b"write_failed")


def test_capture_stopping_while_paused_counts_the_dropped_in_the_file(tmp_path, ns, writers):
    free = [1 << 40]
    mono = Clock()
    cfg = make_config(tmp_path, ns, streams=["md.trade"], min_free_bytes=1000)
    writer = CountingWriter(cfg.directory, streams=dict(make_streams(cfg)), flush_s=0.05)
    proc = CaptureProc(
        cfg,
        sink=writer,
        metrics=make_metrics(CollectorRegistry()),
        mono_ns=mono,
        disk_free=lambda: free[0],
    )
    dtype = RING_DTYPES["md.trade"]
    writers["md.trade"].publish(seq_records(dtype, 0, 5))
    drain(proc)
    free[0], mono.t = 10, 200_000_000  # low disk: paused
    for start in (5, 9):
        writers["md.trade"].publish(seq_records(dtype, start, 4))
        drain(proc)
    proc.close()  # no later batch will reveal the gap: close writes it

    with CaptureReader(writer.path) as r:
        assert r.read("md.trade")["seq"].tolist() == [0, 1, 2, 3, 4]
        [gap] = r.gaps().tolist()
    assert gap[1:] == (5, 13, 8, b"md.trade", b"write_failed")


class RacingReader:
    """A real ``RingReader`` that lets the pipeline publish between any two ring reads."""

    def __init__(self, inner: RingReader, after_poll: Callable[[], None]) -> None:
        self._inner = inner
        self._after_poll = after_poll

    def poll_into(self, out: Records) -> int:
        got = self._inner.poll_into(out)
        self._after_poll()
        return got

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


def test_capture_step_holds_the_book_of_every_feat_and_sig_it_holds(tmp_path, ns, writers):
    # ingest, features and inference publish a book, its feat and its sig while capture is
    # between two ring reads; capture is then stopped (closed) after that one step: every feat
    # and sig it wrote must have its book in the file, or a replay cannot reproduce it
    seq = iter(range(1_000))

    def pipeline_publishes() -> None:
        k = next(seq)
        for stream in (STREAM_BOOK, STREAM_FEAT, STREAM_SIG):
            r = np.zeros(1, RING_DTYPES[stream])
            r["seq"], r["symbol_id"], r["ts_event_ns"], r["ts_recv_ns"] = k, 0, 10 * k, 10 * k + 1
            writers[stream].publish(r)

    def factory(name: str, dtype: np.dtype) -> RingReader:
        return RacingReader(RingReader(name, dtype, from_start=True), pipeline_publishes)  # type: ignore[return-value]

    pipeline_publishes()  # one of each before capture's first read
    cfg = make_config(tmp_path, ns)
    writer = CountingWriter(cfg.directory, streams=make_streams(cfg), flush_s=0.05)
    proc = CaptureProc(
        cfg, sink=writer, metrics=make_metrics(CollectorRegistry()), reader_factory=factory
    )
    proc.step()  # attaches and reads every ring once, the pipeline racing it
    path = writer.path
    proc.close()

    got = read_all(path)

    def keys(r: Records) -> set[tuple[int, int, int]]:
        cols = (r["symbol_id"].tolist(), r["ts_event_ns"].tolist(), r["ts_recv_ns"].tolist())
        return set(zip(*cols, strict=True))

    books = keys(got[STREAM_BOOK])
    assert got[STREAM_FEAT].size >= 1  # the race had something to take
    assert got[STREAM_SIG].size >= 1
    assert keys(got[STREAM_FEAT]) <= books, (got[STREAM_FEAT]["seq"], got[STREAM_BOOK]["seq"])
    assert keys(got[STREAM_SIG]) <= keys(got[STREAM_FEAT]), (
        got[STREAM_SIG]["seq"],
        got[STREAM_FEAT]["seq"],
    )
