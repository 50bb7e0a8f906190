"""``python -m procs.features CONFIG``: run the features process (see procs.features.proc)."""

from __future__ import annotations

import sys

from procs.features.proc import main

if __name__ == "__main__":
    sys.exit(main())
