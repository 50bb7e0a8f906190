"""``python -m procs.dashboard CONFIG``: serve the risk dashboard until SIGTERM/SIGINT.

The composition root: reads the password (environment, never the config), the limits (the
``[execution]`` section of the same file), opens the sources and serves aiohttp on the
configured address. Exit codes: 0 asked to stop, 1 fault, 78 bad configuration, including no
password (unless a loopback dev config sets ``allow_dev_password``) and a port in use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from procs._config import (
    EXIT_CONFIG,
    ConfigError,
    decode_section,
    load_env,
    load_section,
    read_toml,
)
from procs._runtime import SERVICE_S, Runtime, setup_logging
from procs.dashboard.app import Access, make_app
from procs.dashboard.auth import Allowlist, LoginLimiter, Password, Sessions, generate_password
from procs.dashboard.config import DashboardConfig, is_loopback
from procs.dashboard.control import AuditLog, KillSwitchControl
from procs.dashboard.forward import AuditForwarder
from procs.dashboard.metrics import DashboardCollector
from procs.dashboard.service import Dashboard
from procs.dashboard.sources import EventFeed, HealthSource, JournalReader, read_killswitch
from procs.dashboard.view import Limits, View
from procs.group.control import ask
from procs.trading.config import ExecutionConfig

__all__ = ["main", "serve"]

log = logging.getLogger("procs.dashboard")

EXIT_OK = 0
SHUTDOWN_S = 1.0


def password_for(config: DashboardConfig, environ: dict[str, str] | os._Environ[str]) -> str | None:
    """The password from the environment, a generated one for a loopback dev config, or None."""
    secret = environ.get(config.password_env, "")
    if secret:
        return secret
    if config.allow_dev_password and is_loopback(config.host):
        return generate_password()
    return None


def limits_from(ex: ExecutionConfig) -> Limits:
    """Execution's own position limits, from its section of the same config file."""
    return Limits(
        position_notional={s.symbol: float(ex.risk.max_position_notional_usdt) for s in ex.symbols},
        position_qty={
            s.symbol: None if s.max_position_qty is None else float(s.max_position_qty)
            for s in ex.symbols
        },
        total_notional=float(ex.risk.max_total_notional_usdt),
    )


async def serve(config: DashboardConfig, dash: Dashboard, rt: Runtime | None) -> int:
    """Serve until a stop signal (or ``stop`` on the runtime's control socket)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(
        make_app(dash.access, dash, push_min_s=config.push_min_s),
        access_log=None,
        shutdown_timeout=SHUTDOWN_S,
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, config.host, config.port).start()
    except OSError as exc:
        log.error("cannot listen host=%s port=%d error=%s", config.host, config.port, exc)
        await runner.cleanup()
        return EXIT_CONFIG
    dash.start()
    log.info("running url=http://%s:%d/", config.host, config.port)
    while not stop.is_set():
        if rt is not None:
            rt.service()  # heartbeat, control requests
            if rt.stop.is_set:
                break
        with contextlib.suppress(TimeoutError):  # time to service the runtime again
            await asyncio.wait_for(stop.wait(), SERVICE_S if rt is not None else None)
    log.info("stopping")
    await dash.close()
    await runner.cleanup()
    log.info("stopped")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    setup_logging("dashboard")
    config = load_section(args, "dashboard", DashboardConfig)  # exits 78 on a bad section
    path = Path(args[0])
    env = load_env(path)
    try:
        ex = decode_section(read_toml(path), "execution", ExecutionConfig, path=path, env=env)
    except ConfigError as exc:
        log.error("%s (the dashboard shows execution's limits)", exc)
        return EXIT_CONFIG
    secret = password_for(config, os.environ)
    if secret is None:
        log.error(
            "no dashboard password: set %s (or, on a loopback dev config only, "
            "allow_dev_password = true); refusing to start",
            config.password_env,
        )
        return EXIT_CONFIG
    if not os.environ.get(config.password_env):
        # printed once, to stdout (this program's log under supervisord), not through logging:
        # the log redaction would mask it, and a loopback dev config asked for it
        log.warning("no %s: generated a dev password (loopback only)", config.password_env)
        print(f"dashboard dev password (loopback only, this run): {secret}", flush=True)
    access = Access(
        Password(secret),
        Sessions(config.session_ttl_s),
        LoginLimiter(config.login_max_failures, config.login_window_s),
        Allowlist(config.allowlist),
    )
    view = View(limits_from(ex), chart_points=config.chart_points, recent_rows=config.recent_rows)

    audit = AuditLog(config.audit_path)
    forward = AuditForwarder(
        audit, lambda cmd, a, t: ask(config.execution_control, cmd, a, t, config.control_token_file)
    )

    def build() -> Dashboard:
        return Dashboard(
            config,
            view=view,
            access=access,
            journal=JournalReader(config.journal_path),
            health=HealthSource(config.execution_control, Path(env.run_dir)),
            make_feed=lambda deliver: EventFeed(config.execution_pub, deliver),
            switch=KillSwitchControl(
                config.killswitch_path,
                config.execution_control,
                config.killswitch_ack_timeout_s,
            ),
            read_switch=lambda: read_killswitch(config.killswitch_path),
            audit=audit,
            forward=forward,
        )

    import uvloop

    if config.runtime is None:
        return uvloop.run(_run(config, build, None))
    from prometheus_client import CollectorRegistry

    with Runtime("dashboard", config.runtime, CollectorRegistry(), config_path=path) as rt:
        rt.start()
        return uvloop.run(_run(config, build, rt))


async def _run(config: DashboardConfig, build: Callable[[], Dashboard], rt: Runtime | None) -> int:
    dash = build()  # its asyncio objects belong to the running loop
    if rt is not None:
        rt.report_health_from(dash)
        dash.on_step = rt.record_step
        rt.registry.register(DashboardCollector(dash.health))
    return await serve(config, dash, rt)


if __name__ == "__main__":
    sys.exit(main())
