"""Build a whole-group config for e2e tests from configs/demo.toml: own ports, live execution.

``build_group_config(directory, run_dir, overrides)`` reads the demo config, gives simex and every
process's ``metrics_port`` a free loopback port, points ingest and execution at that simex, turns
execution live against it (a key only these tests use, plus an observer key on the same account
so the test's REST polling never eats execution's rate budget), adds a ``[capture]`` section when
the demo lacks one, deep-merges ``overrides`` and writes TOML. Returns a ``GroupConfig``.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from procs.group.supervise import ROOT
from tests.conftest import free_port

DEMO = ROOT / "configs" / "demo.toml"
EXEC_KEY = ("e2e-exec-key", "e2e-exec-secret")  # execution trades with this one
OBSERVER_KEY = ("e2e-observer-key", "e2e-observer-secret")  # the test reads simex with this one
ACCOUNT = "demo"
START_BALANCE = "100000"


@dataclass(frozen=True)
class GroupConfig:
    """Where one test's group lives and how to reach each part of it."""

    path: Path
    run_dir: Path
    rest_url: str
    control_url: str
    metrics_ports: dict[str, int]  # program -> its /metrics port: the programs with a runtime
    journal_path: Path
    killswitch_path: Path
    capture_dir: Path
    data: dict[str, Any]

    def control_endpoint(self, proc: str) -> str:
        ep: str = self.data[proc]["runtime"]["control_endpoint"]
        return ep.replace("{run_dir}", str(self.run_dir))


def _fmt_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def _fmt_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_fmt_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML: {v!r}")


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def dump_toml(data: dict[str, Any], prefix: str = "") -> str:
    """Write a dict of the shapes tomllib returns (no dates) back as TOML."""
    lines: list[str] = []
    tables: list[tuple[str, Any]] = []
    for key, value in data.items():
        if isinstance(value, dict) or _is_table_array(value):
            tables.append((key, value))
        else:
            lines.append(f"{_fmt_key(key)} = {_fmt_value(value)}")
    out = "\n".join(lines) + ("\n" if lines else "")
    for key, value in tables:
        name = f"{prefix}.{_fmt_key(key)}" if prefix else _fmt_key(key)
        if isinstance(value, dict):
            out += f"\n[{name}]\n" + dump_toml(value, name)
        else:
            for item in value:
                out += f"\n[[{name}]]\n" + dump_toml(item, name)
    return out


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``over`` into a copy of ``base`` (tables merge, everything else replaces)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _capture_section(symbols: list[str]) -> dict[str, Any]:
    return {
        "directory": "{run_dir}/capture",
        "symbols": symbols,
        "order_endpoints": ["ipc://{run_dir}/execution.pub"],
        "runtime": {
            "pub_endpoint": "ipc://{run_dir}/capture.pub",
            "control_endpoint": "ipc://{run_dir}/capture.ctl",
        },
    }


def build_group_config(
    directory: Path, run_dir: Path, overrides: dict[str, Any] | None = None
) -> GroupConfig:
    """Write ``directory/group.toml`` for a group running in ``run_dir``; see the module doc."""
    data = tomllib.loads(DEMO.read_text())
    rest, ws, ctl = free_port(), free_port(), free_port()
    rest_url, ws_url = f"http://127.0.0.1:{rest}", f"ws://127.0.0.1:{ws}"
    data.setdefault("capture", _capture_section(list(data["ingest"]["symbols"])))
    base: dict[str, Any] = {
        "simex": {
            "rest_port": rest,
            "ws_port": ws,
            "control_port": ctl,
            "state_path": "",
            "restore": False,
            "strict": True,  # the e2e tests trade against a simex as strict as the venue's docs
            "limits": {"rest_private_per_s": 50.0},
            "keys": [
                {"api_key": k, "secret": s, "account": ACCOUNT} for k, s in (EXEC_KEY, OBSERVER_KEY)
            ],
            "accounts": [{"name": ACCOUNT, "balance": START_BALANCE}],
        },
        "ingest": {"ws_url": f"{ws_url}/public/", "rest_url": rest_url},
        "capture": {"flush_s": 0.2},
        "dashboard": {"port": free_port()},
        "execution": {
            "mode": "live",
            "venue": {"rest_url": rest_url, "ws_private_url": f"{ws_url}/private/"},
        },
    }
    data = merge(merge(data, base), overrides or {})
    ports: dict[str, int] = {}
    for proc, section in data.items():  # every program under the runtime (simex too, now)
        if isinstance(section, dict) and isinstance(section.get("runtime"), dict):
            ports[proc] = free_port()
            section["runtime"]["metrics_port"] = ports[proc]
    path = directory / "group.toml"
    path.write_text(dump_toml(data))

    def expand(text: str) -> Path:
        return Path(text.replace("{run_dir}", str(run_dir)))

    ex = data["execution"]
    return GroupConfig(
        path=path,
        run_dir=run_dir,
        rest_url=rest_url,
        control_url=f"http://127.0.0.1:{ctl}",
        metrics_ports=ports,
        journal_path=expand(ex["journal_path"]),
        killswitch_path=expand(ex["killswitch_path"]),
        capture_dir=expand(data["capture"]["directory"]),
        data=data,
    )
