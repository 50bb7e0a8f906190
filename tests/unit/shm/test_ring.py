"""Unit tests for shm.ring: layout, publish/poll, lapping, torn-slot discard, restart detection."""

from __future__ import annotations

import gc
import os
import struct

import numpy as np
import pytest

from shm.records import BENCH_V1, BOOK_V1, TRADE_V1, dtype_crc
from shm.ring import (
    HEADER_BYTES,
    MAGIC,
    RingLayoutError,
    RingNotReady,
    RingReader,
    RingSpec,
    RingWriter,
    attach_reader,
)
from shm.segment import (
    PAGE,
    attach_segment,
    close_segment,
    create_segment,
    destroy_segment,
    unlink_segment,
)
from tests.helpers.pages import touch_pages
from tests.helpers.poll import eventually
from tests.helpers.ring_records import make_batch, torn_count


@pytest.fixture
def writer(ring_name):
    w = RingWriter(RingSpec(name=ring_name, dtype=BENCH_V1, capacity=8))
    yield w
    w.close()


@pytest.fixture
def reader(writer):
    r = RingReader(writer.name, BENCH_V1)
    yield r
    r.close()


@pytest.mark.parametrize("capacity", [0, -4, 3, 6, 1000])
def test_ringspec_capacity_not_power_of_two_rejected_naming_value(capacity):
    with pytest.raises(ValueError, match=f"positive power of two, was {capacity}"):
        RingSpec(name="x.test.r", dtype=BENCH_V1, capacity=capacity)


def test_ringspec_unregistered_dtype_rejected():
    dt = np.dtype([("seq", "<i8")])

    with pytest.raises(ValueError, match=r"registered in shm\.records"):
        RingSpec(name="x.test.r", dtype=dt, capacity=8)


@pytest.mark.parametrize("name", ["", "a/b"])
def test_ringspec_bad_name_rejected(name):
    with pytest.raises(ValueError, match="ring name"):
        RingSpec(name=name, dtype=BENCH_V1, capacity=8)


def test_writer_header_has_documented_layout(writer):
    seg = attach_segment(writer.name)
    try:
        buf = seg.buf
        assert buf is not None
        magic, version, size, cap, crc, pid = struct.unpack_from("<qIIqIi", buf, 0)
        name = bytes(buf[32:64]).rstrip(b"\0")
        writer.publish(make_batch(0, 3))
        claimed, published = struct.unpack_from("<q", buf, 128), struct.unpack_from("<q", buf, 256)
    finally:
        del buf
        close_segment(seg)

    assert (magic, version, size, cap, crc, pid) == (
        MAGIC,
        1,
        64,
        8,
        dtype_crc(BENCH_V1),
        os.getpid(),
    )
    assert name == b"BENCH_V1"
    assert (claimed, published) == ((3,), (3,))
    assert seg.size == HEADER_BYTES + 8 * 64


def test_publish_returns_seq_one_past_last(writer):
    first = writer.publish(make_batch(0, 3))
    second = writer.publish(make_batch(3, 2))
    empty = writer.publish(make_batch(5, 0))

    assert (first, second, empty, writer.next_seq) == (3, 5, 5, 5)


def test_publish_batch_larger_than_capacity_refused(writer):
    with pytest.raises(ValueError, match="batch of 9 exceeds capacity 8"):
        writer.publish(make_batch(0, 9))

    assert writer.next_seq == 0


def test_publish_other_dtype_refused(writer):
    with pytest.raises(ValueError, match="dtype"):
        writer.publish(np.zeros(2, TRADE_V1))


def test_publish_2d_refused_before_touching_counters(writer, reader):
    with pytest.raises(ValueError, match="1-d"):
        writer.publish(np.zeros((2, 2), BENCH_V1))

    assert (writer.next_seq, reader.lag_records) == (0, 0)


def test_publish_strided_batch_copies_the_selected_records(writer, reader):
    batch = make_batch(0, 8)[::2]

    writer.publish(batch)
    got = reader.poll(10)

    assert got["seq"].tolist() == [0, 2, 4, 6]


