"""simex -> ingest -> features -> inference -> capture, each a real process; sig read here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from procs.tickstore.store import list_captures, open_capture
from shm.records import SIG_V1, Records
from shm.ring import RingNotReady, RingReader, attach_reader
from tests.helpers.md_path import run_md_path
from tests.helpers.poll import eventually
from tests.helpers.simex_proc import SimexProc, run_simex, write_config

pytestmark = pytest.mark.integration


@pytest.fixture
def sx(tmp_path: Path) -> Iterator[SimexProc]:
    (tmp_path / "sx").mkdir()
    with run_simex(write_config(tmp_path / "sx")) as proc:
        yield proc


def _collect(reader: RingReader, parts: list[Records]) -> Records:
    while (batch := reader.poll(4096)).size:
        parts.append(batch)
    return np.concatenate(parts) if parts else np.zeros(0, SIG_V1)


def _both_symbols(reader: RingReader, parts: list[Records], n: int) -> bool:
    sigs = _collect(reader, parts)
    return all(np.count_nonzero(sigs["symbol_id"] == s) >= n for s in (0, 1))


def test_md_path_signals_stamped_in_order_and_captured(sx, tmp_path, run_dir, ns):
    parts: list[Records] = []
    with run_md_path(sx, tmp_path, run_dir, ns) as md:
        reader = None
        try:
            found = eventually(
                lambda: _try_attach(f"{ns}.inference.sig"), timeout_s=15, interval_s=0.05
            )
            assert found is not None
            reader = found
            eventually(lambda: _both_symbols(found, parts, 20), timeout_s=10)
            cap = md.procs["capture"]
            eventually(lambda: cap.counters().get("attached") == "md.book,md.trade,feat,sig", 5)
            eventually(lambda: int(cap.counters().get("sig.records_total", 0)) > 0, 5)
        finally:
            if reader is not None:
                reader.close()
        rcs = md.stop_all()
        logs = md.logs()
    assert rcs == {"capture": 0, "inference": 0, "features": 0, "ingest": 0}, logs

    sigs = _collect_parts(parts)
    assert set(np.unique(sigs["symbol_id"])) == {0, 1}
    ev, recv, feat, sig = (
        sigs[k] for k in ("ts_event_ns", "ts_recv_ns", "ts_feat_ns", "ts_sig_ns")
    )
    assert (ev > 0).all()
    assert (ev <= recv).all()
    assert (recv <= feat).all()
    assert (feat <= sig).all()
    assert np.isfinite(sigs["score"]).all()
    assert (np.abs(sigs["score"]) <= 1.0).all()
    assert (np.diff(sigs["seq"]) > 0).all()

    [path] = list_captures(md.capture_dir)
    c = open_capture(path)
    assert c.clean
    for stream in ("md.book", "md.trade", "feat", "sig"):
        assert c.streams[stream].size > 0, stream
    assert c.streams["sig"].dtype == SIG_V1
    assert c.attrs["symbols"] == ["BTCUSDT", "ETHUSDT"]


def _try_attach(name: str) -> RingReader | None:
    try:
        return attach_reader(name, SIG_V1, 0.01, from_start=True)
    except RingNotReady:  # inference has not created it yet
        return None


def _collect_parts(parts: list[Records]) -> Records:
    return np.concatenate(parts)
