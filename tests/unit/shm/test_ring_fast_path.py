"""The C hot path of publish, poll and poll_into (shm/_ringc.c) against a pure-Python model of the
protocol (tests/helpers/ring_reference.py): same bytes in the segment, same records out, never
torn, drops counted identically."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from shm.records import BENCH_V1, Records
from shm.ring import RingReader, RingSpec, RingWriter
from shm.segment import attach_segment, close_segment
from tests.helpers.ring_records import make_batch, torn_count
from tests.helpers.ring_reference import RefReader, RefWriter, SlowWriter

CAPACITIES = st.sampled_from([1, 2, 4, 8, 16])
SETTINGS = settings(max_examples=150, deadline=None)


def _name() -> str:
    return f"f{os.environ.get('PYTEST_XDIST_WORKER', 'gw')}{uuid.uuid4().hex[:8]}.test.fast"


@contextmanager
def _readers(capacity: int) -> Iterator[tuple[RingWriter, RingReader, RefReader]]:
    w = RingWriter(RingSpec(name=_name(), dtype=BENCH_V1, capacity=capacity))
    fast, general = RingReader(w.name, BENCH_V1), RefReader(w.name, BENCH_V1, capacity)
    try:
        yield w, fast, general
    finally:
        general.close()
        fast.close()
        w.close()


class _Outs:
    """One preallocated poll_into buffer per size, reused like a latency loop would."""

    def __init__(self) -> None:
        self._by_size: dict[int, Records] = {}

    def get(self, size: int) -> Records:
        if size not in self._by_size:
            self._by_size[size] = np.full(size, -1, BENCH_V1)
        return self._by_size[size]


def _poll_both(
    fast: RingReader, general: RefReader, outs: tuple[_Outs, _Outs], m: int, *, into: bool
) -> Records:
    if into:
        out_f, out_g = outs[0].get(m), outs[1].get(m)
        n_f, n_g = fast.poll_into(out_f), general.poll_into(out_g)
        got_f, got_g = out_f[:n_f].copy(), out_g[:n_g].copy()
    else:
        got_f, got_g = fast.poll(m), general.poll(m)
    assert got_f.tobytes() == got_g.tobytes()
    assert (fast.cursor, fast.dropped_total) == (general.cursor, general.dropped_total)
    assert got_f.flags.writeable
    assert got_f.flags.c_contiguous
    return got_f


@SETTINGS
@given(
    capacity=CAPACITIES,
    ops=st.lists(
        st.tuples(st.sampled_from(["pub", "poll", "into"]), st.integers(0, 16)),
        min_size=1,
        max_size=60,
    ),
)
# the spinning reader: idle poll, then one record per poll, results kept
@example(capacity=2, ops=[("poll", 1), ("pub", 1), ("poll", 1), ("pub", 1), ("poll", 1)])
def test_ring_fast_poll_matches_general_path_records_and_drops(capacity, ops):
    seqs: list[int] = []
    kept: list[Records] = []  # every poll result, to show none is ever written again
    torn = 0
    outs = (_Outs(), _Outs())
    with _readers(capacity) as (w, fast, general):
        for op, k in ops:
            if op == "pub":  # mostly single records: the latency case
                size = 1 if k < 8 else k % 3
                w.publish(make_batch(w.next_seq, min(size, capacity)))
                continue
            got = _poll_both(fast, general, outs, max(k % 4, 1), into=op == "into")
            seqs.extend(got["seq"].tolist())
            kept.append(got)
            torn += torn_count(got)
        kept.append(_poll_both(fast, general, outs, 20 * capacity, into=False))
        seqs.extend(kept[-1]["seq"].tolist())
        published, dropped = w.next_seq, fast.dropped_total

    assert [s for batch in kept for s in batch["seq"].tolist()] == seqs
    assert sum(torn_count(batch) for batch in kept) == 0
    assert torn == 0
    assert seqs == sorted(set(seqs))
    assert len(seqs) + dropped == published


@SETTINGS
@given(
    capacity=CAPACITIES,
    steps=st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(1, 3), st.booleans()),
        min_size=1,
        max_size=40,
    ),
)
def test_ring_fast_poll_mid_write_never_torn_and_drops_like_general(capacity, steps):
    seqs: list[int] = []
    torn = 0
    outs = (_Outs(), _Outs())
    with _readers(capacity) as (w, fast, general):
        slow = SlowWriter(w.name, capacity)
        try:
            for n_raw, done_raw, m, into in steps:
                n = min(n_raw, capacity)
                done = min(done_raw, n)
                first = slow.next_seq
                slow.claim(n)
                slow.write(first, done, torn=False)
                slow.write(first + done, n - done, torn=True)  # both polls land here
                for _ in range(2):
                    got = _poll_both(fast, general, outs, m, into=into)
                    seqs.extend(got["seq"].tolist())
                    torn += torn_count(got)
                slow.write(first + done, n - done, torn=False)
                slow.publish(n)
            seqs.extend(_poll_both(fast, general, outs, 20 * capacity, into=False)["seq"].tolist())
            published, dropped = slow.next_seq, fast.dropped_total
        finally:
            slow.close()

    assert torn == 0
    assert seqs == sorted(set(seqs))
    assert len(seqs) + dropped == published


@SETTINGS
@given(
    capacity=CAPACITIES,
    sizes=st.lists(st.integers(0, 16), min_size=1, max_size=40),
    strided=st.booleans(),
)
def test_ring_fast_publish_writes_same_segment_bytes_as_general(capacity, sizes, strided):
    fast = RingWriter(RingSpec(name=_name(), dtype=BENCH_V1, capacity=capacity))
    owner = RingWriter(RingSpec(name=_name(), dtype=BENCH_V1, capacity=capacity))
    general = RefWriter(owner.name, BENCH_V1, capacity)
    seg_f, seg_g = attach_segment(fast.name), attach_segment(owner.name)
    try:
        assert seg_f.buf is not None
        assert seg_g.buf is not None
        for k in sizes:
            n = min(k, capacity)
            batch = (
                make_batch(fast.next_seq, 2 * n)[::2] if strided else make_batch(fast.next_seq, n)
            )
            ends = fast.publish(batch), general.publish(batch)
            assert ends[0] == ends[1] == fast.next_seq == general.next_seq
            # counters and slots equal; the header differs only in created_ns and the name
            assert bytes(seg_f.buf[128:]) == bytes(seg_g.buf[128:])
    finally:
        close_segment(seg_f)
        close_segment(seg_g)
        general.close()
        owner.close()
        fast.close()


def test_poll_single_records_after_idle_polls_are_independent_copies(ring_name):
    with (
        RingWriter(RingSpec(name=ring_name, dtype=BENCH_V1, capacity=4)) as w,
        RingReader(ring_name, BENCH_V1) as r,
    ):
        got = []
        for seq in range(6):  # wraps: slots are reused under earlier results
            idle = r.poll(8)  # the spinning reader's idle poll, then one record
            w.publish(make_batch(seq, 1))
            got.append(r.poll(8))
        got[0]["seq"] = -1

    assert idle.size == 0
    assert [g["seq"].tolist() for g in got] == [[-1], [1], [2], [3], [4], [5]]
    assert len({id(g) for g in got}) == 6
    assert all(g.flags.writeable for g in got)
    assert torn_count(np.concatenate(got[1:])) == 0
