"""``DashboardConfig``: the ``[dashboard]`` section, frozen and strict, units in every name."""

from __future__ import annotations

import ipaddress
from typing import Annotated

import msgspec

from procs._config import RuntimeConfig

PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]


def is_loopback(host: str) -> bool:
    """True when ``host`` is a loopback address or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class DashboardConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where the page is served, who may see it, and what it reads.

    The password is never in the config: ``main`` reads it from the environment variable named
    by ``password_env``. Without one the dashboard refuses to start (exit 78), unless it binds
    loopback and ``allow_dev_password`` says so: then it generates one and prints it once.
    """

    host: str = "127.0.0.1"
    port: Port = 18090
    password_env: str = "BITRADER_DASHBOARD_PASSWORD"
    allow_dev_password: bool = False  # loopback only: generate a password and print it once
    # who may connect (CIDRs); required when bound beyond loopback; empty: loopback only
    allowlist: list[str] = []
    session_ttl_s: PositiveFloat = 8 * 3600.0
    login_max_failures: PositiveInt = 5  # failed logins per address ...
    login_window_s: PositiveFloat = 60.0  # ... in any window this long; then 429 until it ages
    # what it reads (execution's)
    execution_pub: str = "ipc://{run_dir}/execution.pub"
    execution_control: str = "ipc://{run_dir}/execution.ctl"
    journal_path: str = "{run_dir}/execution.sqlite"
    killswitch_path: str = "{run_dir}/killswitch.json"
    audit_path: str = "{run_dir}/dashboard-audit.jsonl"
    # signs the audit records sent to execution's keyed chain; "" = control.token beside the
    # execution_control socket
    control_token_file: str = ""
    killswitch_ack_timeout_s: PositiveFloat = 5.0  # wait this long for execution's answer
    execution_poll_s: PositiveFloat = 0.5  # execution's health: state, PnL, positions
    journal_poll_s: PositiveFloat = 0.5  # new journal rows (events wake it sooner)
    health_poll_s: PositiveFloat = 3.0  # every process's health (takes ~1.5 s: heartbeats)
    push_min_s: PositiveFloat = 0.2  # at most one push to the page this often
    chart_points: PositiveInt = 3600  # PnL samples kept (one per execution_poll_s)
    recent_rows: PositiveInt = 20  # fills and breaker changes shown
    runtime: RuntimeConfig | None = None

    def __post_init__(self) -> None:
        for cidr in self.allowlist:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"allowlist: not an address or network: {cidr!r}") from None
        if not is_loopback(self.host):
            if self.allow_dev_password:
                raise ValueError(f"allow_dev_password needs a loopback host, was {self.host!r}")
            if not self.allowlist:
                raise ValueError(f"bound beyond loopback ({self.host!r}): allowlist required")
