"""Keep secrets out of log lines: a logging filter that masks known values and secret-ish fields.

Known values are registered where they are loaded (keystore, key file, the environment);
``key=value`` fields whose key names a secret (``secret``, ``api_key``, ``passphrase``,
``token``, ``sign``) are masked too, so a secret nobody registered still does not leak by name.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import Final

MASK: Final = "***"
MIN_SECRET_CHARS: Final = 6  # shorter values would mask ordinary words
_FIELD: Final = re.compile(
    r"""(?ix)
    (["']?\b(?:api[_-]?key|apikey|secret|passphrase|password|token|sign|signature)["']?
    \s*[=:]\s*["']?)
    ([^\s"',;&}]+)
    """
)
_lock = threading.Lock()
_known: set[str] = set()
_pattern: list[re.Pattern[str] | None] = [None]


def register_secret(*values: str) -> None:
    """Mask every later occurrence of each value (6 characters or more) in log records."""
    with _lock:
        before = len(_known)
        _known.update(v for v in values if len(v) >= MIN_SECRET_CHARS)
        if len(_known) != before:
            longest_first = sorted(_known, key=len, reverse=True)
            _pattern[0] = re.compile("|".join(re.escape(v) for v in longest_first))


def register_from_environ(environ: dict[str, str], names: Iterable[str]) -> None:
    register_secret(*(environ[n] for n in names if environ.get(n)))


def redact(text: str) -> str:
    """``text`` with every registered secret and every secret-named field value masked."""
    pat = _pattern[0]
    if pat is not None:
        text = pat.sub(MASK, text)
    return _FIELD.sub(lambda m: m.group(1) + MASK, text)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message and traceback text with ``redact`` before it is emitted."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = redact(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
