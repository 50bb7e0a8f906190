"""The market-data path: the venue's public WS and REST depth → normalised records in rings
``md.book`` and ``md.trade`` (``stage.py``: ``IngestProc``; ``normalise.py``, ``watchdog.py``,
``config.py``; ``serve.py``: the composition the ingest program and procs.hotpath run).
"""

from __future__ import annotations

from procs.marketdata.config import IngestConfig

__all__ = ["IngestConfig"]
