"""Render .bench/results.json as a markdown table (for docs/benchmarks.md).

Usage: python -m tests.bench.report [RESULTS.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _num(v: float) -> str:
    if v != v:  # NaN
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    rows = json.loads(Path(args[0] if args else ".bench/results.json").read_text())
    print("| name | metric | value | unit | baseline | baseline value | ratio | goal |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['name']} | {r['metric']} | {_num(r['value'])} | {r['unit']} | "
            f"{r['baseline_name']} | {_num(r['baseline_value'])} | {r['ratio']:.3g} | "
            f"{r.get('goal', '')} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
