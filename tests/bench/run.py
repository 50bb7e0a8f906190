"""Run every tests/bench/bench_*.py (or those named), print a table, write .bench/results.json.

Usage: python -m tests.bench.run [--quick] [name-substring ...]
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path

from tests.bench._common import Result, table, write

RESULTS = Path(".bench/results.json")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer samples (smoke run)")
    ap.add_argument("only", nargs="*", help="run only modules whose name contains one of these")
    args = ap.parse_args(argv)
    here = Path(__file__).parent
    results: list[Result] = []
    for mod in sorted(m.name for m in pkgutil.iter_modules([str(here)])):
        if not mod.startswith("bench_") or (args.only and not any(s in mod for s in args.only)):
            continue
        print(f"== {mod}", file=sys.stderr, flush=True)
        got = importlib.import_module(f"tests.bench.{mod}").run(quick=args.quick)
        results.extend(got)
        write(got, RESULTS)  # keep what finished even if a later module fails
    print(table(results))
    print(f"\nwrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
