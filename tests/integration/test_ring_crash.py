"""SIGKILL either side of a ring: the writer's segment survives a reader, a writer restarts."""

from __future__ import annotations

import signal
from functools import partial

import psutil  # type: ignore[import-untyped]  # no stubs installed
import pytest

from shm.records import BENCH_V1
from shm.ring import RingReader, RingSpec, RingWriter, attach_reader
from shm.segment import segment_inode
from tests.helpers.poll import eventually
from tests.helpers.ring_proc import spawn
from tests.helpers.ring_records import make_batch, torn_count

pytestmark = pytest.mark.integration


def _gone(p: psutil.Process) -> bool:
    try:
        return not p.is_running() or p.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_sigkilled_reader_leaves_segment_and_writer_keeps_publishing(ring_name):
    spec = RingSpec(name=ring_name, dtype=BENCH_V1, capacity=1024)
    with (
        RingWriter(spec) as writer,
        spawn("tests.helpers.ring_consumer", ring_name, "1000000000") as (consumer, out),
    ):
        assert out.readline(timeout_s=10) == "ready"
        inode = segment_inode(ring_name)
        helpers = psutil.Process(consumer.pid).children()  # its resource tracker, on 3.11
        writer.publish(make_batch(0, 100))
        consumer.send_signal(signal.SIGKILL)
        consumer.wait(timeout=10)
        for p in helpers:  # whatever the reader left behind has had its chance to clean up
            eventually(partial(_gone, p), timeout_s=5)

        writer.publish(make_batch(100, 100))
        with RingReader(ring_name, BENCH_V1, from_start=True) as fresh:
            got = fresh.poll(1000)

    assert segment_inode(ring_name) is None  # the writer's clean close unlinked it
    assert inode is not None
    assert got["seq"].tolist() == list(range(200))
    assert torn_count(got) == 0


class _Collector:
    """Poll a reader, filing each record's seq under the writer generation it came from."""

    def __init__(self, reader: RingReader) -> None:
        self.reader = reader
        self.by_generation: dict[int, list[int]] = {}
        self.torn = 0

    def poll_until(self, generation: int, n: int) -> bool:
        batch = self.reader.poll(64)
        gen = self.reader.reattach_total
        self.by_generation.setdefault(gen, []).extend(batch["seq"].tolist())
        self.torn += torn_count(batch)
        return len(self.by_generation.get(generation, [])) >= n


def test_restarted_writer_recovers_stale_segment_and_reader_reattaches(ring_name):
    producer_args = (ring_name, "--capacity", "4096", "--batch", "8", "--interval-s", "0.002")

    with spawn("tests.helpers.ring_producer", *producer_args) as (first, out1):
        assert out1.readline(timeout_s=10) == "ready"
        reader = attach_reader(ring_name, BENCH_V1, timeout_s=5)
        got = _Collector(reader)
        eventually(lambda: got.poll_until(0, 16), timeout_s=5)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    stale = segment_inode(ring_name)
    with spawn("tests.helpers.ring_producer", *producer_args) as (second, out2):
        assert out2.readline(timeout_s=10) == "ready"
        live = segment_inode(ring_name)
        eventually(lambda: got.poll_until(1, 16), timeout_s=5)
        second.send_signal(signal.SIGTERM)
        rc = second.wait(timeout=10)
    reattached, dropped = reader.reattach_total, reader.dropped_total
    reader.close()

    assert stale is not None  # the killed writer left its segment behind
    assert live is not None
    assert live != stale
    assert reattached == 1
    old, new = got.by_generation[0], got.by_generation[1]
    assert old == list(range(old[0], old[0] + len(old)))
    assert new == list(range(len(new)))  # the new writer's records, from its first
    assert dropped == 0
    assert got.torn == 0
    assert rc == 0
    assert segment_inode(ring_name) is None  # a clean stop unlinks
