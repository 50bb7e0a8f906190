"""``python -m procs.capture CONFIG``: run the capture process (see procs.capture.proc)."""

from __future__ import annotations

import sys

from procs.capture.proc import main

if __name__ == "__main__":
    sys.exit(main())
