"""Run the dashboard alone as its own process (``python -m procs.dashboard``), as supervisord
would, against a run directory the test controls (journal, kill-switch file, no group).

``running_dashboard(run_dir, password=..., overrides=...)`` writes a config (an ``[execution]``
section for the limits and the paths, ``[dashboard]`` on a free loopback port), starts the
process, waits until it accepts connections, yields a ``DashRun`` and always stops it.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from procs.group.supervise import ROOT
from tests.conftest import free_port
from tests.helpers.group_config import dump_toml, merge
from tests.helpers.poll import eventually

PASSWORD = "correct horse battery staple"


@dataclass
class DashRun:
    proc: subprocess.Popen[str]
    run_dir: Path
    port: int
    config: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def audit_path(self) -> Path:
        return self.run_dir / "dashboard-audit.jsonl"

    @property
    def killswitch_path(self) -> Path:
        return self.run_dir / "killswitch.json"

    @property
    def journal_path(self) -> Path:
        return self.run_dir / "execution.sqlite"

    def audit(self, marks: bool = False) -> list[dict[str, Any]]:
        """The local audit log's records; with ``marks``, its delivery marks too (whether
        execution's chain took them: ``audit_undelivered`` and the like, written later)."""
        if not self.audit_path.exists():
            return []
        lines = [json.loads(line) for line in self.audit_path.read_text().splitlines()]
        return [r for r in lines if marks or not str(r["kind"]).startswith("audit_")]

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        source: str | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One HTTP request (from ``source`` address when given); (status, headers, body)."""
        conn = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=5, source_address=(source, 0) if source else None
        )
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            raw_headers: dict[str, str] = {}
            for k, v in resp.getheaders():
                raw_headers[k.lower()] = (
                    (raw_headers[k.lower()] + "\n" + v) if k.lower() in raw_headers else v
                )
            return resp.status, raw_headers, resp.read()
        finally:
            conn.close()

    def login(self, password: str = PASSWORD, source: str | None = None) -> tuple[int, str]:
        """POST the login form; (status, the session cookie or "")."""
        body = urllib.parse.urlencode({"password": password}).encode()
        status, headers, _ = self.request(
            "POST",
            "/login",
            body=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            source=source,
        )
        cookie = headers.get("set-cookie", "")
        return status, cookie


def write_config(run_dir: Path, port: int, overrides: dict[str, Any] | None = None) -> Path:
    data: dict[str, Any] = {
        "execution": {
            "journal_path": "{run_dir}/execution.sqlite",
            "killswitch_path": "{run_dir}/killswitch.json",
            "symbols": [
                {"symbol": "BTCUSDT", "symbol_id": 0, "max_position_qty": "0.05"},
                {"symbol": "ETHUSDT", "symbol_id": 1},
            ],
        },
        "dashboard": {
            "host": "127.0.0.1",
            "port": port,
            "killswitch_ack_timeout_s": 0.5,  # no execution here: do not wait long for it
            "runtime": {
                "pub_endpoint": "ipc://{run_dir}/dashboard.pub",
                "control_endpoint": "ipc://{run_dir}/dashboard.ctl",
            },
        },
    }
    path = run_dir / "dashboard.toml"
    path.write_text(dump_toml(merge(data, overrides or {})))
    return path


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def running_dashboard(
    run_dir: Path, *, password: str | None = PASSWORD, overrides: dict[str, Any] | None = None
) -> Iterator[DashRun]:
    port = free_port()
    config = write_config(run_dir, port, overrides)
    env = dict(os.environ, BITRADER_RUN_DIR=str(run_dir), BITRADER_NS="dash")
    env.pop("BITRADER_DASHBOARD_PASSWORD", None)
    if password is not None:
        env["BITRADER_DASHBOARD_PASSWORD"] = password
    log = open(run_dir / "dashboard.log", "w")  # noqa: SIM115  closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "procs.dashboard", str(config)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        eventually(lambda: proc.poll() is not None or _accepts(port), timeout_s=20)
        if proc.poll() is not None:
            raise AssertionError(f"dashboard exited {proc.returncode}:\n{log_text(run_dir)}")
        yield DashRun(proc, run_dir, port, config)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def log_text(run_dir: Path) -> str:
    path = run_dir / "dashboard.log"
    return path.read_text() if path.exists() else ""
