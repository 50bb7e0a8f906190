"""SimexConfig: the ``[simex]`` section (symbols, keys, accounts, market source, limits).

Every field has a default, so ``bitrader sim`` with no file runs BTCUSDT and ETHUSDT with a demo
key on 127.0.0.1. Ports of 0 pick free ports (tests).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Final, Literal

import msgspec

from ipc.endpoints import is_loopback_host
from procs._config import FeeRate, NonNegDecimal, PosDecimal, RuntimeConfig, Symbol
from procs.exchange.model import SymbolSpec

__all__ = [
    "DEMO_API_KEY",
    "DEMO_SECRET",
    "AccountConfig",
    "KeyConfig",
    "LimitsConfig",
    "MarketConfig",
    "SimexConfig",
    "SymbolConfig",
    "load_config",
]

Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
PosFloat = Annotated[float, msgspec.Meta(gt=0.0)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0.0)]
PosInt = Annotated[int, msgspec.Meta(gt=0)]
Name = Annotated[str, msgspec.Meta(min_length=1)]
FundingRate = Annotated[Decimal, msgspec.Meta(extra={"ge": -1, "le": 1})]  # per settlement

DEMO_API_KEY: Final = "simex-demo-key"
DEMO_SECRET: Final = "simex-demo-secret"


class SymbolConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    symbol: Symbol
    start_price: PosDecimal
    base_precision: Annotated[int, msgspec.Meta(ge=0, le=12)] = 4
    quote_precision: Annotated[int, msgspec.Meta(ge=0, le=12)] = 1
    min_qty: PosDecimal = Decimal("0.0001")
    max_limit_qty: PosDecimal = Decimal(100000)
    max_market_qty: PosDecimal = Decimal(50000)
    max_leverage: PosInt = 125
    default_leverage: PosInt = 20
    maker_fee: FeeRate = Decimal("0.0002")
    taker_fee: FeeRate = Decimal("0.0006")
    funding_rate: FundingRate = Decimal("0.0001")  # per settlement; > 0: longs pay shorts
    volatility_bps_per_s: NonNegFloat = 3.0  # generator's fair-value drift scale
    lot_notional: PosDecimal = Decimal(500)  # generator lot, USDT

    def lot_qty(self) -> Decimal:
        """The generator's lot: ``lot_notional`` worth at the start price, at least min_qty."""
        step = Decimal(1).scaleb(-self.base_precision)
        return max(self.min_qty, (self.lot_notional / self.start_price).quantize(step))

    def spec(self) -> SymbolSpec:
        base = self.symbol.removesuffix("USDT") or self.symbol
        return SymbolSpec(
            symbol=self.symbol,
            base=base,
            base_precision=self.base_precision,
            quote_precision=self.quote_precision,
            min_qty=self.min_qty,
            max_limit_qty=self.max_limit_qty,
            max_market_qty=self.max_market_qty,
            max_leverage=self.max_leverage,
            default_leverage=self.default_leverage,
            maker_fee=self.maker_fee,
            taker_fee=self.taker_fee,
            funding_rate=self.funding_rate,
        )


class KeyConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    api_key: Name
    secret: Name
    account: Name
    ip_allow: list[str] = []  # empty: any address


class AccountConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Name
    balance: NonNegDecimal


class MarketConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    source: Literal["generator", "replay"] = "generator"
    replay_path: str = ""  # capture file or directory (source = "replay")
    replay_speed: PosFloat = 1.0  # capture seconds per wall second
    replay_loop: bool = True
    seed: int = 7
    events_per_s: PosFloat = 200.0  # generator actions per second per symbol
    tick_s: PosFloat = 0.002  # market loop period
    levels: PosInt = 20  # price levels per side the generator keeps populated
    burst_prob: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.02
    trade_frac: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.15


class LimitsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    ws_max_msgs_per_s: PosInt = 5
    ws_max_subscriptions: PosInt = 300
    recv_window_s: PosFloat = 60.0  # accepted |server - client| timestamp difference
    rest_public_per_s: PosFloat = 10.0  # per IP
    rest_private_per_s: PosFloat = 10.0  # per API key, per endpoint
    rest_batch_cancel_per_s: PosFloat = 5.0  # batch_order and cancel_orders


class SimexConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    rest_port: Port = 18080
    ws_port: Port = 18081  # /public/ and /private/ on one port
    control_port: Port = 18082
    # host beyond loopback: the control API answers these peers only, with this token
    control_allow_ips: list[str] = []
    control_token_file: str = ""
    state_path: str = ""  # empty: no state file
    restore: bool = True  # load state_path at start when it exists
    state_save_s: NonNegFloat = (
        10.0  # also save this often (0: only on stop); bounds a SIGKILL's loss
    )
    fault_seed: int = 1
    # refuse what the venue's docs do not allow (uppercase signature, WS login without a nonce
    # or with a string timestamp, numeric qty/price, a replayed nonce), as the venue would
    strict: bool = False
    # funding settles at every multiple of this since the epoch (the venue: 8 h)
    funding_interval_s: PosFloat = 28_800.0
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    symbols: list[SymbolConfig] = msgspec.field(
        default_factory=lambda: [
            SymbolConfig(symbol="BTCUSDT", start_price=Decimal(60000)),
            SymbolConfig(
                symbol="ETHUSDT",
                start_price=Decimal(3000),
                base_precision=3,
                quote_precision=2,
                min_qty=Decimal("0.001"),
            ),
        ]
    )
    keys: list[KeyConfig] = msgspec.field(
        default_factory=lambda: [
            KeyConfig(api_key=DEMO_API_KEY, secret=DEMO_SECRET, account="demo")
        ]
    )
    accounts: list[AccountConfig] = msgspec.field(
        default_factory=lambda: [AccountConfig(name="demo", balance=Decimal(100000))]
    )
    market: MarketConfig = msgspec.field(default_factory=MarketConfig)
    limits: LimitsConfig = msgspec.field(default_factory=LimitsConfig)
    # under supervisord: heartbeat, health on a control socket, /metrics (procs._runtime)
    runtime: RuntimeConfig | None = None

    def __post_init__(self) -> None:
        if not is_loopback_host(self.host) and not (
            self.control_allow_ips and self.control_token_file
        ):
            raise ValueError(
                f"host {self.host!r} is beyond loopback: set control_allow_ips and"
                " control_token_file (the control API must not be open)"
            )
        names = {a.name for a in self.accounts}
        if len(names) != len(self.accounts):
            raise ValueError("accounts: names must be unique")
        if len({k.api_key for k in self.keys}) != len(self.keys):
            raise ValueError("keys: api_key values must be unique")
        for k in self.keys:
            if k.account not in names:
                raise ValueError(f"keys: api_key {k.api_key!r} names unknown account {k.account!r}")
        if len({s.symbol for s in self.symbols}) != len(self.symbols) or not self.symbols:
            raise ValueError("symbols: must be non-empty and unique")
        if self.market.source == "replay" and not self.market.replay_path:
            raise ValueError("market: source = 'replay' needs replay_path")
        for s in self.symbols:
            if s.default_leverage > s.max_leverage:
                raise ValueError(f"symbols: {s.symbol}.default_leverage exceeds max_leverage")


def load_config(path: str | Path | None) -> SimexConfig:
    """Decode ``[simex]`` of ``path`` (None: defaults). Raises ConfigError naming the field."""
    if path is None:
        return SimexConfig()
    from procs._config import decode_section, load_env, read_toml

    return decode_section(read_toml(path), "simex", SimexConfig, path=path, env=load_env(path))