def test_reader_joins_at_live_edge(writer):
    writer.publish(make_batch(0, 5))

    with RingReader(writer.name, BENCH_V1) as r:
        before = r.poll(10)
        writer.publish(make_batch(5, 2))
        after = r.poll(10)

    assert before.size == 0
    assert after["seq"].tolist() == [5, 6]


def test_reader_from_start_gets_oldest_held(writer):
    writer.publish(make_batch(0, 8))
    writer.publish(make_batch(8, 3))

    with RingReader(writer.name, BENCH_V1, from_start=True) as r:
        got = r.poll(100)
        dropped = r.dropped_total

    assert got["seq"].tolist() == list(range(3, 11))
    assert dropped == 0


def test_poll_wraps_around_capacity_in_order(writer, reader):
    writer.publish(make_batch(0, 6))
    reader.poll(6)

    writer.publish(make_batch(6, 5))  # slots 6, 7, 0, 1, 2
    got = reader.poll(100)

    assert got["seq"].tolist() == [6, 7, 8, 9, 10]
    assert torn_count(got) == 0


def test_poll_respects_max_records_and_lag(writer, reader):
    writer.publish(make_batch(0, 7))

    first = reader.poll(3)
    lag = reader.lag_records
    rest = reader.poll(3)

    assert first["seq"].tolist() == [0, 1, 2]
    assert lag == 4
    assert rest["seq"].tolist() == [3, 4, 5]
    assert (reader.cursor, reader.lag_records) == (6, 1)


def test_poll_returns_private_writable_copy(writer, reader):
    writer.publish(make_batch(0, 4))

    got = reader.poll(4)
    got["seq"][:] = -1
    writer.publish(make_batch(4, 8))  # overwrites every slot

    assert got.flags.writeable
    assert got.flags.aligned
    assert got["seq"].tolist() == [-1, -1, -1, -1]
    assert reader.poll(100)["seq"].tolist() == list(range(4, 12))


@pytest.mark.parametrize("max_records", [0, -3])
def test_poll_nonpositive_max_records_refused(writer, reader, max_records):
    writer.publish(make_batch(0, 2))

    with pytest.raises(ValueError, match=f"max_records must be >= 1, was {max_records}"):
        reader.poll(max_records)

    assert reader.cursor == 0


def test_lapped_reader_skips_ahead_and_counts_dropped(writer, reader):
    for first in range(0, 20, 4):
        writer.publish(make_batch(first, 4))

    got = reader.poll(100)

    assert got["seq"].tolist() == list(range(12, 20))
    assert reader.dropped_total == 12
    assert reader.lag_records == 0


def test_reader_discards_slots_claimed_during_copy(writer, reader):
    writer.publish(make_batch(0, 8))
    seg = attach_segment(writer.name)
    buf = seg.buf
    assert buf is not None
    counters = buf[:HEADER_BYTES].cast("q")
    counters[16] = 11  # claimed: the writer is rewriting the slots of seqs 0, 1, 2
    buf[HEADER_BYTES : HEADER_BYTES + 64] = b"\xff" * 64  # half-written slot

    got = reader.poll(100)
    counters.release()
    del buf
    close_segment(seg)

    assert got["seq"].tolist() == [3, 4, 5, 6, 7]
    assert torn_count(got) == 0
    assert reader.dropped_total == 3
    assert reader.cursor == 8


def test_poll_into_fills_caller_buffer_across_wrap_and_lap(writer, reader):
    out = np.zeros(4, BENCH_V1)
    writer.publish(make_batch(0, 6))

    first = reader.poll_into(out)
    seqs_first = out["seq"][:first].tolist()
    second = reader.poll_into(out)
    seqs_second = out["seq"][:second].tolist()
    writer.publish(make_batch(6, 5))  # wraps: slots 6, 7, 0, 1, 2
    third = reader.poll_into(out)
    seqs_third = out["seq"][:third].tolist()
    for f in range(11, 31, 4):
        writer.publish(make_batch(f, 4))
    fourth = reader.poll_into(out)

    assert seqs_first == [0, 1, 2, 3]
    assert seqs_second == [4, 5]
    assert seqs_third == [6, 7, 8, 9]
    assert fourth == 4
    assert out["seq"].tolist() == [23, 24, 25, 26]
    assert torn_count(out) == 0
    assert reader.dropped_total == 23 - 10


