"""``bitrader backtest``: replay captures through the live feature engine, scorer and execution
process; write ``summary.json``, ``report.html`` and the run's intents and fills to ``--out``.

Exit codes: 0 done, 1 a fault, 78 bad input (a config the live code refuses, captures with
gaps or another schema, a model whose features differ).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from procs._config import EXIT_CONFIG, ConfigError, decode_section, load_env, read_toml
from procs.backtest.compare import compare_journal, parity
from procs.backtest.config import BacktestConfig
from procs.backtest.follow import follow_live
from procs.backtest.latency import LatencyError, make_latency
from procs.backtest.livejournal import FollowError, LiveRun
from procs.backtest.replay import ReplayError, load_market
from procs.backtest.report import write_report
from procs.backtest.run import run_execution, scratch_dir
from procs.backtest.signals import Scorer, compute_signals, live_batches
from procs.featurecalc.config import FeaturesConfig
from procs.models.config import InferenceConfig
from procs.trading.config import ExecutionConfig

log = logging.getLogger("procs.backtest")

EXIT_FAULT: Final = 1
NS: Final = 1_000_000_000


class BadInput(Exception):
    """Input the backtest refuses (exit 78)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bitrader backtest", description=__doc__)
    p.add_argument("--captures", nargs="+", required=True, metavar="DIR|FILE")
    p.add_argument("--config", required=True, metavar="FILE", help="the group's TOML")
    p.add_argument("--symbols", nargs="+", metavar="SYMBOL", help="default: every configured")
    p.add_argument("--from", dest="t_from", metavar="TIME", help="ISO-8601 UTC or epoch ns")
    p.add_argument("--to", dest="t_to", metavar="TIME", help="ISO-8601 UTC or epoch ns")
    p.add_argument("--model", metavar="FILE", help="ONNX model (default: [inference] model)")
    p.add_argument("--out", default="backtest-out", metavar="DIR")
    p.add_argument("--compare-journal", metavar="JOURNAL", help="a live execution journal")
    p.add_argument("--progress", choices=("auto", "on", "off"))
    return p


def parse_time(text: str | None) -> int | None:
    """Epoch ns, or an ISO-8601 time (UTC unless it names a zone)."""
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(f"--from/--to: {text!r} is neither epoch ns nor ISO-8601") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp()) * NS + t.microsecond * 1000


def load_configs(
    path: str,
) -> tuple[FeaturesConfig, InferenceConfig, ExecutionConfig, BacktestConfig]:
    """The live sections, decoded by the live types; ``[backtest]`` when present."""
    try:
        doc = read_toml(path)
        env = load_env(path)
        feat = decode_section(doc, "features", FeaturesConfig, path=path, env=env)
        inf = decode_section(doc, "inference", InferenceConfig, path=path, env=env)
        exe = decode_section(doc, "execution", ExecutionConfig, path=path, env=env)
        bt = (
            decode_section(doc, "backtest", BacktestConfig, path=path, env=env)
            if "backtest" in doc
            else BacktestConfig()
        )
    except ConfigError as exc:
        raise BadInput(str(exc)) from None
    for s in exe.symbols:
        if s.tick is None or s.step is None or s.min_qty is None:
            raise BadInput(
                f"{path}: [[execution.symbols]] {s.symbol} needs tick, step and "
                f"min_qty for a backtest (no venue to ask)"
            )
        if s.symbol_id >= feat.n_symbols:
            raise BadInput(f"{path}: {s.symbol} symbol_id {s.symbol_id} >= features.n_symbols")
    return feat, inf, exe, bt


def load_model(path: str, batch_max: int) -> tuple[Scorer | None, str]:
    """The champion as inference loads it; (None, why) when the file does not exist."""
    if not Path(path).is_file():
        return None, f"no model at {path}: the rule scorer (procs.models.scoring.fallback_score)"
    from procs.featurecalc.engine import FEATURES
    from procs.models.errors import ModelError
    from procs.models.model import OnnxModel

    try:
        m = OnnxModel.from_bytes(
            Path(path).read_bytes(),
            FEATURES,
            batch_max=batch_max,
            source=path,
            require_promotable=True,
        )
    except ModelError as exc:
        raise BadInput(f"model refused: {exc}") from None
    return m, f"{path} version {m.version}"


def _recorded_latency(a: np.ndarray, b: np.ndarray, default_s: float) -> int:
    d = (a - b)[(a > 0) & (b > 0)]
    return int(np.median(d)) if d.size else int(default_s * NS)


def _progress(mode: str, total: int, desc: str) -> tuple[Callable[[int], None] | None, Any]:
    """tqdm (a small, well-kept bar that writes to stderr only) when asked or on a terminal."""
    if mode == "off" or (mode == "auto" and not sys.stderr.isatty()):
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="ev", unit_scale=True, file=sys.stderr)
    return bar.update, bar


