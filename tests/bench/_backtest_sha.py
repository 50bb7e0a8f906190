"""sha256 of the backtest's event log and intents over a seeded simcapture: the before/after
proof that a change to the trading core leaves every order, fill, position and risk event as it
was (docs/benchmarks.md, "Issue 12 item 1: integers on the hot path").

    cd TREE && PYTHONPATH=TREE .venv/bin/python BRANCH/tests/bench/_backtest_sha.py \
        SECONDS SEED fixed|vol|tight OUT

TREE is the tree under test (for "before", a ``git archive`` of the other commit in a scratch
directory, with the shm extension copied in, run with the same venv); its configs are used.
Writes the log (each event after its 4-byte little-endian length) to OUT and the intents, as
JSON, to OUT.intents.json, and prints both hashes (the first 16 hex digits).
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import msgspec

from procs._config import decode_section, load_env, read_toml
from procs.backtest.config import BacktestConfig
from procs.backtest.latency import LatencyConfig, make_latency
from procs.backtest.run import run_execution, scratch_dir
from procs.backtest.signals import compute_signals
from procs.featurecalc.engine import FEATURES
from procs.ml.simcapture import sim_records
from procs.models.model import OnnxModel
from procs.trading.config import ExecutionConfig

D = Decimal


def _config(root: Path, variant: str) -> ExecutionConfig:
    path = root / "configs" / "demo.toml"
    exe = decode_section(read_toml(path), "execution", ExecutionConfig, path=path,
                         env=load_env(path))  # fmt: skip
    replace = msgspec.structs.replace
    if variant == "vol":
        strategy = replace(exe.strategy, sizing="vol_scaled", improve_ticks=1, requote_ticks=1,
                           take_score=0.6)  # fmt: skip
        return replace(exe, strategy=strategy)
    if variant == "tight":
        strategy = replace(exe.strategy, target_notional_usdt=D(180), improve_ticks=2,
                           requote_ticks=1, take_score=0.5)  # fmt: skip
        risk = replace(exe.risk, max_order_notional_usdt=D(300), max_position_notional_usdt=D(500),
                       max_total_notional_usdt=D("700.5"), price_collar_mid_bps=D("1.5"),
                       max_orders_per_window=50)  # fmt: skip
        return replace(exe, strategy=strategy, risk=risk)
    if variant != "fixed":
        raise SystemExit(f"variant {variant!r}: fixed, vol or tight")
    return exe


def main(argv: list[str]) -> None:
    seconds, seed, variant, out = float(argv[0]), int(argv[1]), argv[2], argv[3]
    root = Path.cwd()
    exe = _config(root, variant)
    bt = BacktestConfig(latency=LatencyConfig(), progress="off", batching="fast")
    books, trades = sim_records(seed, seconds)
    model_bytes = (root / "configs" / "models" / "default.onnx").read_bytes()
    model = OnnxModel.from_bytes(model_bytes, FEATURES, batch_max=256)
    _, sigs = compute_signals(
        books, trades, n_symbols=2, mark_degenerate_stale=True, model=model, batch_max=256,
        feat_latency_ns=50_000, sig_latency_ns=100_000, chunk_books=bt.chunk_books,
    )  # fmt: skip
    c0 = time.process_time()
    with tempfile.TemporaryDirectory(dir=scratch_dir()) as work:
        r = run_execution(exe, bt, make_latency(bt.latency), books, trades, sigs,
                          work_dir=Path(work))  # fmt: skip
    cpu = time.process_time() - c0
    log = b"".join(len(e).to_bytes(4, "little") + e for e in r.events)
    intents = json.dumps(r.intents, sort_keys=True, default=str).encode()
    Path(out).write_bytes(log)
    Path(out + ".intents.json").write_bytes(intents)
    print(
        f"{variant} {seconds:g} s seed {seed}: events {len(r.events)} sha256 "
        f"{hashlib.sha256(log).hexdigest()[:16]}, intents {len(r.intents)} sha256 "
        f"{hashlib.sha256(intents).hexdigest()[:16]} ({cpu:.2f} CPU s)"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
