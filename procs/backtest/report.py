"""``summary.json`` and ``report.html`` (self-contained: inline SVG plots from matplotlib, no
script, no network), plus ``intents.jsonl`` and ``fills.jsonl``; all byte for byte reproducible
(no wall clock, fixed SVG ids, sorted JSON keys)."""

from __future__ import annotations

import html
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import numpy as np

from procs.backtest.config import BacktestConfig
from procs.backtest.metrics import MidSeries, attribution, daily_ratios, drawdown, order_stats
from procs.backtest.replay import Market
from procs.backtest.run import RunResult
from procs.trading.config import ExecutionConfig

__all__ = ["write_report"]

NS: Final = 1_000_000_000


def _dumps(obj: Any) -> str:
    return json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n"


def summarise(
    *,
    market: Market,
    result: RunResult,
    bt: BacktestConfig,
    config: ExecutionConfig,
    latency: dict[str, object],
    model: str,
    parity: dict[str, Any],
    feat_latency_ns: int,
    sig_latency_ns: int,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    proc = result.proc
    ids = {s.symbol: s.symbol_id for s in config.symbols}
    mids = MidSeries(market.books, ids)
    t = np.array([e[0] for e in result.equity], dtype=np.int64)
    eq = np.array([float(e[1]) for e in result.equity], dtype=np.float64)
    dd = drawdown(eq)
    span = int(market.books["ts_recv_ns"][-1] - market.books["ts_recv_ns"][0])
    net = result.equity[-1][1] if result.equity else Decimal(0)
    series = {"t": t, "equity": eq, "drawdown": dd}
    for s in ids:
        series[f"pos:{s}"] = np.array([float(e[2].get(s, 0)) for e in result.equity])
    summary = {
        "captures": [str(f) for f in market.files],
        "symbols": sorted(ids),
        "from_ns": int(market.books["ts_recv_ns"][0]),
        "to_ns": int(market.books["ts_recv_ns"][-1]),
        "events": {
            "books": int(market.books.size),
            "trades": int(market.trades.size),
            "signals": int(market.books.size),
        },
        "model": model,
        "orders": order_stats(result.intents, dict(proc.counters), span),
        "fills": len(result.fills),
        "pnl": attribution(result.fills, result.funding, mids, bt.markout_horizons_s, net),
        "max_drawdown_usdt": float(f"{dd.max():.9g}") if dd.size else 0.0,
        "daily": daily_ratios(t, eq, float(bt.initial_balance_usdt)),
        "final_positions": {s: str(proc.positions.net_qty(s)) for s in sorted(ids)},
        "breaker": proc.breaker.state.name,
        "assumptions": {
            "latency": latency,
            "queue": {
                "model": bt.queue.model,
                "power": bt.queue.power,
                "ahead_fraction": bt.queue.ahead_fraction,
            },
            "feat_latency_ns": feat_latency_ns,
            "sig_latency_ns": sig_latency_ns,
            "maker_fee_rate": str(config.paper.maker_fee_rate),
            "taker_fee_rate": str(config.paper.taker_fee_rate),
            "funding_rate": str(bt.funding_rate),
            "funding_interval_s": bt.funding_interval_s,
            "venue_time": "ts_event_ns (never after ts_recv_ns); execution sees ts_sig_ns",
        },
        "parity": parity,
    }
    return summary, series


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _plots(series: dict[str, np.ndarray], summary: dict[str, Any]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "bitrader-backtest"  # fixed ids: the same bytes every run
    plt.rcParams["svg.fonttype"] = "none"
    t = (series["t"] - (series["t"][0] if series["t"].size else 0)) / NS / 60
    out = []
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    a1.plot(t, series["equity"], lw=1)
    a1.set_ylabel("net PnL (USDT)")
    a2.fill_between(t, -series["drawdown"], 0, color="tab:red", alpha=0.5)
    a2.set_ylabel("drawdown")
    a2.set_xlabel("minutes")
    out.append(("Equity and drawdown", _svg(fig)))
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(9, 3))
    for k, v in series.items():
        if k.startswith("pos:"):
            ax.step(t, v, where="post", lw=1, label=k[4:])
    ax.set_ylabel("position (base)")
    ax.set_xlabel("minutes")
    ax.legend(loc="upper left")
    out.append(("Position", _svg(fig)))
    plt.close(fig)
    pnl = summary["pnl"]
    parts = ["spread_capture", "fees", "funding", "inventory_and_rest", "net"]
    fig, (b1, b2) = plt.subplots(1, 2, figsize=(9, 3))
    b1.bar(parts, [pnl[p] for p in parts], color="tab:blue")
    b1.tick_params(axis="x", labelrotation=30)
    b1.set_ylabel("USDT")
    b1.set_title("PnL split")
    hs = list(pnl["markouts"])
    b2.plot(hs, [pnl["markouts"][h] for h in hs], marker="o")
    b2.set_title("markouts (sum over fills)")
    b2.set_ylabel("USDT")
    fig.tight_layout()
    out.append(("PnL split and markouts", _svg(fig)))
    plt.close(fig)
    return out


def _table(d: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(json.dumps(v, default=str))}</td></tr>"
        for k, v in d.items()
    )
    return f"<table>{rows}</table>"


def write_report(out: Path, **kw: Any) -> dict[str, Any]:
    """Write every output file into ``out``; return the summary."""
    summary, series = summarise(**kw)
    result: RunResult = kw["result"]
    (out / "summary.json").write_text(_dumps(summary))
    (out / "intents.jsonl").write_text(
        "".join(json.dumps(i, sort_keys=True) + "\n" for i in result.intents)
    )
    (out / "fills.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "client_id": f.client_id,
                    "symbol": f.symbol,
                    "buy": f.is_buy,
                    "qty": str(f.qty),
                    "price": str(f.price),
                    "fee": str(f.fee),
                    "maker": f.maker,
                    "ts_ns": f.ts_ns,
                },
                sort_keys=True,
            )
            + "\n"
            for f in result.fills
        )
    )
    plots = "".join(
        f"<h2>{html.escape(title)}</h2><figure>{svg}</figure>"
        for title, svg in _plots(series, summary)
    )
    s = summary
    body = [
        "<h1>bitrader backtest</h1>",
        f"<p>{html.escape(', '.join(s['symbols']))}: {s['events']['books']} books, "
        f"{s['events']['trades']} trades; model: {html.escape(s['model'])}</p>",
        "<h2>PnL</h2>",
        _table(dict(s["pnl"])),
        f"<p>max drawdown {s['max_drawdown_usdt']} USDT; daily Sharpe "
        f"{s['daily'].get('sharpe')}, Sortino {s['daily'].get('sortino')} "
        f"({html.escape(str(s['daily'].get('note', '')))})</p>",
        "<h2>Orders</h2>",
        _table(s["orders"]),
        plots,
        "<h2>Assumptions</h2>",
        _table(s["assumptions"]),
        "<h2>Parity with live</h2>",
        _table(
            {
                k: {x: y for x, y in v.items() if x not in ("differences", "unmatched")}
                for k, v in s["parity"].items()
            }
        ),
    ]
    doc = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>bitrader backtest</title><style>body{font:14px sans-serif;max-width:960px;"
        "margin:auto}table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:2px 6px;"
        "text-align:left;vertical-align:top}th{background:#f4f4f4}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )
    (out / "report.html").write_text(doc)
    return summary
