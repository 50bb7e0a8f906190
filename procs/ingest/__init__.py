"""Market-data ingest: Bitunix public WS (picows on uvloop) → rings ``md.book`` and ``md.trade``.

``python -m procs.ingest CONFIG.toml`` runs it; this package root imports no I/O library.
"""

from __future__ import annotations

from procs.marketdata.config import IngestConfig

__all__ = ["IngestConfig"]
