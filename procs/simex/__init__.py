"""simex: a Bitunix-compatible USDT-M perpetual futures exchange on loopback.

Pure parts: ``book`` (price-time order book), ``engine`` (accounts, positions, orders),
``marketgen`` (seeded order flow), ``faults`` (fault state). I/O parts: ``rest``, ``ws``,
``control``, ``state``, ``app`` (composition), ``__main__`` (``bitrader sim``).
"""

from procs.simex.config import SimexConfig

__all__ = ["SimexConfig"]