def run(args: argparse.Namespace) -> dict[str, Any]:
    feat_c, inf_c, exe_c, bt = load_configs(args.config)
    symbols = [s for s in exe_c.symbols if not args.symbols or s.symbol in args.symbols]
    if args.symbols and len(symbols) != len(args.symbols):
        known = [s.symbol for s in exe_c.symbols]
        raise BadInput(f"--symbols {args.symbols}: configured symbols are {known}")
    try:
        market = load_market(
            args.captures,
            symbol_ids=[s.symbol_id for s in symbols],
            from_ns=parse_time(args.t_from),
            to_ns=parse_time(args.t_to),
        )
        latency = make_latency(bt.latency)
    except (ReplayError, LatencyError) as exc:
        raise BadInput(str(exc)) from None
    if market.books.size == 0:
        raise BadInput("no book records in the selected symbols and time range")
    model, model_desc = load_model(args.model or inf_c.model_path, inf_c.batch_max)
    feat_ns = (
        int(bt.feat_latency_s * NS)
        if bt.feat_latency_s is not None
        else _recorded_latency(
            market.feat["ts_feat_ns"], market.feat["ts_recv_ns"], bt.feat_latency_default_s
        )
    )
    sig_ns = (
        int(bt.sig_latency_s * NS)
        if bt.sig_latency_s is not None
        else _recorded_latency(
            market.sig["ts_sig_ns"], market.sig["ts_feat_ns"], bt.sig_latency_default_s
        )
    )
    mode = args.progress or bt.progress
    live = bt.batching == "live"
    upd, bar = _progress(mode, market.books.size, "features")
    feats, sigs = compute_signals(
        market.books,
        market.trades,
        n_symbols=feat_c.n_symbols,
        mark_degenerate_stale=feat_c.mark_degenerate_stale,
        model=model,
        batch_max=inf_c.batch_max,
        feat_latency_ns=feat_ns,
        sig_latency_ns=sig_ns,
        chunk_books=bt.chunk_books,
        feat_batches=live_batches(market.books, market.feat, "ts_feat_ns") if live else None,
        sig_batches=live_batches(market.books, market.sig, "ts_sig_ns") if live else None,
        recorded=market.sig,
        progress=upd,
    )
    if bar is not None:
        bar.close()
    upd, bar = _progress(mode, 2 * market.books.size + market.trades.size, "replay")
    exe_c = _only(exe_c, symbols)
    with tempfile.TemporaryDirectory(prefix="bitrader-backtest-", dir=scratch_dir()) as work:
        result = run_execution(
            exe_c, bt, latency, market.books, market.trades, sigs, work_dir=Path(work), progress=upd
        )
    if bar is not None:
        bar.close()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    checks = parity(market, feats, sigs)
    if args.compare_journal:
        checks["journal"] = _compare(args.compare_journal, exe_c, bt, market, sigs, result)
    summary = write_report(
        out,
        market=market,
        result=result,
        bt=bt,
        config=exe_c,
        latency=latency.describe(),
        model=model_desc,
        parity=checks,
        feat_latency_ns=feat_ns,
        sig_latency_ns=sig_ns,
    )
    return summary


def _compare(
    journal: str,
    exe_c: ExecutionConfig,
    bt: BacktestConfig,
    market: Any,
    sigs: np.ndarray,
    result: Any,
) -> dict[str, Any]:
    """The live journal's intents against the backtest's: replaying the live run's steps with
    its venue's answers where the journal recorded them (``follow``), else the run's own."""
    try:
        live = LiveRun.load(journal)
    except FollowError as exc:
        out = compare_journal(journal, result.intents)
        out["note"] = f"{exc}: compared with the backtest's own timing and matching"
        return out
    with tempfile.TemporaryDirectory(prefix="bitrader-follow-", dir=scratch_dir()) as work:
        f = follow_live(exe_c, bt, live, market.books, sigs, work_dir=Path(work))
    out = compare_journal(journal, f.intents, followed=True, outside_ns=f.outside_ns)
    out["replay"] = f.describe()
    return out


def _only(c: ExecutionConfig, symbols: Sequence[Any]) -> ExecutionConfig:
    """``symbols`` only; no ``reads`` rows (an audited row per step: a backtest needs none)."""
    import msgspec

    journal = msgspec.structs.replace(c.journal, reads_flush_s=0.0)
    return msgspec.structs.replace(c, symbols=list(symbols), journal=journal)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    logging.getLogger().setLevel(logging.WARNING)
    try:
        summary = run(args)
    except BadInput as exc:
        print(f"bitrader backtest: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    diffs = summary.get("parity", {}).get("journal", {}).get("differences")
    print(json.dumps({k: summary[k] for k in ("events", "orders", "fills", "pnl")}, indent=1))
    if diffs:
        print(f"{len(diffs)} difference(s) from the live journal:", file=sys.stderr)
        for d in diffs:
            print(f"  {d}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
