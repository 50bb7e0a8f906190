"""``bitrader backtest``: replay captures through the live feature engine, scorer and execution
process; write ``summary.json``, ``report.html`` and the run's intents and fills to ``--out``.

``bitrader backtest sweep ...`` runs grids of configs over capture periods on Dask
(``procs.backtest.sweep_cli``; ``bitrader backtest sweep --help``).

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from procs._config import EXIT_CONFIG, ConfigError, Env, decode_section, load_env, read_toml
from procs.backtest.compare import compare_journal, parity
from procs.backtest.config import BacktestConfig
from procs.backtest.follow import follow_live
from procs.backtest.latency import LatencyError, make_latency
from procs.backtest.livejournal import FollowError, LiveRun
from procs.backtest.replay import Market, ReplayError, load_market
from procs.backtest.report import write_report
from procs.backtest.run import RunResult, run_execution, scratch_dir
from procs.backtest.signals import Scorer, compute_signals, live_batches
from procs.featurecalc.config import FeaturesConfig
from procs.models.config import InferenceConfig
from procs.trading.config import ExecutionConfig
from shm.records import Records

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
    except ConfigError as exc:
        raise BadInput(str(exc)) from None
    return decode_configs(doc, path, load_env(path))


def decode_configs(
    doc: dict[str, Any], path: str, env: Env
) -> tuple[FeaturesConfig, InferenceConfig, ExecutionConfig, BacktestConfig]:
    """``load_configs`` for a parsed document (the sweep's grid points are edited documents)."""
    try:
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
    return load_model_bytes(Path(path).read_bytes(), path, batch_max)


def load_model_bytes(data: bytes, source: str, batch_max: int) -> tuple[Scorer, str]:
    """``load_model`` for bytes already read (a sweep ships its models to the workers)."""
    from procs.featurecalc.engine import FEATURES
    from procs.models.errors import ModelError
    from procs.models.model import OnnxModel

    try:
        m = OnnxModel.from_bytes(
            data, FEATURES, batch_max=batch_max, source=source, require_promotable=True
        )
    except ModelError as exc:
        raise BadInput(f"model refused: {exc}") from None
    return m, f"{source} version {m.version}"


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


Configs = tuple[FeaturesConfig, InferenceConfig, ExecutionConfig, BacktestConfig]


@dataclass
class Simulation:
    """One backtest's inputs and results: what ``write_report`` and ``summarise`` take."""

    market: Market
    feats: Records
    sigs: Records
    result: RunResult
    bt: BacktestConfig
    config: ExecutionConfig
    latency: dict[str, object]
    model: str
    feat_latency_ns: int
    sig_latency_ns: int

    def report_args(self, parity: dict[str, Any]) -> dict[str, Any]:
        return {
            "market": self.market,
            "result": self.result,
            "bt": self.bt,
            "config": self.config,
            "latency": self.latency,
            "model": self.model,
            "parity": parity,
            "feat_latency_ns": self.feat_latency_ns,
            "sig_latency_ns": self.sig_latency_ns,
        }


def simulate(
    configs: Configs,
    captures: Sequence[str | Path],
    *,
    symbols: Sequence[str] | None,
    from_ns: int | None,
    to_ns: int | None,
    model: tuple[Scorer | None, str],
    progress: str,
) -> Simulation:
    """Replay ``captures`` through the live code: the whole backtest but its report."""
    feat_c, inf_c, exe_c, bt = configs
    chosen = [s for s in exe_c.symbols if not symbols or s.symbol in symbols]
    if symbols and len(chosen) != len(symbols):
        known = [s.symbol for s in exe_c.symbols]
        raise BadInput(f"--symbols {list(symbols)}: configured symbols are {known}")
    try:
        market = load_market(
            captures, symbol_ids=[s.symbol_id for s in chosen], from_ns=from_ns, to_ns=to_ns
        )
        latency = make_latency(bt.latency)
    except (ReplayError, LatencyError) as exc:
        raise BadInput(str(exc)) from None
    if market.books.size == 0:
        raise BadInput("no book records in the selected symbols and time range")
    scorer, model_desc = model
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
    live = bt.batching == "live"
    upd, bar = _progress(progress, market.books.size, "features")
    feats, sigs = compute_signals(
        market.books,
        market.trades,
        n_symbols=feat_c.n_symbols,
        mark_degenerate_stale=feat_c.mark_degenerate_stale,
        model=scorer,
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
    upd, bar = _progress(progress, 2 * market.books.size + market.trades.size, "replay")
    exe_c = _only(exe_c, chosen)
    with tempfile.TemporaryDirectory(prefix="bitrader-backtest-", dir=scratch_dir()) as work:
        result = run_execution(
            exe_c, bt, latency, market.books, market.trades, sigs, work_dir=Path(work), progress=upd
        )
    if bar is not None:
        bar.close()
    return Simulation(
        market, feats, sigs, result, bt, exe_c, latency.describe(), model_desc, feat_ns, sig_ns
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    configs = load_configs(args.config)
    _, inf_c, _, bt = configs
    sim = simulate(
        configs,
        args.captures,
        symbols=args.symbols,
        from_ns=parse_time(args.t_from),
        to_ns=parse_time(args.t_to),
        model=load_model(args.model or inf_c.model_path, inf_c.batch_max),
        progress=args.progress or bt.progress,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    checks = parity(sim.market, sim.feats, sim.sigs)
    if args.compare_journal:
        checks["journal"] = _compare(
            args.compare_journal, sim.config, sim.bt, sim.market, sim.sigs, sim.result
        )
    return write_report(out, **sim.report_args(checks))


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
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sweep"]:
        from procs.backtest.sweep_cli import main as sweep_main

        return sweep_main(argv[1:])
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
