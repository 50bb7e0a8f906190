"""Start ring helper processes for integration tests and read their lines with a deadline."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class LineReader:
    """Read whole lines from a child's stdout pipe, each read bounded by a timeout."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self._fd = proc.stdout.fileno()
        self._buf = b""

    def readline(self, timeout_s: float) -> str:
        """Return the next line without its newline; raise TimeoutError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._fd], [], [], left)[0]:
                raise TimeoutError(f"no line within {timeout_s}s (have {self._buf!r})")
            chunk = os.read(self._fd, 65536)
            if not chunk:
                raise EOFError(f"child closed stdout (have {self._buf!r})")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()


@contextmanager
def spawn(module: str, *args: str) -> Iterator[tuple[subprocess.Popen[bytes], LineReader]]:
    """Run ``python -m module args`` from the repository root; kill it on the way out."""
    cmd = [sys.executable, "-m", module, *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE)
    try:
        yield proc, LineReader(proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()
