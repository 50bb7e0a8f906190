"""simex_md_rate: market-data messages/s simex sustains to 4 WS subscribers.

simex runs as its own process (generator at ``events_per_s`` per symbol). Four subscriber
processes (tests/helpers/simex_md_client.py, picows) subscribe depth_book15 + trade on every
symbol in one message, skip a warm-up, then count the frames they receive in a fixed window.
value = the slowest client's frames/s. Baseline = the frames/s a client should get from that
configuration: the same seeded generator run offline for the same simulated time, counting one
depth_book15 push per action that changed the top 15 levels and one trade push per action that
traded (simex's push rules). Ratio ~1 means nothing was skipped or fell behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from procs.exchange.marketgen import BookSnapshot, GenSymbol, MarketGenerator
from procs.simex.config import SimexConfig, SymbolConfig
from tests.bench._common import Result
from tests.conftest import free_port
from tests.helpers.poll import eventually
from tests.helpers.simex_proc import _alive

CLIENTS = 4
SYMBOLS = ("BTCUSDT", "ETHUSDT")


def _config_toml(rest: int, ws: int, ctl: int, events_per_s: float) -> str:
    return "\n".join(
        [
            "[simex]",
            f"rest_port = {rest}",
            f"ws_port = {ws}",
            f"control_port = {ctl}",
            'log_level = "WARNING"',
            "[simex.market]",
            f"events_per_s = {events_per_s}",
            "tick_s = 0.001",
        ]
    )


def expected_rate(events_per_s: float, seconds: float) -> float:
    """Pushes per second one subscriber should receive, from the offline generator."""
    cfg = SimexConfig()
    gens = []
    for s in cfg.symbols:
        assert isinstance(s, SymbolConfig)
        spec = s.spec()
        gens.append(
            GenSymbol(
                symbol=s.symbol, start_price=s.start_price, tick=spec.tick, min_qty=s.min_qty,
                step=spec.step, volatility_bps_per_s=s.volatility_bps_per_s, lot_qty=s.lot_qty(),
            )
        )  # fmt: skip
    m = cfg.market
    gen = MarketGenerator(
        gens, m.seed, events_per_s=events_per_s, levels=m.levels, burst_prob=m.burst_prob,
        trade_frac=m.trade_frac,
    )  # fmt: skip
    warm_ns = 2_000_000_000
    list(gen.events_until(warm_ns))
    pushes = 0
    last_top: dict[str, object] = {}
    traded_at: set[tuple[str, int]] = set()
    for ev in gen.events_until(warm_ns + int(seconds * 1e9)):
        if isinstance(ev, BookSnapshot):
            top = (ev.bids, ev.asks)
            if last_top.get(ev.symbol) != top:
                last_top[ev.symbol] = top
                pushes += 1
        elif (ev.symbol, ev.ts_ns) not in traded_at:
            traded_at.add((ev.symbol, ev.ts_ns))
            pushes += 1
    return pushes / seconds


def measure(
    events_per_s: float, warmup_s: float, window_s: float
) -> tuple[list[dict[str, object]], dict[str, object]]:
    rest, ws, ctl = free_port(), free_port(), free_port()
    with tempfile.TemporaryDirectory() as d:
        cfg = Path(d) / "simex.toml"
        cfg.write_text(_config_toml(rest, ws, ctl, events_per_s) + "\n")
        log = open(Path(d) / "simex.log", "wb")  # noqa: SIM115  # closed in finally
        server = subprocess.Popen(
            [sys.executable, "-m", "procs.simex", str(cfg)], stdout=log, stderr=subprocess.STDOUT
        )
        try:
            eventually(lambda: _alive(f"http://127.0.0.1:{ctl}"), timeout_s=30)
            url = f"ws://127.0.0.1:{ws}/public/"
            cmd = [sys.executable, "-m", "tests.helpers.simex_md_client", url, ",".join(SYMBOLS)]
            clients = [
                subprocess.Popen(
                    [*cmd, str(warmup_s), str(window_s)], stdout=subprocess.PIPE, text=True
                )
                for _ in range(CLIENTS)
            ]
            outs = []
            for c in clients:
                out, _ = c.communicate(timeout=warmup_s + window_s + 60)
                outs.append(json.loads(out.strip().splitlines()[-1]))
            import urllib.request

            with urllib.request.urlopen(f"http://127.0.0.1:{ctl}/_simex/status", timeout=5) as r:
                status = json.loads(r.read())
        finally:
            server.terminate()
            server.wait(timeout=20)
            log.close()
    return outs, status


def _one(events_per_s: float, warmup_s: float, window_s: float) -> dict[str, float]:
    baseline = expected_rate(events_per_s, window_s)
    outs, status = measure(events_per_s, warmup_s, window_s)
    rates = [float(o["frames"]) / float(o["window_s"]) for o in outs]  # type: ignore[arg-type]
    errors = [o["first_error"] for o in outs if o["first_error"]]
    skipped = float(status["market_skipped_s_total"])  # type: ignore[arg-type]
    print(
        f"simex_md_rate step: events_per_s/symbol={events_per_s:.0f} "
        f"per-client msgs/s={[round(r) for r in rates]} expected={baseline:.0f} "
        f"depth/trade(client0)={outs[0]['depth']}/{outs[0]['trade']} errors={errors} "
        f"stalled_drops={status['stalled_drops_total']} "
        f"slow_disconnects={status['slow_disconnects_total']} "
        f"market_step_max_s={status['market_step_max_s']:.3f} market_skipped_s={skipped:.2f}",
        file=sys.stderr,
    )
    return {
        "events_per_s": events_per_s,
        "min": min(rates),
        "sum": sum(rates),
        "expected": baseline,
        "skipped": skipped,
        "ok": float(not errors and skipped == 0 and min(rates) >= 0.95 * baseline),
    }


def run(quick: bool) -> list[Result]:
    """Climb a ladder of generator rates; report the highest step simex sustained.

    Sustained = no market time skipped, no client error, and every client got at least 95% of
    the pushes the offline generator says that configuration produces.
    """
    warmup_s, window_s = (2.0, 3.0) if quick else (3.0, 10.0)
    ladder = (6000.0,) if quick else (4000.0, 6000.0, 8000.0, 11000.0)  # actions/s per symbol
    steps = []
    for rate in ladder:
        steps.append(_one(rate, warmup_s, window_s))
        if not steps[-1]["ok"]:
            break
    ok = [st for st in steps if st["ok"]]
    best = ok[-1] if ok else steps[0]
    name = "simex_md_rate"
    return [
        Result(
            name, "min_client_msgs_s", best["min"], "msg/s",
            "offline_generator_expected", best["expected"], ">= 10,000 msgs/s",
        ),
        Result(
            name, "sum_4_clients_msgs_s", best["sum"], "msg/s",
            "offline_generator_expected_x4", best["expected"] * CLIENTS, "",
        ),
        # the step reported (0 when even the first step was not sustained) vs the ladder's top
        Result(
            name, "sustained_actions_s", best["events_per_s"] * len(SYMBOLS) * best["ok"],
            "action/s", "ladder_top_actions_s", max(ladder) * len(SYMBOLS), "",
        ),
        Result(name, "skipped_market_s", best["skipped"], "s", "nothing_skipped", 0.0, "== 0"),
    ]  # fmt: skip
