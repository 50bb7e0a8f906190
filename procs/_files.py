"""Private files: the run directory 0700, everything in it 0600, whatever the caller's umask.

Every process sets ``PRIVATE_UMASK`` at start (``Runtime.start``, simex, ``bitrader up`` for
supervisord), so what it creates is private; these helpers add an explicit mode where a file may
be written by a command run from a shell with a looser umask (kill switch, backups, keys).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

PRIVATE_UMASK: Final = 0o077
DIR_MODE: Final = 0o700
FILE_MODE: Final = 0o600


def private_umask() -> int:
    """Set the process's umask to 077; return the previous one."""
    return os.umask(PRIVATE_UMASK)


def private_dir(path: str | Path) -> Path:
    """Create ``path`` (and parents) if missing and make it 0700; return it."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    os.chmod(p, DIR_MODE)
    return p


def chmod_private(*paths: str | Path) -> None:
    """Make each existing file 0600 (missing ones are skipped: a WAL may not exist yet)."""
    for p in paths:
        try:
            os.chmod(p, FILE_MODE)
        except FileNotFoundError:
            continue


def write_private(path: str | Path, data: bytes, *, durable: bool = False) -> None:
    """Replace ``path`` atomically with ``data`` in a 0600 file (write, optional fsync, rename)."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # an existing tmp file keeps its old mode otherwise
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, p)
    if durable:
        dfd = os.open(p.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)  # make the rename itself durable
        finally:
            os.close(dfd)


def loose_mode(path: str | Path) -> int:
    """The group/other permission bits of ``path`` (0 for a private file)."""
    return os.stat(path).st_mode & 0o077
