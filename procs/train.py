"""``bitrader train``: features + labels from captures (or a simulated capture), fit, export ONNX.

    bitrader train --captures DIR_OR_FILE [...] --out configs/models/NAME.onnx --seed N
    bitrader train --from-sim --seed N [--sim-duration-s S] [--sim-dir DIR] --out ...

Writes NAME.onnx and NAME.card.json. Exit codes: 0 done, 2 bad arguments or unusable data.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from procs.capture.store import CaptureError, list_captures
from procs.ml.train import TrainConfig, card_path, train_from_captures

EXIT_USAGE = 2
DEFAULT_OUT = "configs/models/default.onnx"


def _parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    ap = argparse.ArgumentParser(prog="bitrader train", description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--captures", nargs="+", metavar="DIR_OR_FILE", help="capture files/dirs")
    src.add_argument("--from-sim", action="store_true", help="simulate a capture with simex")
    ap.add_argument("--out", default=DEFAULT_OUT, help=f"ONNX path (default {DEFAULT_OUT})")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--horizon-s", type=float, default=d.horizon_s)
    ap.add_argument("--deadband-bps", type=float, default=d.deadband_bps)
    ap.add_argument("--val-frac", type=float, default=d.val_frac)
    ap.add_argument("--gap-s", type=float, default=None, help="default: the horizon")
    ap.add_argument("--c", type=float, default=d.c, help="inverse L2 strength")
    ap.add_argument("--model-version", type=int, default=d.model_version)
    ap.add_argument("--processes", type=int, default=1, help="parallel capture files")
    ap.add_argument("--sim-duration-s", type=float, default=1800.0)
    ap.add_argument("--sim-dir", help="keep the simulated capture here (default: a temp dir)")
    return ap


def _capture_paths(items: list[str]) -> list[Path]:
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            paths += list_captures(p)
        elif p.is_file():
            paths.append(p)
        else:
            raise CaptureError(f"{p}: no such file or directory")
    if not paths:
        raise CaptureError(f"no capture files in {' '.join(items)}")
    return paths


def _run(args: argparse.Namespace) -> int:
    cfg = TrainConfig(
        horizon_s=args.horizon_s,
        deadband_bps=args.deadband_bps,
        val_frac=args.val_frac,
        gap_s=args.gap_s,
        seed=args.seed,
        c=args.c,
        model_version=args.model_version,
    )
    out = Path(args.out)
    if args.from_sim:
        from procs.ml.simcapture import write_sim_capture  # imports simex only when asked

        with tempfile.TemporaryDirectory(prefix="bitrader-sim-") as tmp:
            sim_dir = Path(args.sim_dir or tmp)
            paths = write_sim_capture(sim_dir, args.seed, args.sim_duration_s)
            print(f"simulated capture: {' '.join(map(str, paths))}", file=sys.stderr)
            card = train_from_captures(paths, out, cfg, processes=args.processes)
    else:
        paths = _capture_paths(args.captures)
        card = train_from_captures(paths, out, cfg, processes=args.processes)
    val = card["metrics"]["validation"]
    summary = {k: val[k] for k in ("n", "hit_rate", "auc_up_vs_down", "information_coefficient")}
    print(f"wrote {out} and {card_path(out)}; validation {json.dumps(summary)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``bitrader train``; return the exit code."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # argparse has printed its message
        return int(e.code or 0)
    try:
        return _run(args)
    except (CaptureError, ValueError, OSError) as e:
        print(f"bitrader train: {e}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
