"""Start ``python -m procs.ingest CONFIG`` against a test simex and read what it publishes.

``run_ingest(...)`` writes an ``[ingest]`` section pointing at the simex, starts the process,
attaches readers to both rings and yields an ``Ingest``; on exit it sends SIGTERM (unless the
test already stopped it) and checks the exit code.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from procs.group.health import query_health
from shm.records import BOOK_V1, TRADE_V1, Records
from shm.ring import RingReader, attach_reader
from shm.segment import SHM_DIR
from tests.conftest import ROOT
from tests.helpers.poll import eventually
from tests.helpers.simex_proc import SimexProc

SYMBOLS = ("BTCUSDT", "ETHUSDT")


def ingest_toml(
    sx: SimexProc, run_dir: Path, extra: str = "", symbols=SYMBOLS, metrics_port: int = 0
) -> str:
    syms = ", ".join(f'"{s}"' for s in symbols)
    return f"""
[ingest]
symbols = [{syms}]
ws_url = "{sx.ws_public_url}"
rest_url = "{sx.rest_url}"
book_ring = "{{ns}}.ingest.md.book"
trade_ring = "{{ns}}.ingest.md.trade"
book_capacity_records = 16384
trade_capacity_records = 65536
stale_after_s = 0.5
resync_min_interval_s = 0.2
reconnect_min_s = 0.05
reconnect_max_s = 0.3
ping_interval_s = 1.0
{extra}
[ingest.runtime]
pub_endpoint = "ipc://{run_dir}/ingest.pub"
control_endpoint = "ipc://{run_dir}/ingest.ctl"
heartbeat_s = 0.2
metrics_port = {metrics_port}
"""


@dataclass
class Ingest:
    proc: subprocess.Popen[bytes]
    log_path: Path
    ns: str
    pub: str
    ctl: str
    book: RingReader
    trade: RingReader
    books: list[Records] = field(default_factory=list)
    trades: list[Records] = field(default_factory=list)

    @property
    def book_ring(self) -> str:
        return f"{self.ns}.ingest.md.book"

    @property
    def trade_ring(self) -> str:
        return f"{self.ns}.ingest.md.trade"

    def drain(self) -> tuple[Records, Records]:
        """Poll both rings once; keep and return everything seen so far."""
        for reader, store in ((self.book, self.books), (self.trade, self.trades)):
            while len(batch := reader.poll(4096)):
                store.append(batch)
        return self.all_books(), self.all_trades()

    def all_books(self) -> Records:
        return np.concatenate(self.books) if self.books else np.zeros(0, BOOK_V1)

    def all_trades(self) -> Records:
        return np.concatenate(self.trades) if self.trades else np.zeros(0, TRADE_V1)

    def health(self, timeout_s: float = 1.0) -> dict[str, Any] | None:
        try:
            return query_health(self.ctl, timeout_s)
        except TimeoutError:
            return None  # not answering yet: callers poll

    def counters(self) -> dict[str, Any]:
        h = self.health()
        return {} if h is None else dict(h["counters"])

    def stop(self, timeout_s: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout_s)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _created_or_exited(proc: subprocess.Popen[bytes], path: Path) -> bool:
    return proc.poll() is not None or path.exists()


@contextmanager
def run_ingest(
    sx: SimexProc,
    tmp_path: Path,
    run_dir: Path,
    ns: str,
    extra: str = "",
    expect_rc: int = 0,
    metrics_port: int = 0,
) -> Iterator[Ingest]:
    cfg = tmp_path / "ingest.toml"
    cfg.write_text(ingest_toml(sx, run_dir, extra, metrics_port=metrics_port))
    log_path = tmp_path / "ingest.log"
    env = {**os.environ, "BITRADER_RUN_DIR": str(run_dir), "BITRADER_NS": ns}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "procs.ingest", str(cfg)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    readers: list[RingReader] = []
    try:
        for name, dtype in ((f"{ns}.ingest.md.book", BOOK_V1), (f"{ns}.ingest.md.trade", TRADE_V1)):
            eventually(partial(_created_or_exited, proc, SHM_DIR / name), 15.0)
            assert proc.poll() is None, log_path.read_text(errors="replace")
            readers.append(attach_reader(name, dtype, 5.0, from_start=True))
        book, trade = readers
        ing = Ingest(
            proc, log_path, ns, f"ipc://{run_dir}/ingest.pub", f"ipc://{run_dir}/ingest.ctl",
            book, trade,
        )  # fmt: skip
        yield ing
    finally:
        for r in readers:
            r.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=15)
    assert rc == expect_rc, log_path.read_text(errors="replace")
