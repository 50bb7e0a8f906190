"""``bitrader sim [CONFIG]`` / ``python -m procs.simex [CONFIG]``: run simex until SIGTERM/SIGINT.

Exit codes: 0 asked to stop, 1 fault, 78 bad configuration or unusable state file.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from procs._config import EXIT_CONFIG, ConfigError
from procs._runtime import SERVICE_S, Runtime
from procs.simex.app import Simex
from procs.simex.config import SimexConfig, load_config
from procs.simex.replay import ReplayError
from procs.simex.state import StateError

__all__ = ["main", "serve"]

log = logging.getLogger("procs.simex")

EXIT_OK = 0
EXIT_FAULT = 1


async def serve(config: SimexConfig, rt: Runtime | None = None) -> int:
    """Run simex until a stop signal (or a ``stop`` on the runtime's control socket)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sx = Simex(config)
    try:
        await sx.start()
    except (StateError, ReplayError) as exc:
        log.error("%s", exc)
        return EXIT_CONFIG
    waits: set[asyncio.Task[object]] = {asyncio.create_task(stop.wait(), name="simex-stop")}
    service = None
    if rt is not None:
        rt.report_health_from(sx)
        sx.on_step = rt.record_step
        service = asyncio.create_task(_service(rt, stop), name="simex-runtime")
        waits.add(service)
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in waits:
        task.cancel()
    # the runtime task never ends on its own: if it did, health and heartbeats are gone and
    # the process must not trade on without them (supervisord restarts it on exit 1)
    fault = service is not None and service.done() and not stop.is_set()
    if fault:
        assert service is not None
        error = None if service.cancelled() else service.exception()
        log.error("stopping (fault): the runtime service task ended", exc_info=error)
    else:
        log.info("stopping")
    await sx.stop()
    log.info("stopped")
    return EXIT_FAULT if fault else EXIT_OK


async def _service(rt: Runtime, stop: asyncio.Event) -> object:
    while not stop.is_set():
        rt.service()  # heartbeat, control requests, counters
        if rt.stop.is_set:
            stop.set()
        await asyncio.sleep(SERVICE_S)
    return None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0] in ("-h", "--help")):
        print("usage: bitrader sim [CONFIG.toml]   (section [simex]; no file: defaults)")
        return 0 if args and args[0] in ("-h", "--help") else 2
    from procs._files import private_umask
    from procs._runtime import setup_logging

    private_umask()  # its state file is private whatever the caller's umask
    setup_logging("simex")
    try:
        config = load_config(args[0] if args else None)
    except ConfigError as exc:
        log.error("%s", exc)
        return EXIT_CONFIG
    if config.control_token_file:
        from procs._auth import AuthError, read_token

        try:
            read_token(config.control_token_file)
        except AuthError as exc:
            log.error("config error path=$.simex.control_token_file: %s", exc)
            return EXIT_CONFIG
    logging.getLogger().setLevel(config.log_level)
    logging.getLogger("picows").setLevel(logging.WARNING)  # it logs every connection at INFO
    import uvloop

    if config.runtime is None:
        return uvloop.run(serve(config))
    from prometheus_client import CollectorRegistry

    path = args[0] if args else None
    with Runtime("simex", config.runtime, CollectorRegistry(), config_path=path) as rt:
        rt.start()
        return uvloop.run(serve(config, rt))


if __name__ == "__main__":
    sys.exit(main())
