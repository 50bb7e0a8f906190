"""``ExecutionConfig``: the ``[execution]`` section, frozen and strict, units in every name.

Money limits are Decimal (write them as TOML strings, ``"1000"``); durations are float seconds.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

import msgspec

from procs._config import (
    FeeRate,
    HttpUrl,
    NonNegDecimal,
    PosDecimal,
    RuntimeConfig,
    Symbol,
    WsUrl,
    check_endpoint,
)

PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0)]
Fraction = Annotated[float, msgspec.Meta(ge=0, le=1)]
Score = Annotated[float, msgspec.Meta(ge=0, le=1)]


class SymbolConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One traded symbol; ``symbol_id`` is the id that SIG_V1/BOOK_V1 records carry."""

    symbol: Symbol
    symbol_id: Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]  # int32 in the records
    max_position_qty: PosDecimal | None = (
        None  # inventory cap in base coin (None: notional cap only)
    )
    max_order_qty: PosDecimal | None = None  # per-order cap in base coin (None: venue maximum)
    # trading rules given here (all three) spare paper mode the venue's trading_pairs call
    tick: PosDecimal | None = None
    step: PosDecimal | None = None
    min_qty: PosDecimal | None = None


class StrategyConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    enter_score: Score = 0.3  # |score| at or above which the target goes long/short
    exit_score: Score = 0.1  # |score| below which an open target returns flat (hysteresis)
    take_score: Score = (
        0.9  # |score| at or above which we cross the spread (IOC) instead of quoting
    )
    sizing: Literal["fixed_notional", "vol_scaled"] = "fixed_notional"
    target_notional_usdt: PosDecimal = Decimal(100)  # position size at full signal
    vol_target_per_sqrt_s: PositiveFloat = 1e-4  # vol_scaled: notional × target / realised vol
    vol_halflife_s: PositiveFloat = 60.0  # EWMA half-life of the realised-vol estimate
    vol_floor_per_sqrt_s: PositiveFloat = 1e-5  # never divide by less than this
    max_position_notional_usdt: PosDecimal = Decimal(1000)  # inventory cap per symbol
    requote_ticks: PositiveInt = 2  # replace a resting quote once it is this many ticks off
    improve_ticks: NonNegInt = 0  # quote this many ticks inside the best when the spread allows


class RiskConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    max_order_notional_usdt: PosDecimal = Decimal(500)
    price_collar_mid_bps: PosDecimal = Decimal(50)  # limit price within mid × (1 ± bps/1e4)
    price_collar_mark_bps: PosDecimal = Decimal(100)  # and within mark × (1 ± bps/1e4)
    max_position_notional_usdt: PosDecimal = Decimal(1000)  # per symbol, worst case incl. resting
    max_total_notional_usdt: PosDecimal = Decimal(3000)  # all symbols together
    max_open_orders: PositiveInt = 20
    max_open_orders_per_symbol: PositiveInt = 4
    max_orders_per_window: PositiveInt = 8  # order-rate throttle: at most this many orders ...
    order_rate_window_s: PositiveFloat = 1.0  # ... in any window this long
    daily_loss_limit_usdt: PosDecimal = Decimal(200)  # only reducing orders once the day lost this
    max_drawdown_usdt: PosDecimal = Decimal(300)  # only reducing orders once equity fell this far
    max_data_age_s: PositiveFloat = 2.0  # refuse when the market data is older than this
    duplicate_window_s: NonNegFloat = 1.0  # identical order sent within this window is refused


class BreakerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    max_consecutive_rejects: PositiveInt = 5  # → HALTED
    rest_error_rate_max: Fraction = 0.5  # → HALTED when the error share exceeds this ...
    rest_error_window_s: PositiveFloat = 30.0  # ... over this window ...
    rest_error_min_requests: PositiveInt = 10  # ... with at least this many requests in it
    # private WS down this long → REDUCING (shorter outages only hold new orders: no latch)
    ws_reducing_after_s: NonNegFloat = 10.0
    ws_halt_after_s: PositiveFloat = 30.0  # private WS down this long → HALTED
    stale_data_s: PositiveFloat = 5.0  # market data older than this → REDUCING
    latency_spike_s: PositiveFloat = 0.5  # tick-to-ack latency above this ...
    latency_spike_count: PositiveInt = 3  # ... this many times in a row → REDUCING
    reducing_loss_usdt: PosDecimal = Decimal(150)  # daily loss → REDUCING
    halt_loss_usdt: PosDecimal = Decimal(250)  # daily loss → HALTED


class PaperConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    maker_fee_rate: FeeRate = Decimal("0.0002")
    taker_fee_rate: FeeRate = Decimal("0.0006")
    queue_ahead_fraction: Fraction = 1.0  # share of the visible level qty assumed ahead of us
    # settle funding on the local legs with rates polled from the venue's public REST
    settle_funding: bool = False
    funding_poll_s: PositiveFloat = 60.0


class VenueConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where live orders go (simex on loopback or the real Bitunix) and where the keys come from.

    Secrets never live in the config. In ``main`` they come from ``keystore_path`` (encrypted,
    ``bitrader keys``; its passphrase from the environment variable ``keystore_passphrase_env``),
    else from ``key_file`` (plaintext TOML with ``api_key`` and ``secret``, mode 0600 or it is
    refused), else from the environment variables named here (which reach execution only).
    """

    rest_url: HttpUrl = "https://fapi.bitunix.com"
    ws_private_url: WsUrl = "wss://fapi.bitunix.com/private/"
    api_key_env: str = "BITUNIX_API_KEY"
    secret_env: str = "BITUNIX_SECRET"
    key_file: str = ""  # when set, used instead of the environment variables
    keystore_path: str = ""  # when set, used instead of key_file and the environment
    keystore_passphrase_env: str = "BITRADER_KEYSTORE_PASSPHRASE"
    margin_coin: str = "USDT"
    rest_timeout_s: PositiveFloat = 5.0  # a place/cancel unanswered this long is UNKNOWN
    ws_ping_interval_s: PositiveFloat = 2.0  # with the pong deadline: a stall shows in ~4 s
    ws_pong_timeout_s: PositiveFloat = 2.0  # no frame this long after a ping: reconnect
    ws_ready_timeout_s: PositiveFloat = 10.0  # start-up: private WS logged in within this
    mark_poll_s: PositiveFloat = 2.0  # mark prices from the ticker REST this often


class JournalConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The journal's audit anchors and backups (docs/operations.md: audit, backup, restore)."""

    checkpoint_s: PositiveFloat = 1.0  # the chain's head goes to the signed checkpoint this often
    checkpoint_keep: PositiveInt = 5  # rotated checkpoint files kept beside the journal
    backup_interval_s: NonNegFloat = 0.0  # an online backup this often (0: off)
    backup_dir: str = ""  # "" = backups/ beside the journal
    backup_keep: PositiveInt = 24  # newest backups kept
    # what each trading step read (the ``reads`` table), written this often: a backtest
    # replays the run's steps from it (docs/backtest.md "Parity with live"); 0: not recorded
    reads_flush_s: NonNegFloat = 1.0
    # when an order's intent line is fsynced (procs/trading/intent_log.py; docs/operations.md,
    # "Journal durability"): "before_send" (survives a host crash; costs the disk's sync per
    # order: p50 0.33-0.40 ms, p99 2.2-5.1 ms on the development VM's disk), "after_send"
    # (written before, synced by a thread right after: survives the process's crash; a host
    # crash in the sync's window leaves the order to reconciliation), "auto": before_send live,
    # after_send in paper mode (there the orders rest in the process: a host crash loses them
    # with or without the sync), before_send on tmpfs (nothing there survives a host crash; the
    # sync costs ~µs: no thread runs)
    intent_sync: Literal["auto", "before_send", "after_send"] = "auto"


class ExecutionConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    symbols: list[SymbolConfig]
    mode: Literal["live", "paper"] = "paper"  # paper: fills simulated locally on the live book
    position_mode: Literal["ONE_WAY", "HEDGE"] = "ONE_WAY"
    journal_path: str = "run/execution.sqlite"
    journal: JournalConfig = JournalConfig()
    killswitch_path: str = "run/killswitch.json"
    killswitch_poll_s: PositiveFloat = 0.25
    client_id_prefix: Annotated[str, msgspec.Meta(pattern="^[A-Za-z0-9]{1,8}$")] = "br"
    order_ack_timeout_s: PositiveFloat = 5.0  # SENT without an answer this long → UNKNOWN
    cancel_timeout_s: PositiveFloat = 5.0  # cancel unanswered this long → query the order
    reconcile_interval_s: PositiveFloat = 30.0
    balance_tolerance_usdt: NonNegDecimal = Decimal("0.01")
    position_snapshot_interval_s: PositiveFloat = 10.0
    strategy: StrategyConfig = StrategyConfig()
    risk: RiskConfig = RiskConfig()
    breaker: BreakerConfig = BreakerConfig()
    paper: PaperConfig = PaperConfig()
    # -- the process (procs/trading/engine.py); None only in pure-logic tests --
    runtime: RuntimeConfig | None = None
    sig_ring: str = "{ns}.inference.sig"
    book_ring: str = "{ns}.ingest.md.book"
    inference_pub: str = "ipc://{run_dir}/inference.pub"  # wake.sig. comes from here
    attach_timeout_s: PositiveFloat = 10.0  # rings must appear within this at start-up
    batch_max: PositiveInt = 256  # records read per ring per step
    wake_timeout_s: PositiveFloat = 0.005  # safety net: look at the rings this often anyway
    housekeeping_s: PositiveFloat = 0.05  # timeouts, queries, breaker clocks, kill switch
    venue: VenueConfig = VenueConfig()
    publish_events: bool = True  # ord./fill./pos./risk./brk. on the PUB (capture records them)
    events_log_path: str = ""  # also append every event as a JSON line here ("" = off)
    reconcile_retry_s: PositiveFloat = 1.0  # while reconciling: try again this often
    # out of sync this long: stuck (retries every reconcile_interval_s, a reason in health)
    reconcile_stuck_after_s: PositiveFloat = 20.0

    def __post_init__(self) -> None:
        ids = [s.symbol_id for s in self.symbols]
        names = [s.symbol for s in self.symbols]
        if len(set(ids)) != len(ids) or len(set(names)) != len(names):
            raise ValueError("symbols must have unique names and symbol_ids")
        if self.strategy.exit_score > self.strategy.enter_score:
            raise ValueError("strategy.exit_score must not exceed strategy.enter_score")
        remote = self.runtime is not None and self.runtime.allow_remote_endpoints
        check_endpoint("inference_pub", self.inference_pub, allow_remote=remote)
        halt, reducing = self.breaker.halt_loss_usdt, self.breaker.reducing_loss_usdt
        # NaN does not compare: procs._config refuses it, with its path, after decoding
        if halt.is_finite() and reducing.is_finite() and halt < reducing:
            raise ValueError("breaker.halt_loss_usdt must be at least reducing_loss_usdt")

    def symbol(self, name: str) -> SymbolConfig:
        for s in self.symbols:
            if s.symbol == name:
                return s
        raise KeyError(name)
