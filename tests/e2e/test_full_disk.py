"""A full disk under the running group: the journal, the kill-switch file and the captures on a
small filesystem that fills up (tests/helpers/chaos_storage.py ``fill_disk``). Capture pauses
and counts, execution never loses an order or a fill, the kill switch acts, and everything
recovers when space returns. Needs root for the tmpfs (skipped with the reason otherwise; a
failure under CI=true)."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.chaos_storage import Storage, mount_small_disk, unmount
from tests.helpers.group_venue import duplicates

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("group"), pytest.mark.timeout(600)]


@pytest.fixture
def small_disk(run_dir: Path) -> Iterator[Path]:
    path = run_dir / "data"
    why_not = mount_small_disk(path, 64)
    if why_not:
        if os.environ.get("CI") == "true":
            pytest.fail(why_not)
        pytest.skip(why_not)
    yield path
    unmount(path)


def test_full_disk_pauses_capture_kill_switch_acts_and_all_recovers(small_disk, make_group):
    g = make_group(
        {
            "execution": {
                "journal_path": "{run_dir}/data/execution.sqlite",
                "killswitch_path": "{run_dir}/data/killswitch.json",
            },
            "capture": {"directory": "{run_dir}/data/capture", "min_free_bytes": 4 << 20},
        }
    )
    g.wait_until(lambda: g.journal.fills_count() >= 1, 90, "a first fill")
    storage = Storage(g, random.Random(1), small_disk)

    storage.fill_disk()

    sent = int(g.health("execution")["orders_sent_total"])
    g.wait_until(
        lambda: int(g.health("execution").get("orders_sent_total") or 0) > sent, 60, "trading on"
    )
    ids = g.journal.client_ids()
    assert duplicates(ids) == {}
    assert {o["clientId"] for o in g.simex.all_orders()} <= set(ids)
