"""Hot reload: watch one model file and hand over a new, checked, warmed-up model when it changes.

The file is looked at (stat: inode, mtime, size) no more often than the caller asks. A change
is acted on once the stat has stayed the same for two looks (a file still being written is left
alone); the bytes are then read once, hashed, and loaded from those very bytes. A file that
fails to load is refused and remembered until it changes again; the running model stays. The
champion's loader also refuses a sound model that did not pass the promotion gate
(``ModelNotPromotableError``): counted apart, in ``not_promotable_total``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from typing import Generic, TypeVar

from procs.models.errors import ModelError, ModelLoadError, ModelNotPromotableError

__all__ = ["ModelWatcher", "file_sha256"]

log = logging.getLogger(__name__)

M = TypeVar("M", covariant=True)
Fingerprint = tuple[int, int, int]  # inode, mtime_ns, size


def file_sha256(data: bytes) -> str:
    """Return the hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _stat(path: str) -> Fingerprint | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class ModelWatcher(Generic[M]):
    """Watches ``path`` for the model of one role (``champion`` or ``challenger``).

    ``load(data, source)`` builds, checks and warms up a model, raising ``ModelError`` when the
    bytes are not acceptable. ``poll()`` returns a new model to swap in, or None. One thread.
    """

    def __init__(self, role: str, path: str, load: Callable[[bytes, str], M]) -> None:
        self.role = role
        self.path = path
        self._load = load
        self._seen: Fingerprint | None = None  # the stat of the file the running model came from
        self._pending: Fingerprint | None = None
        self.sha256 = ""  # of the bytes the running model came from
        self._refused_sha = ""
        self.loaded_total = 0
        self.refused_total = 0  # every refusal, not-promotable ones included
        self.not_promotable_total = 0
        self.last_error = ""

    def load_now(self) -> M:
        """Load the file as it is now (start-up); raise ``ModelError`` if it is not usable."""
        fp = _stat(self.path)
        try:
            model, sha = self._read_and_load()
        except ModelNotPromotableError:
            self.refused_total += 1
            self.not_promotable_total += 1
            raise
        self._seen, self._pending, self.sha256 = fp, None, sha
        self.loaded_total += 1
        return model

    def _read_and_load(self) -> tuple[M, str]:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise ModelLoadError(f"model {self.path}: cannot read: {exc}") from None
        return self._load(data, self.path), file_sha256(data)

    def mark_seen(self) -> None:
        """Take the file as it is now as the running model's (start-up without a model)."""
        self._seen = _stat(self.path)

    def poll(self) -> M | None:
        """Look at the file once; return a freshly loaded model when it changed and settled."""
        fp = _stat(self.path)
        if fp == self._seen or fp is None:
            self._pending = None  # unchanged, or gone (the running model keeps running)
            return None
        if fp != self._pending:
            self._pending = fp  # changed: act once it has stayed like this for one more look
            return None
        self._pending = None
        self._seen = fp
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except OSError as exc:
            self._refuse(f"cannot read: {exc}", "")
            return None
        sha = file_sha256(data)
        if sha in (self.sha256, self._refused_sha):
            return None  # touched, or copied over with bytes already judged
        try:
            model = self._load(data, self.path)
        except ModelNotPromotableError as exc:
            self.not_promotable_total += 1
            self._refuse(str(exc), sha)
            return None
        except ModelError as exc:
            self._refuse(str(exc), sha)
            return None
        self.sha256 = sha
        self.loaded_total += 1
        self.last_error = ""
        return model

    def _refuse(self, error: str, sha: str) -> None:
        self.refused_total += 1
        self.last_error = error
        self._refused_sha = sha
        log.error(
            "model refused role=%s path=%s sha256=%s error=%s (the running model stays)",
            *(self.role, self.path, sha[:16], error),
        )
