"""Hypothesis properties of the ring: in order, never torn, delivered + dropped == published."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from shm.records import BENCH_V1, Records
from shm.ring import RingReader, RingSpec, RingWriter
from tests.helpers.ring_records import make_batch, torn_count
from tests.helpers.ring_reference import SlowWriter

CAPACITIES = st.sampled_from([1, 2, 4, 8, 16])
SETTINGS = settings(max_examples=150, deadline=None)


def _name() -> str:
    return f"h{os.environ.get('PYTEST_XDIST_WORKER', 'gw')}{uuid.uuid4().hex[:8]}.test.prop"


@contextmanager
def _ring(capacity: int) -> Iterator[tuple[RingWriter, RingReader]]:
    w = RingWriter(RingSpec(name=_name(), dtype=BENCH_V1, capacity=capacity))
    r = RingReader(w.name, BENCH_V1)
    try:
        yield w, r
    finally:
        r.close()
        w.close()


def _poll(r: RingReader, max_records: int, *, into: bool) -> Records:
    if not into:
        return r.poll(max_records)
    out = np.full(max_records, -1, BENCH_V1)  # garbage beyond n would show up as torn
    n = r.poll_into(out)
    return out[:n]


class _Delivered:
    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.torn = 0

    def add(self, batch: Records) -> None:
        self.seqs.extend(batch["seq"].tolist())
        self.torn += torn_count(batch)

    @property
    def ordered(self) -> bool:
        return all(a < b for a, b in zip(self.seqs, self.seqs[1:], strict=False))


@SETTINGS
@given(
    capacity=CAPACITIES,
    ops=st.lists(
        st.tuples(st.sampled_from(["pub", "poll", "into"]), st.integers(0, 16)),
        min_size=1,
        max_size=40,
    ),
)
def test_ring_random_publish_poll_ordered_untorn_and_accounted(capacity, ops):
    got = _Delivered()
    with _ring(capacity) as (w, r):
        for op, k in ops:
            if op == "pub":
                w.publish(make_batch(w.next_seq, min(k, capacity)))
                continue
            cursor, dropped_before = r.cursor, r.dropped_total
            got.add(_poll(r, max(k, 1), into=op == "into"))
            # a reader drops only what the writer already overwrote
            assert r.dropped_total - dropped_before == max(0, w.next_seq - capacity - cursor)
        got.add(r.poll(10 * capacity))
        published, dropped = w.next_seq, r.dropped_total

    assert got.ordered
    assert got.torn == 0
    assert len(got.seqs) + dropped == published
    assert all(0 <= s < published for s in got.seqs)


@SETTINGS
@given(
    capacity=CAPACITIES,
    steps=st.lists(
        st.tuples(st.integers(0, 16), st.integers(0, 16), st.integers(1, 20), st.booleans()),
        min_size=1,
        max_size=30,
    ),
)
def test_ring_poll_during_a_write_never_returns_torn_records(capacity, steps):
    got = _Delivered()
    with _ring(capacity) as (w, r):
        slow = SlowWriter(w.name, capacity)
        try:
            for n_raw, done_raw, m, into in steps:
                n = min(n_raw, capacity)
                done = min(done_raw, n)
                first = slow.next_seq
                slow.claim(n)
                slow.write(first, done, torn=False)
                slow.write(first + done, n - done, torn=True)  # the poll lands here
                got.add(_poll(r, m, into=into))
                slow.write(first + done, n - done, torn=False)
                slow.publish(n)
                got.add(_poll(r, m, into=into))
            got.add(r.poll(10 * capacity))
            published, dropped = slow.next_seq, r.dropped_total
        finally:
            slow.close()

    assert got.ordered
    assert got.torn == 0
    assert len(got.seqs) + dropped == published
