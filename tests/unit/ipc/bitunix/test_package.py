"""Package boundaries: ipc.bitunix never pulls in zmq or shm; __all__ is importable."""

from __future__ import annotations

import subprocess
import sys

import ipc.bitunix


def test_bitunix_modules_never_import_zmq_or_shm():
    code = (
        "import sys, ipc.bitunix, ipc.bitunix.ws, ipc.bitunix.rest_api;"
        "print(sorted(m for m in sys.modules if m == 'zmq' or m.split('.')[0] == 'shm'))"
    )

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert out.stdout.strip() == "[]"


def test_all_names_resolve():
    assert all(hasattr(ipc.bitunix, name) for name in ipc.bitunix.__all__)
