"""Run ``python -m procs.execution`` as a real process against simex for integration tests.

``ExecRig`` owns the rings the process reads (sig, md.book) and the inference PUB that wakes
it; ``start()`` writes the config and launches the process with keys in its environment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from ipc.messages import wake_topic
from ipc.sockets import Publisher, bind_pub
from procs.group.health import query_health
from shm.records import BOOK_V1, SIG_V1
from shm.ring import RingSpec, RingWriter
from tests.helpers.poll import eventually
from tests.helpers.simex_proc import KEYS, SimexProc, rest

REST_POLL_S = 0.2  # simex rate-limits REST like the venue (10/s): poll it gently
SYMBOL = "BTCUSDT"
SID = 1


@dataclass
class ExecRig:
    directory: Path
    ns: str
    sx: SimexProc
    key: int  # simex KEYS index (1-based): one account per test
    extra_toml: str = ""
    mode: str = "live"
    proc: subprocess.Popen[bytes] | None = None
    sig: RingWriter | None = None
    book: RingWriter | None = None
    wake: Publisher | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.directory / "execution.log"
        self.sig = RingWriter(RingSpec(name=f"{self.ns}.inference.sig", dtype=SIG_V1, capacity=256))
        self.book = RingWriter(
            RingSpec(name=f"{self.ns}.ingest.md.book", dtype=BOOK_V1, capacity=256)
        )
        self.wake = bind_pub(f"ipc://{self.directory}/inference.pub")

    @property
    def ctl(self) -> str:
        return f"ipc://{self.directory}/execution.ctl"

    @property
    def journal_path(self) -> Path:
        return self.directory / "journal.sqlite"

    @property
    def killswitch_path(self) -> Path:
        return self.directory / "ks.json"

    def write_config(self) -> Path:
        text = f"""
[execution]
mode = "{self.mode}"
journal_path = "{self.journal_path}"
killswitch_path = "{self.killswitch_path}"
killswitch_poll_s = 0.05
reconcile_interval_s = 0.5
reconcile_retry_s = 0.2
position_snapshot_interval_s = 0.5
order_ack_timeout_s = 2.0
cancel_timeout_s = 1.0
sig_ring = "{{ns}}.inference.sig"
book_ring = "{{ns}}.ingest.md.book"
inference_pub = "ipc://{{run_dir}}/inference.pub"
events_log_path = "{self.directory / "events.jsonl"}"
[[execution.symbols]]
symbol = "{SYMBOL}"
symbol_id = {SID}
tick = "0.1"
step = "0.0001"
min_qty = "0.0001"
[execution.runtime]
pub_endpoint = "ipc://{{run_dir}}/execution.pub"
control_endpoint = "ipc://{{run_dir}}/execution.ctl"
[execution.venue]
rest_url = "{self.sx.rest_url}"
ws_private_url = "{self.sx.ws_private_url}"
mark_poll_s = 0.5
[execution.breaker]
stale_data_s = 30.0
{self.extra_toml}
"""
        path = self.directory / "exec.toml"
        path.write_text(text)
        return path

    def start(self) -> None:
        cfg = self.write_config()
        name, secret, _ = KEYS[self.key - 1]
        env = dict(os.environ)
        env |= {"BITRADER_RUN_DIR": str(self.directory), "BITRADER_NS": self.ns}
        env |= {"BITUNIX_API_KEY": name, "BITUNIX_SECRET": secret}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "procs.execution", str(cfg)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        eventually(lambda: self.proc_dead() or self._answers(), timeout_s=20)
        assert not self.proc_dead(), self.log()

    def proc_dead(self) -> bool:
        return self.proc is None or self.proc.poll() is not None

    def _answers(self) -> bool:
        try:
            query_health(self.ctl, 0.5)
        except TimeoutError:
            return False
        return True

    def health(self) -> dict[str, Any]:
        assert not self.proc_dead(), self.log()
        try:
            counters: dict[str, Any] = query_health(self.ctl, 2.0)["counters"]
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{self.log()}") from None
        return counters

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=15)
        self.proc = None
        return rc

    def close(self) -> None:
        if self.proc is not None:
            self.stop(signal.SIGKILL)
        for w in (self.sig, self.book):
            if w is not None:
                w.close()
        if self.wake is not None:
            self.wake.close()

    # -- market data the test feeds ------------------------------------------------------------

    def venue_top(self) -> tuple[Decimal, Decimal]:
        """The best bid and ask simex shows (waiting out a moment of a one-sided book)."""

        def top() -> tuple[Decimal, Decimal] | None:
            params = {"symbol": SYMBOL, "limit": "1"}
            body = rest(self.sx, "GET", "/market/depth", params, key=None)[1]
            data = body.get("data") if isinstance(body, dict) else None
            if not data or not data["bids"] or not data["asks"]:
                return None
            return Decimal(data["bids"][0][0]), Decimal(data["asks"][0][0])

        found: tuple[Decimal, Decimal] = eventually(top, timeout_s=5, interval_s=REST_POLL_S)
        return found

    def tick(self, score: float, bid: Decimal, ask: Decimal) -> None:
        """Publish one book and one signal on it, then wake the process."""
        assert self.book is not None
        assert self.sig is not None
        assert self.wake is not None

        now = time.time_ns()
        b = np.zeros(1, dtype=BOOK_V1)
        b["ts_event_ns"], b["ts_recv_ns"], b["ts_pub_ns"] = now - 1000, now, now + 5_000
        b["symbol_id"], b["n_bids"], b["n_asks"] = SID, 1, 1
        b["bid_px"][0, 0], b["ask_px"][0, 0] = float(bid), float(ask)
        b["bid_qty"][0, 0] = b["ask_qty"][0, 0] = 1.0
        self.book.publish(b)
        s = np.zeros(1, dtype=SIG_V1)
        s["ts_event_ns"], s["ts_recv_ns"] = now - 1000, now
        s["ts_feat_ns"], s["ts_sig_ns"] = now + 10_000, now + 20_000
        s["symbol_id"], s["mid"], s["score"] = SID, float((bid + ask) / 2), score
        self.sig.publish(s)
        self.wake.send(wake_topic("sig"), b"")

    # -- what simex says -------------------------------------------------------------------------

    def venue_orders(self) -> list[dict[str, Any]]:
        _, body = rest(self.sx, "GET", "/trade/get_pending_orders", {"limit": "100"}, key=self.key)
        data = body["data"]
        out: list[dict[str, Any]] = data["orderList"] if isinstance(data, dict) else data
        return out

    def venue_history(self) -> list[dict[str, Any]]:
        _, body = rest(self.sx, "GET", "/trade/get_history_orders", {"limit": "100"}, key=self.key)
        data = body["data"]
        out: list[dict[str, Any]] = data["orderList"] if isinstance(data, dict) else data
        return out

    def venue_position(self) -> Decimal:
        _, body = rest(self.sx, "GET", "/position/get_pending_positions", {}, key=self.key)
        total = Decimal(0)
        for p in body["data"] or []:
            q = Decimal(p["qty"])
            total += q if p["side"] in ("LONG", "BUY") else -q
        return total