def test_poll_into_discards_slots_claimed_during_copy(writer, reader):
    writer.publish(make_batch(0, 8))
    seg = attach_segment(writer.name)
    buf = seg.buf
    assert buf is not None
    counters = buf[:HEADER_BYTES].cast("q")
    counters[16] = 10  # claimed: the writer is rewriting the slots of seqs 0 and 1
    out = np.zeros(8, BENCH_V1)

    n = reader.poll_into(out)
    counters.release()
    del buf
    close_segment(seg)

    assert n == 6
    assert out["seq"][:n].tolist() == [2, 3, 4, 5, 6, 7]
    assert reader.dropped_total == 2


@pytest.mark.parametrize(
    "out",
    [np.zeros(4, TRADE_V1), np.zeros(8, BENCH_V1)[::2], np.zeros((2, 2), BENCH_V1)],
    ids=["dtype", "strided", "2d"],
)
def test_poll_into_bad_buffer_refused(reader, out):
    with pytest.raises(ValueError, match="poll_into needs"):
        reader.poll_into(out)


def test_poll_into_empty_buffer_refused_when_data_waits(writer, reader):
    writer.publish(make_batch(0, 1))

    with pytest.raises(ValueError, match="non-empty"):
        reader.poll_into(np.zeros(0, BENCH_V1))


def test_reader_missing_segment_not_ready(ring_name):
    with pytest.raises(RingNotReady, match="no segment"):
        RingReader(ring_name, BENCH_V1)


def test_reader_unset_magic_not_ready(ring_name):
    seg = create_segment(ring_name, HEADER_BYTES + 64 * 8)
    try:
        with pytest.raises(RingNotReady, match="header not published"):
            RingReader(ring_name, BENCH_V1)
    finally:
        destroy_segment(seg)


def test_reader_foreign_magic_refused(ring_name):
    seg = create_segment(ring_name, HEADER_BYTES + 64 * 8)
    assert seg.buf is not None
    seg.buf[:8] = b"NOTARING"
    try:
        with pytest.raises(RingLayoutError, match="not a bitrader ring"):
            RingReader(ring_name, BENCH_V1)
    finally:
        destroy_segment(seg)


def test_reader_dtype_crc_mismatch_refused_naming_both(writer):
    with pytest.raises(RingLayoutError) as info:
        RingReader(writer.name, TRADE_V1)

    msg = str(info.value)
    assert f"writer has BENCH_V1 (crc {dtype_crc(BENCH_V1):#010x}, 64 B)" in msg
    assert f"reader expects TRADE_V1 (crc {dtype_crc(TRADE_V1):#010x}, 64 B)" in msg


def test_reader_record_size_mismatch_refused(writer):
    with pytest.raises(RingLayoutError, match=r"reader expects BOOK_V1 .* 576 B"):
        RingReader(writer.name, BOOK_V1)


def test_attach_reader_times_out_not_ready(ring_name):
    with pytest.raises(RingNotReady, match="gave up after"):
        attach_reader(ring_name, BENCH_V1, timeout_s=0.05)


def test_attach_reader_returns_reader_when_ready(writer):
    with attach_reader(writer.name, BENCH_V1, timeout_s=1.0) as r:
        writer.publish(make_batch(0, 2))

        assert r.poll(10)["seq"].tolist() == [0, 1]


def test_writer_close_unlinks_reader_close_does_not(ring_name):
    w = RingWriter(RingSpec(name=ring_name, dtype=BENCH_V1, capacity=8))
    r = RingReader(ring_name, BENCH_V1)

    r.close()
    reader_left = os.path.exists(f"/dev/shm/{ring_name}")
    w.close()
    w.close()  # idempotent

    assert reader_left
    assert not os.path.exists(f"/dev/shm/{ring_name}")


