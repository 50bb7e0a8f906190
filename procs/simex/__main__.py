"""``bitrader sim [CONFIG]`` / ``python -m procs.simex [CONFIG]``: run simex until SIGTERM/SIGINT.

Exit codes: 0 asked to stop, 1 fault, 78 bad configuration or unusable state file.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from procs._config import EXIT_CONFIG, ConfigError
from procs.simex.app import Simex
from procs.simex.config import SimexConfig, load_config
from procs.simex.replay import ReplayError
from procs.simex.state import StateError

__all__ = ["main", "serve"]

log = logging.getLogger("procs.simex")

EXIT_OK = 0


async def serve(config: SimexConfig) -> int:
    """Run simex until a stop signal; save state on the way out."""
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
    await stop.wait()
    log.info("stopping")
    await sx.stop()
    log.info("stopped")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0] in ("-h", "--help")):
        print("usage: bitrader sim [CONFIG.toml]   (section [simex]; no file: defaults)")
        return 0 if args and args[0] in ("-h", "--help") else 2
    from procs._runtime import setup_logging

    setup_logging("simex")
    try:
        config = load_config(args[0] if args else None)
    except ConfigError as exc:
        log.error("%s", exc)
        return EXIT_CONFIG
    logging.getLogger().setLevel(config.log_level)
    logging.getLogger("picows").setLevel(logging.WARNING)  # it logs every connection at INFO
    import uvloop

    return uvloop.run(serve(config))


if __name__ == "__main__":
    sys.exit(main())
