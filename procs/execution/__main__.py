"""``python -m procs.execution CONFIG``: compose and run the execution process (section
``[execution]``). procs.trading.compose builds the stage (rings, journal, venue); this opens
the wake-up listener and runs it.

The loop: one ``run_forever`` of the asyncio loop (REST replies, WS pushes, timers);
``procs._looprun.LoopRunner`` calls ``ExecutionProc.step`` (non-blocking) from a loop callback
when the inference process's ``wake.sig.`` arrives (its listener's descriptors are watched by
the loop itself) or every ``wake_timeout_s``. Nothing spins, nothing blocks it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from contextlib import ExitStack

from prometheus_client import CollectorRegistry

from procs._config import config_file
from procs._looprun import LoopRunner
from procs._runtime import EXIT_FAULT, Runtime
from procs.trading.compose import build, load_config

log = logging.getLogger("procs.execution")


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the reload handler is in place
    try:
        config = load_config(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    assert config.runtime is not None
    registry = CollectorRegistry()
    import uvloop

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    with (
        Runtime("execution", config.runtime, registry, config_path=config_file(argv)) as rt,
        ExitStack() as stack,
    ):
        stack.callback(loop.close)
        rt.start()
        from ipc.messages import wake_topic
        from ipc.sockets import WakeListener

        try:
            proc = build(config, rt, registry, loop, argv, stack)
        except SystemExit as exc:
            if exc.code == EXIT_FAULT:
                return EXIT_FAULT
            raise
        # the step runs from loop callbacks, in one run_forever (procs/_looprun.py): re-entering
        # uvloop for every idle pass cost a socket pair and set_wakeup_fd per pass
        stage = rt.adopt(proc)
        stack.callback(stage.close)
        runner = LoopRunner(
            loop, stage, rt.stop, timeout_s=config.wake_timeout_s,
            service=rt.service, on_fault=rt.on_fault,
        )  # fmt: skip
        runner.watch(WakeListener(config.inference_pub, wake_topic("sig")))
        gc.collect()
        gc.freeze()  # start-up objects leave the collector's generations: shorter pauses
        rt.service()
        code = runner.run()
        rt.service()  # the registry ends with the final counts
        return code


if __name__ == "__main__":
    sys.exit(main())
