"""``bitrader train``: features + labels from captures (or a simulated capture), fit, export ONNX.

    bitrader train --captures DIR_OR_FILE [...] --seed N [--out PATH.onnx [--force]]
    bitrader train --from-sim --seed N [--sim-duration-s S] [--sim-dir DIR] [--out ...]

Writes NAME.onnx and NAME.card.json, by default to a new path under run/models/. The card holds
the promotion gate's verdict (procs.ml.gate); a model that does not beat the rule-based scorer
and a no-skill baseline on held-out data is written but marked not promotable. ``--out`` refuses
a file git tracks (configs/models/default.onnx among them) unless ``--force``.
Exit codes: 0 done (promotable or not: read the last line), 2 bad arguments or unusable data.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Final

from procs.ml.train import TrainConfig, card_path, train_from_captures
from procs.tickstore.store import CaptureError, list_captures

EXIT_USAGE = 2
ROOT: Final = Path(__file__).resolve().parent.parent
MODELS_DIR: Final = ROOT / "run" / "models"  # the default --out goes here, a new file each run
SHIPPED: Final = ROOT / "configs" / "models" / "default.onnx"


def _parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    ap = argparse.ArgumentParser(prog="bitrader train", description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--captures", nargs="+", metavar="DIR_OR_FILE", help="capture files/dirs")
    src.add_argument("--from-sim", action="store_true", help="simulate a capture with simex")
    ap.add_argument(
        "--out", help="ONNX path (default: a new run/models/model-<UTC time>-seed<N>.onnx)"
    )
    ap.add_argument("--force", action="store_true", help="let --out replace a file git tracks")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--horizon-s", type=float, default=d.horizon_s)
    ap.add_argument("--deadband-bps", type=float, default=d.deadband_bps)
    ap.add_argument("--val-frac", type=float, default=d.val_frac)
    ap.add_argument("--gap-s", type=float, default=None, help="default: the horizon")
    ap.add_argument("--c", type=float, default=d.c, help="inverse L2 strength")
    ap.add_argument("--gate-blocks", type=int, default=d.gate_blocks, help="held-out time blocks")
    ap.add_argument("--gate-z", type=float, default=d.gate_z, help="gate margin in block SEs")
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


def default_out(seed: int, now: dt.datetime | None = None) -> Path:
    """A path under run/models/ that does not exist yet."""
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    base = MODELS_DIR / f"model-{stamp}-seed{seed}"
    out, i = base.with_suffix(".onnx"), 1
    while out.exists() or card_path(out).exists():
        out, i = base.with_name(f"{base.name}-{i}.onnx"), i + 1
    return out


def is_tracked(path: Path) -> bool:
    """True when git tracks ``path`` (False outside a work tree or without git)."""
    p = path.resolve()
    if not p.parent.is_dir():
        return False
    try:
        r = subprocess.run(
            ["git", "-C", str(p.parent), "ls-files", "--error-unmatch", "--", p.name],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def check_out(out: Path, *, force: bool) -> None:
    """Raise ValueError when writing ``out`` (or its card) would replace a tracked file."""
    if force:
        return
    for p in (out, card_path(out)):
        if p.resolve() in (SHIPPED.resolve(), card_path(SHIPPED).resolve()) or is_tracked(p):
            raise ValueError(
                f"--out would overwrite {p}, a file git tracks; pick a new path, or add --force "
                "(configs/models/default.onnx is the shipped model: see docs/models.md)"
            )


def _summary(out: Path, card: dict[str, Any]) -> str:
    val = card["metrics"]["validation"]
    summary = {k: val[k] for k in ("n", "hit_rate", "auc_up_vs_down", "information_coefficient")}
    g = card["gate"]
    verdict = (
        "PROMOTABLE: beats the rule-based scorer and the no-skill baseline on held-out data"
        if g["promotable"]
        else "NOT PROMOTABLE (inference will not make it champion): " + "; ".join(g["reasons"])
    )
    return f"wrote {out} and {card_path(out)}; validation {json.dumps(summary)}\n{verdict}"


def _run(args: argparse.Namespace) -> int:
    cfg = TrainConfig(
        horizon_s=args.horizon_s,
        deadband_bps=args.deadband_bps,
        val_frac=args.val_frac,
        gap_s=args.gap_s,
        seed=args.seed,
        c=args.c,
        model_version=args.model_version,
        gate_blocks=args.gate_blocks,
        gate_z=args.gate_z,
    )
    out = Path(args.out) if args.out else default_out(args.seed)
    check_out(out, force=args.force)
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
    print(_summary(out, card))
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