def test_writer_replaces_stale_segment(ring_name):
    stale = create_segment(ring_name, 100)
    assert stale.buf is not None
    stale.buf[:8] = b"\xff" * 8
    close_segment(stale)  # left behind, as after a SIGKILL

    with RingWriter(RingSpec(name=ring_name, dtype=BENCH_V1, capacity=8)) as w:
        w.publish(make_batch(0, 2))
        with RingReader(ring_name, BENCH_V1, from_start=True) as r:
            got = r.poll(10)

    assert got["seq"].tolist() == [0, 1]


def test_reader_reattaches_to_restarted_writer_from_its_oldest(ring_name):
    old = RingWriter(RingSpec(name=ring_name, dtype=BENCH_V1, capacity=8))
    r = RingReader(ring_name, BENCH_V1)
    old.publish(make_batch(0, 3))
    assert r.poll(10)["seq"].tolist() == [0, 1, 2]
    new = RingWriter(RingSpec(name=ring_name, dtype=BENCH_V1, capacity=8))  # old never closed
    new.publish(make_batch(0, 2))
    seen: list[int] = []

    def drained_new() -> bool:
        seen.extend(r.poll(10)["seq"].tolist())
        return r.reattach_total == 1 and len(seen) >= 2

    eventually(drained_new, timeout_s=2)
    new.publish(make_batch(2, 1))
    later = r.poll(10)
    old.close()  # must not unlink the new writer's segment
    alive = os.path.exists(f"/dev/shm/{ring_name}")
    r.close()
    new.close()

    assert seen == [0, 1]
    assert later["seq"].tolist() == [2]
    assert r.dropped_total == 0
    assert alive


def test_unclosed_writer_and_reader_unmap_quietly_and_leave_the_name(ring_name):
    w = RingWriter(RingSpec(name=ring_name, dtype=BENCH_V1, capacity=8))
    r = RingReader(ring_name, BENCH_V1)
    w.publish(make_batch(0, 2))
    r.poll(10)

    del w, r
    gc.collect()
    left = os.path.exists(f"/dev/shm/{ring_name}")
    unlink_segment(ring_name)

    assert left


def test_ring_calls_after_close_raise_clear_errors(ring_name):
    w = RingWriter(RingSpec(name=ring_name, dtype=BENCH_V1, capacity=8))
    r = RingReader(ring_name, BENCH_V1)
    r.close()
    w.close()

    with pytest.raises(ValueError, match="closed"):
        w.publish(np.zeros(1, BENCH_V1))
    with pytest.raises(ValueError, match="closed"):
        r.poll(1)
    with pytest.raises(ValueError, match="closed"):
        r.poll_into(np.zeros(1, BENCH_V1))
    with pytest.raises(ValueError, match="closed"):
        _ = r.lag_records


def test_poll_into_refuses_bad_buffers_with_clear_errors(ring_name):
    with (
        RingWriter(RingSpec(name=ring_name, dtype=BENCH_V1, capacity=8)),
        RingReader(ring_name, BENCH_V1) as r,
    ):
        for bad, match in [
            (np.zeros(4, np.int64), "1-d C-contiguous"),
            (np.zeros((2, 2), BENCH_V1), "1-d C-contiguous"),
            (np.zeros(4, BENCH_V1)[::2], "1-d C-contiguous"),
            (np.zeros(0, BENCH_V1), "non-empty"),
        ]:
            with pytest.raises(ValueError, match=match):
                r.poll_into(bad)
        ro = np.zeros(2, BENCH_V1)
        ro.flags.writeable = False
        with pytest.raises(ValueError, match="writeable"):
            r.poll_into(ro)


def test_a_reader_maps_its_ring_when_it_attaches(ns):
    capacity = 1 << 12  # 576-byte records: ~580 pages
    with RingWriter(RingSpec(name=f"{ns}.test.mapped", dtype=BOOK_V1, capacity=capacity)) as w:
        r = RingReader(w.name, BOOK_V1)
        try:
            n_pages = len(r._buf) // PAGE  # its own mapping, faulted in by the attach
            assert touch_pages(r._buf, write=False) < n_pages // 64
        finally:
            r.close()
