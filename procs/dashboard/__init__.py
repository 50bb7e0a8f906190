"""Dashboard: the risk dashboard, a web page for whoever answers for the money.

Reads execution's events (ZeroMQ), its journal (SQLite, read-only) and every process's health
(control sockets); writes nothing but the kill switch and its own audit log.

Modules: ``config`` (the ``[dashboard]`` section), ``auth`` (password, sessions, CSRF, login
rate limit, IP allowlist: pure logic), ``view`` (the page's state, built from rows and events:
pure logic), ``sources`` (the seams that read: journal, events, health), ``control`` (the seams
that write: kill switch, audit), ``app`` (aiohttp routes), ``__main__`` (the composition root).
"""

from __future__ import annotations
