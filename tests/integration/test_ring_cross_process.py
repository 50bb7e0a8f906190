"""A ring read from another OS process: ordered, never torn, every record delivered or counted."""

from __future__ import annotations

import json

import pytest

from shm.records import BENCH_V1
from shm.ring import RingSpec, RingWriter
from tests.helpers.ring_proc import spawn
from tests.helpers.ring_records import make_batch

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("capacity", "write_batch", "read_batch", "n"),
    [(4096, 4, 1024, 100_000), (16, 16, 3, 50_000)],
    ids=["roomy", "tiny-lapped"],
)
def test_reader_process_sees_ordered_untorn_records_or_counts_loss(
    ring_name, capacity, write_batch, read_batch, n
):
    spec = RingSpec(name=ring_name, dtype=BENCH_V1, capacity=capacity)
    consumer_args = (ring_name, str(n), "--batch", str(read_batch))

    with (
        RingWriter(spec) as writer,
        spawn("tests.helpers.ring_consumer", *consumer_args) as (consumer, out),
    ):
        assert out.readline(timeout_s=10) == "ready"
        for first in range(0, n, write_batch):
            writer.publish(make_batch(first, write_batch))
        summary = json.loads(out.readline(timeout_s=20))
        rc = consumer.wait(timeout=10)

    assert rc == 0
    assert summary["ordered"]
    assert summary["torn"] == 0
    assert summary["delivered"] + summary["dropped"] == n
    assert summary["gaps"] == summary["dropped"]
    assert summary["delivered"] > 0
