"""``python -m procs.backtest ...``: the same as ``bitrader backtest``."""

from __future__ import annotations

import sys

from procs.backtest.cli import main

if __name__ == "__main__":
    sys.exit(main())
