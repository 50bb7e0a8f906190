"""``python -m procs.hotpath CONFIG``: run the colocated hot path (see procs.hotpath.proc)."""

from __future__ import annotations

import sys

from procs.hotpath.proc import main

if __name__ == "__main__":
    sys.exit(main())
