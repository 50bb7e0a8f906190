"""Start simex as a real process for tests, and speak its wire with plain clients.

``run_simex(dir, extra_toml)`` writes a config on free loopback ports, starts
``python -m procs.simex CONFIG``, waits until REST answers, yields a SimexProc, and on exit
sends SIGTERM and checks the exit code is 0. ``rest(...)`` signs like the venue's docs.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ipc.bitunix.signing import new_nonce, query_string, sign_rest, sign_ws_login
from tests.conftest import free_port
from tests.helpers.poll import eventually

KEYS = [(f"key{i}", f"secret{i}", f"acct{i}") for i in range(1, 9)]


@dataclass
class SimexProc:
    proc: subprocess.Popen[bytes]
    config_path: Path
    log_path: Path
    rest_url: str
    ws_public_url: str
    ws_private_url: str
    control_url: str
    killed: bool = False

    def kill(self) -> None:
        """SIGKILL simex (a crash): run_simex then skips its exit-code check."""
        self.killed = True
        self.proc.kill()
        self.proc.wait(timeout=10)


def write_config(directory: Path, extra_toml: str = "", state_path: str = "") -> Path:
    rest, ws, ctl = free_port(), free_port(), free_port()
    lines = [
        "[simex]",
        f"rest_port = {rest}",
        f"ws_port = {ws}",
        f"control_port = {ctl}",
        f'state_path = "{state_path}"',
        extra_toml,
    ]
    for name, secret, acct in KEYS:
        lines += [
            "[[simex.keys]]",
            f'api_key = "{name}"',
            f'secret = "{secret}"',
            f'account = "{acct}"',
        ]
    lines += ["[[simex.keys]]", 'api_key = "fenced"', 'secret = "s"', 'account = "acct1"']
    lines += ['ip_allow = ["10.9.9.9"]']
    for _, _, acct in KEYS:
        lines += ["[[simex.accounts]]", f'name = "{acct}"', 'balance = "100000"']
    path = directory / "simex.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _ports(path: Path) -> tuple[int, int, int]:
    import tomllib

    sx = tomllib.loads(path.read_text())["simex"]
    return sx["rest_port"], sx["ws_port"], sx["control_port"]


@contextmanager
def run_simex(config_path: Path) -> Iterator[SimexProc]:
    rest, ws, ctl = _ports(config_path)
    log_path = config_path.with_suffix(".log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "procs.simex", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    sx = SimexProc(
        proc, config_path, log_path, f"http://127.0.0.1:{rest}", f"ws://127.0.0.1:{ws}/public/",
        f"ws://127.0.0.1:{ws}/private/", f"http://127.0.0.1:{ctl}",
    )  # fmt: skip
    try:
        eventually(lambda: proc.poll() is not None or _alive(sx.control_url), timeout_s=20)
        assert proc.poll() is None, log_path.read_text()
        yield sx
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=15)
    assert sx.killed or rc == 0, log_path.read_text()


def _alive(control_url: str) -> bool:
    try:
        with urllib.request.urlopen(control_url + "/_simex/status", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        with e:
            raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode()


def rest(
    sx: SimexProc,
    method: str,
    path: str,
    params: dict[str, Any] | None = None,
    *,
    key: int | None = 1,
    secret: str | None = None,
    ts_ms: int | None = None,
    api_key: str | None = None,
) -> tuple[int, Any]:
    """Call ``/api/v1/futures<path>``; signed with KEYS[key-1] unless ``key`` is None."""
    url = sx.rest_url + "/api/v1/futures" + path
    headers = {"Content-Type": "application/json"}
    body_text = ""
    if method == "GET" and params:
        url += "?" + urllib.parse.urlencode(params)
    elif method == "POST":
        body_text = json.dumps(params or {}, separators=(",", ":"))
    if key is not None:
        name, sec, _ = KEYS[key - 1]
        name = api_key or name
        nonce, ts = new_nonce(), str(ts_ms if ts_ms is not None else int(time.time() * 1000))
        query = query_string(params) if method == "GET" else ""
        sign = sign_rest(
            nonce=nonce,
            timestamp=ts,
            api_key=name,
            query=query,
            body=body_text,
            secret=secret or sec,
        )
        headers |= {"api-key": name, "nonce": nonce, "timestamp": ts, "sign": sign}
    return http(method, url, body_text.encode() if method == "POST" else None, headers)


def control(sx: SimexProc, path: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    status, out = http("GET" if data is None else "POST", sx.control_url + path, data)
    assert status == 200, out
    return out


def ws_login_msg(key: int = 1, ts: int | None = None, sign: str | None = None) -> str:
    name, secret, _ = KEYS[key - 1]
    ts = int(time.time()) if ts is None else ts
    nonce = new_nonce()
    s = sign or sign_ws_login(nonce=nonce, timestamp_s=ts, api_key=name, secret=secret)
    return json.dumps(
        {"op": "login", "args": [{"apiKey": name, "timestamp": ts, "nonce": nonce, "sign": s}]}
    )
