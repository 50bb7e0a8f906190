"""The sweep's results: one table (``results.parquet``), its ranking of parameter sets, each
parameter's sensitivity, and ``results.html`` (self-contained: tables and CSS bars, no script,
no network).

Columns: ``point``, ``params`` (the set, canonical JSON), one ``param:KEY`` column per grid key,
``period``, ``period_start``, ``period_end``, ``sample`` (``all`` in a sweep; ``out`` / ``in``
in walk-forward), ``train_period``, ``status``, ``error``, ``cached``, ``seconds``, ``worker``,
``model``, the figures of ``FIGURES`` (from each run's ``summary.json``) and ``summary`` (the
whole summary, JSON). Ranking and sensitivity read the rows a set is judged on: ``out`` rows in
walk-forward (out-of-sample only), every row in a plain sweep.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

__all__ = ["FIGURES", "figures", "rank", "selection", "sensitivity", "write_results"]

# figure -> +1 when higher is better, -1 when lower is
FIGURES: Final[dict[str, int]] = {
    "pnl_net": 1,
    "pnl_spread_capture": 1,
    "pnl_fees": 1,
    "pnl_funding": 1,
    "pnl_inventory_and_rest": 1,
    "turnover_usdt": 1,
    "max_drawdown_usdt": -1,
    "sharpe": 1,
    "sortino": 1,
    "fills": 1,
    "orders_sent": 1,
    "cancels_sent": 1,
    "refusals": -1,
    "fill_ratio_orders": 1,
    "books": 1,
    "trades": 1,
}


def _num(x: Any) -> float | None:
    return None if x is None else float(x)


def figures(summary: dict[str, Any] | None) -> dict[str, Any]:
    """The table's figure columns from one run's summary (None where the run failed)."""
    s = summary or {}
    pnl, orders, daily, ev = (s.get(k) or {} for k in ("pnl", "orders", "daily", "events"))
    out: dict[str, Any] = {
        "pnl_net": _num(pnl.get("net")),
        "pnl_spread_capture": _num(pnl.get("spread_capture")),
        "pnl_fees": _num(pnl.get("fees")),
        "pnl_funding": _num(pnl.get("funding")),
        "pnl_inventory_and_rest": _num(pnl.get("inventory_and_rest")),
        "turnover_usdt": _num(pnl.get("turnover_usdt")),
        "max_drawdown_usdt": _num(s.get("max_drawdown_usdt")),
        "sharpe": _num(daily.get("sharpe")),
        "sortino": _num(daily.get("sortino")),
        "fills": _num(s.get("fills")),
        "orders_sent": _num(orders.get("sent")),
        "cancels_sent": _num(orders.get("cancels_sent")),
        "refusals": _num(orders.get("refusals")),
        "fill_ratio_orders": _num(orders.get("fill_ratio_orders")),
        "books": _num(ev.get("books")),
        "trades": _num(ev.get("trades")),
    }
    for h, v in sorted((pnl.get("markouts") or {}).items()):
        out[f"markout_{h}"] = _num(v)
    return out


def _param_column(values: list[Any]) -> list[Any]:
    """Numbers stay numbers; anything else (strings, lists, mixed) becomes its JSON text."""
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return [float(v) for v in values]
    return [v if isinstance(v, str) else json.dumps(v, sort_keys=True) for v in values]


def table(rows: list[dict[str, Any]], keys: Sequence[str]) -> Any:
    """The results as a pandas DataFrame, one row per run."""
    import pandas as pd

    recs = []
    for r in rows:
        summary = r.get("summary")
        rec = {k: v for k, v in r.items() if k not in ("summary", "key")}
        rec["key"] = r.get("key")
        rec["status"] = r.get("status", "failed")
        rec["error"] = r.get("error")
        rec["model"] = (summary or {}).get("model")
        rec.update(figures(summary))
        rec["summary"] = None if summary is None else json.dumps(summary, sort_keys=True)
        recs.append(rec)
    df = pd.DataFrame.from_records(recs)
    for k in keys:
        col = f"param:{k}"
        if col in df:
            df[col] = _param_column(df[col].tolist())
    for c in ("seconds", "cached"):
        if c not in df:
            df[c] = None
    for c in ("error", "worker", "model", "train_period", "key", "summary"):
        if c not in df:
            df[c] = None
        df[c] = df[c].astype(object).where(df[c].notna(), None)
    return df


def judged(df: Any) -> Any:
    """The rows a set is ranked on: out-of-sample in walk-forward, all in a plain sweep."""
    return df[df["sample"] != "in"]


def rank(df: Any, keys: Sequence[str], metric: str) -> Any:
    """One row per parameter set: its metric's mean over the judged periods (failed runs count
    against it: a set with a failed period ranks after every complete one), worst, spread."""
    import pandas as pd

    d = judged(df)
    sign = FIGURES.get(metric, 1)
    out = []
    for params, g in d.groupby("params", sort=False):
        ok = g[g["status"] == "ok"]
        vals = ok[metric].dropna()
        rec: dict[str, Any] = {"params": params}
        for k in keys:
            rec[f"param:{k}"] = g[f"param:{k}"].iloc[0]
        rec.update(
            {
                "periods": len(g),
                "failed": int((g["status"] != "ok").sum()),
                f"{metric}_mean": float(vals.mean()) if len(vals) else math.nan,
                f"{metric}_worst": float((vals * sign).min() * sign) if len(vals) else math.nan,
                f"{metric}_std": float(vals.std(ddof=1)) if len(vals) > 1 else math.nan,
            }
        )
        out.append(rec)
    r = pd.DataFrame.from_records(out)
    if r.empty:
        return r
    r["_score"] = (r[f"{metric}_mean"] * sign).fillna(-math.inf)
    r = r.sort_values(["failed", "_score"], ascending=[True, False], kind="stable")
    return r.drop(columns="_score").reset_index(drop=True)


def sensitivity(df: Any, keys: Sequence[str], metric: str) -> dict[str, Any]:
    """Per parameter: the metric's mean over the judged ok runs at each of its values (the
    marginal means, every other parameter averaged over), and their spread (max - min)."""
    d = judged(df)
    d = d[(d["status"] == "ok") & d[metric].notna()]
    out: dict[str, Any] = {}
    for k in keys:
        col = f"param:{k}"
        g = d.groupby(col, sort=True)[metric].agg(["mean", "count"]).reset_index()
        spread = float(g["mean"].max() - g["mean"].min()) if len(g) else math.nan
        out[k] = {"means": g.rename(columns={col: "value"}), "spread": spread}
    return out


def selection(df: Any, metric: str) -> Any:
    """Walk-forward with ``--in-sample``: on each training period, the set that did best there
    (in sample), and how it then did on the next period (out of sample) beside the set that
    did best out of sample (``regret``: what choosing in sample cost). The mean of
    ``{metric}_out`` is the figure of the whole procedure, choice of parameters included."""
    import pandas as pd

    sign = FIGURES.get(metric, 1)
    ins = df[(df["sample"] == "in") & (df["status"] == "ok") & df[metric].notna()]
    rows = []
    for tp, g in ins.groupby("train_period", sort=True):
        chosen = g.loc[(g[metric] * sign).idxmax()]
        o = df[(df["sample"] == "out") & (df["train_period"] == tp)]
        ok = o[(o["status"] == "ok") & o[metric].notna()]
        mine = ok[ok["params"] == chosen["params"]]
        best = ok.loc[(ok[metric] * sign).idxmax()] if len(ok) else None
        out = float(mine[metric].iloc[0]) if len(mine) else math.nan
        best_out = math.nan if best is None else float(best[metric])
        rows.append(
            {
                "train_period": tp,
                "test_period": o["period"].iloc[0] if len(o) else None,
                "chosen": chosen["params"],
                f"{metric}_in": float(chosen[metric]),
                f"{metric}_out": out,
                "best_out": None if best is None else best["params"],
                f"{metric}_best_out": best_out,
                "regret": (best_out - out) * sign,
            }
        )
    return pd.DataFrame.from_records(rows)


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _html_table(df: Any, cols: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(r[c]))}</td>" for c in cols) + "</tr>"
        for _, r in df.iterrows()
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _bars(means: Any, metric: str) -> str:
    """Marginal means as a table with a CSS bar each (width ~ distance from the lowest)."""
    lo, hi = float(means["mean"].min()), float(means["mean"].max())
    rows = []
    for _, r in means.iterrows():
        w = 100.0 if hi == lo else 5 + 95 * (float(r["mean"]) - lo) / (hi - lo)
        rows.append(
            f"<tr><td>{html.escape(_fmt(r['value']))}</td><td>{html.escape(_fmt(r['mean']))}"
            f'</td><td>{int(r["count"])}</td><td><div class="bar" style="width:{w:.0f}%">'
            "</div></td></tr>"
        )
    return (
        f"<table><tr><th>value</th><th>mean {html.escape(metric)}</th><th>runs</th>"
        f'<th class="w">relative</th></tr>{"".join(rows)}</table>'
    )


def render(df: Any, ranking: Any, sens: dict[str, Any], info: dict[str, Any], top: int) -> str:
    metric = info["metric"]
    keys = [c[6:] for c in df.columns if c.startswith("param:")]
    pcols = [f"param:{k}" for k in keys]
    judged_on = "out-of-sample periods only" if info["walk_forward"] else "every period"
    parts = [
        "<h1>bitrader backtest sweep</h1>",
        f"<p>{info['runs']} runs ({info['ok']} ok, {info['failed']} failed, {info['cached']} "
        f"from the cache); periods: {html.escape(', '.join(info['periods']))}; "
        f"{'walk-forward; ' if info['walk_forward'] else ''}metric <b>{html.escape(metric)}</b>, "
        f"ranked on {judged_on}; code {html.escape(info['code'])}</p>",
        f"<h2>Best sets (top {top})</h2>",
    ]
    if not ranking.empty:
        cols = [*pcols, "periods", "failed", f"{metric}_mean", f"{metric}_worst", f"{metric}_std"]
        parts.append(_html_table(ranking.head(top), cols))
    parts.append("<h2>Sensitivity (marginal means)</h2>")
    for k, s in sens.items():
        parts.append(f"<h3>{html.escape(k)}: spread {html.escape(_fmt(s['spread']))}</h3>")
        if len(s["means"]):
            parts.append(_bars(s["means"], metric))
    chosen = selection(df, metric)
    if len(chosen):
        mean_out = chosen[f"{metric}_out"].mean()
        parts.append(
            "<h2>Walk-forward selection (chosen in sample, judged out of sample)</h2>"
            f"<p>mean {html.escape(metric)} of the chosen sets out of sample: "
            f"{html.escape(_fmt(float(mean_out)))}</p>"
        )
        parts.append(_html_table(chosen, list(chosen.columns)))
    failed = df[df["status"] != "ok"]
    if len(failed):
        parts.append(f"<h2>Failed runs ({len(failed)})</h2>")
        parts.append(_html_table(failed, ["point", *pcols, "period", "sample", "error"]))
    shown = ["point", *pcols, "period", "sample", "train_period", "status", "cached", "model"]
    shown += [c for c in FIGURES if c in df] + ["seconds"]
    parts.append("<h2>Every run</h2>")
    parts.append(_html_table(df, shown))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>bitrader backtest sweep</title><style>body{font:13px sans-serif;margin:1em}"
        "table{border-collapse:collapse;margin-bottom:1em}th,td{border:1px solid #ccc;"
        "padding:2px 6px;text-align:left;vertical-align:top}th{background:#f4f4f4}"
        ".w{width:240px}.bar{background:#4a7fb5;height:10px}</style></head><body>"
        + "\n".join(parts)
        + "</body></html>\n"
    )


def write_results(
    out: Path,
    rows: list[dict[str, Any]],
    keys: Sequence[str],
    metric: str,
    top: int,
    info: dict[str, Any],
) -> dict[str, Any]:
    """Write ``results.parquet``, ``ranking.parquet`` and ``results.html`` into ``out``."""
    df = table(rows, keys)
    ranking = rank(df, keys, metric)
    sens = sensitivity(df, keys, metric)
    chosen = selection(df, metric)
    df.to_parquet(out / "results.parquet", index=False)
    if not ranking.empty:
        ranking.to_parquet(out / "ranking.parquet", index=False)
    (out / "results.html").write_text(render(df, ranking, sens, info, top))
    (out / "sweep.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    return {
        "table": df,
        "ranking": ranking,
        "sensitivity": sens,
        "selection": chosen,
        "info": info,
    }
