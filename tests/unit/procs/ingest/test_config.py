"""IngestConfig decoding: defaults, constraints, and discovery by ``bitrader config check``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from procs._config import check_file
from procs.marketdata.config import IngestConfig

RUNTIME = {"pub_endpoint": "ipc:///tmp/i.pub", "control_endpoint": "ipc:///tmp/i.ctl"}


def _section(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "runtime": RUNTIME,
        "symbols": ["BTCUSDT", "ETHUSDT"],
        "book_ring": "demo.ingest.md.book",
        "trade_ring": "demo.ingest.md.trade",
    }
    return base | kw


def test_ingest_config_defaults_are_depth_book15_trade_price():
    c = msgspec.convert(_section(), IngestConfig)

    assert c.depth_channel == "depth_book15"
    assert c.channels == ["trade", "price"]
    assert c.book_capacity_records & (c.book_capacity_records - 1) == 0
    assert c.stale_after_s > 0


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"book_capacity_records": 1000}, "power of two"),
        ({"symbols": []}, "non-empty"),
        ({"symbols": ["BTCUSDT", "BTCUSDT"]}, "unique"),
        ({"depth_channel": "depth_book5"}, "Invalid enum value"),
        ({"channels": ["ticker"]}, r"channels\[0\]"),
        ({"trade_ring": "demo.ingest.md.book"}, "must differ"),
        ({"book_ring": "a/b"}, "without '/'"),
        ({"stale_after_s": 0}, "Expected `float` >"),
        ({"stale_after": 1.0}, "unknown field"),
        ({"batch_max_records": 1 << 15, "book_capacity_records": 1 << 14}, "capacity"),
    ],
)
def test_ingest_config_bad_values_are_refused(changes, match):
    with pytest.raises(msgspec.ValidationError, match=match):
        msgspec.convert(_section(**changes), IngestConfig)


def test_ingest_config_section_is_found_by_config_check(tmp_path: Path):
    path = tmp_path / "demo.toml"
    path.write_text(
        '[ingest]\nsymbols = ["BTCUSDT"]\nbook_ring = "{ns}.ingest.md.book"\n'
        'trade_ring = "{ns}.ingest.md.trade"\n[ingest.runtime]\n'
        'pub_endpoint = "ipc://{run_dir}/ingest.pub"\ncontrol_endpoint = "ipc://{run_dir}/i.ctl"\n'
    )
    assert check_file(path, ["ingest"]) == []
    path.write_text(path.read_text().replace('["BTCUSDT"]', "[]"))
    [error] = check_file(path, ["ingest"])
    assert "$.ingest" in error
