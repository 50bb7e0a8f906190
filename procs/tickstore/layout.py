"""What a capture file's numbers mean: capture-local dtypes and the text of every attribute.

Pure numpy (no h5py), so readers that only need the layout (trainer, CLI) import it cheaply.

Datasets: one per stream (``md.book``, ``md.trade``, ``feat``, ``sig``: the ring's record dtype,
bytes and padding included; ``orders``: ``ORDER_V2``) plus ``gaps`` (``GAP_V1``), where the
writer counts every record it knows was lost. Each dataset carries ``dtype_name`` and
``dtype_crc`` (``dtype_crc`` names the layout exactly), ``time_field`` (the column a time-range
query binary-searches) and, per field, ``<field>.units`` and ``<field>.doc``; coded fields also
carry ``<field>.codes`` (JSON: code -> meaning) and ``flags`` its ``flags.bits``.

Evolution: a changed layout gets a new versioned name here (``ORDER_V1`` -> ``ORDER_V2``) and
the old one stays registered, so files written before the change stay readable (by name, or by
``dtype_crc`` for files that did not record a name).
"""

from __future__ import annotations

import json
from typing import Any, Final

import numpy as np

from shm.records import (
    DTYPES,
    FLAG_CROSSED,
    FLAG_FALLBACK,
    FLAG_SNAPSHOT,
    FLAG_STALE,
    Dtype,
    dtype_crc,
)

STREAM_ORDERS: Final = "orders"
GAPS: Final = "gaps"  # the loss table's dataset name (never a stream)

# ORDER_V*: one row per order/fill/position/risk/breaker event, capture-local (never in a ring,
# so not in shm.records). Decimals become float64 (analytics only: the journal keeps the exact
# values); text is UTF-8, truncated to its field. ``price`` is NaN when the order had none.
KIND_ORDER: Final = 1
KIND_FILL: Final = 2
KIND_POSITION: Final = 3
KIND_RISK: Final = 4
KIND_BREAKER: Final = 5

_ORDER_HEAD: Final = [
    ("seq", "<i8"),
    ("ts_event_ns", "<i8"),
    ("ts_recv_ns", "<i8"),
    ("ts_feat_ns", "<i8"),
    ("ts_sig_ns", "<i8"),
    ("ts_order_ns", "<i8"),
    ("ts_ns", "<i8"),
    ("ts_capture_ns", "<i8"),
]
_ORDER_BODY: Final = [
    ("kind", "<u1"),
    ("side", "<i1"),
    ("reduce_only", "<u1"),
    ("symbol", "S24"),
    ("client_id", "S48"),
    ("order_id", "S48"),
    ("fill_id", "S48"),
    ("order_type", "S8"),
    ("tif", "S8"),
    ("status", "S16"),
    ("old_status", "S16"),
    ("position_side", "S8"),
    ("reason", "S32"),
    ("detail", "S64"),
    ("qty", "<f8"),
    ("price", "<f8"),
    ("filled_qty", "<f8"),
    ("avg_price", "<f8"),
    ("fee", "<f8"),
    ("realised", "<f8"),
    ("unrealised", "<f8"),
    ("funding", "<f8"),
    ("mark", "<f8"),
]


def _cache_lines(fields: list[tuple[str, str]]) -> Dtype:
    base = np.dtype(fields, align=True)
    spec: Any = {  # dict-form spec: numpy's stubs type it loosely
        "names": [f[0] for f in fields],
        "formats": [f[1] for f in fields],
        "itemsize": -(-base.itemsize // 64) * 64,  # whole cache lines, as shm.records
    }
    dtype: Dtype = np.dtype(spec, align=True)
    return dtype


# V1 (schema 1): no symbol_id; position/risk/breaker rows had ts_recv_ns = 0
ORDER_V1: Final = _cache_lines(_ORDER_HEAD + _ORDER_BODY)
assert ORDER_V1.itemsize == 512
# V2: adds symbol_id (index into the file's symbol map, -1 unknown) so every stream filters alike
ORDER_V2: Final = _cache_lines([*_ORDER_HEAD, ("symbol_id", "<i4"), *_ORDER_BODY])
assert ORDER_V2.itemsize == 512

GAP_V1: Final = _cache_lines(
    [
        ("ts_capture_ns", "<i8"),
        ("expected_seq", "<i8"),
        ("seq", "<i8"),
        ("lost", "<i8"),
        ("stream", "S16"),
        ("reason", "S16"),
    ]
)
assert GAP_V1.itemsize == 64

# every dtype a capture file may hold, by versioned name (the ring's, then capture's own)
CAPTURE_DTYPES: Final[dict[str, Dtype]] = {
    **DTYPES,
    "ORDER_V1": ORDER_V1,
    "ORDER_V2": ORDER_V2,
    "GAP_V1": GAP_V1,
}
_BY_CRC: Final = {dtype_crc(v): k for k, v in CAPTURE_DTYPES.items()}

# why a gap row was written
GAP_LAPPED: Final = "lapped"  # capture's ring reader was overtaken by the writer
GAP_WRITE_FAILED: Final = "write_failed"  # capture dropped records it could not write (disk)
GAP_UPSTREAM: Final = "upstream"  # missing before capture saw them (a producer lost them)
GAP_RESTART: Final = "restart"  # seq went back: the producer restarted (nothing known lost)


def capture_dtype_name(dtype: Dtype) -> str:
    """Return the registered versioned name of ``dtype``, or ``""`` for an unknown layout."""
    for name, dt in CAPTURE_DTYPES.items():
        if dt == dtype and dtype_crc(dt) == dtype_crc(dtype):
            return name
    return ""


def dtype_by_crc(crc: int) -> str:
    """Return the registered name whose layout has CRC ``crc``, or ``""``."""
    return _BY_CRC.get(crc, "")


def time_field(stream: str, dtype: Dtype) -> str:
    """Return the column a time-range query searches: capture's stamp for orders, else recv."""
    names = dtype.names or ()
    return "ts_capture_ns" if "ts_capture_ns" in names else "ts_recv_ns"


# ---- meanings ------------------------------------------------------------------------------

NS: Final = "ns since the Unix epoch (UTC)"
QUOTE: Final = "quote currency per 1 base unit (USDT for USDT-M perpetuals)"
BASE: Final = "base currency (e.g. BTC for BTCUSDT)"

FLAG_BITS: Final[dict[int, str]] = {
    FLAG_STALE: "STALE: the staleness watchdog's verdict, do not trade on this",
    FLAG_SNAPSHOT: "SNAPSHOT: first record after a (re)subscribe or resync",
    FLAG_FALLBACK: "FALLBACK: the signal came from the rule-based fallback scorer",
    FLAG_CROSSED: "CROSSED: best bid >= best ask; ingest is resyncing the book",
}
KIND_CODES: Final[dict[int, str]] = {
    KIND_ORDER: "order state change",
    KIND_FILL: "fill",
    KIND_POSITION: "position after a change",
    KIND_RISK: "pre-trade risk refusal",
    KIND_BREAKER: "circuit-breaker transition",
}
_TRADE_SIDE: Final = {1: "taker buy", -1: "taker sell"}
_ORDER_SIDE: Final = {1: "BUY", -1: "SELL", 0: "none (position, risk, breaker rows)"}

# field -> (units, meaning); ``_STREAM_FIELDS`` overrides per stream
_FIELDS: Final[dict[str, tuple[str, str]]] = {
    "seq": ("count", "the record's position in its ring (0, 1, 2 ...); a gap is in 'gaps'"),
    "ts_event_ns": (NS, "the venue's event time (its ms stamp of the push, in ns)"),
    "ts_recv_ns": (NS, "when ingest received the venue's frame (CLOCK_REALTIME)"),
    "ts_pub_ns": (NS, "when ingest published the record"),
    "ts_feat_ns": (NS, "when features published the record"),
    "ts_sig_ns": (NS, "when inference published the signal"),
    "ts_order_ns": (NS, "when execution decided to send the order"),
    "ts_ns": (NS, "when the change happened in execution"),
    "ts_capture_ns": (NS, "when capture received the event"),
    "symbol_id": ("index", "position in the file attribute 'symbols' (JSON list), -1 unknown"),
    "flags": ("bit set", "OR of the bits in 'flags.bits'"),
    "n_bids": ("levels", "bid levels present; bid_px/bid_qty past it are NaN (0.0 before v2)"),
    "n_asks": ("levels", "ask levels present; ask_px/ask_qty past it are NaN (0.0 before v2)"),
    "bid_px": (QUOTE, "bid prices, best first (level i = column i)"),
    "bid_qty": (BASE, "bid quantities, best first"),
    "ask_px": (QUOTE, "ask prices, best first"),
    "ask_qty": (BASE, "ask quantities, best first"),
    "side": ("code", "see 'side.codes'"),
    "px": (QUOTE, "trade price"),
    "qty": (BASE, "quantity"),
    "mid": (QUOTE, "(best bid + best ask) / 2 of the book behind the record"),
    "x": ("per feature", "feature values; names in the file attribute 'feature_names'"),
    "score": ("[-1, 1]", "the champion's (or the fallback's) signal"),
    "challenger": ("[-1, 1]", "the challenger model's signal, NaN when none"),
    "model_version": ("id", "version of the model that scored"),
    "payload": ("", "benchmark payload"),
}
_STREAM_FIELDS: Final[dict[str, dict[str, tuple[str, str]]]] = {
    "md.trade": {
        "ts_event_ns": (NS, "the venue's push time 'ts' (ms, in ns); ticks of a push share it"),
    },
    "feat": {
        "seq": ("count", "seq of the md.book record it was computed from (one feat per book)"),
        "ts_event_ns": (NS, "ts_event_ns of the book it was computed from"),
        "ts_recv_ns": (NS, "ts_recv_ns of the book it was computed from"),
    },
    "sig": {
        "seq": ("count", "seq of the feat (= book) record it scored (one sig per feat)"),
        "ts_event_ns": (NS, "ts_event_ns of the book behind the signal"),
        "ts_recv_ns": (NS, "ts_recv_ns of the book behind the signal"),
    },
    STREAM_ORDERS: {
        "seq": ("count", "execution's per-publisher event number; a gap is in 'gaps'"),
        "ts_event_ns": (NS, "venue time of the tick behind an order/fill; 0 for other kinds"),
        "ts_recv_ns": (NS, "receive time of the tick behind an order/fill; else = ts_ns"),
        "ts_feat_ns": (NS, "features stamp of the tick behind an order/fill; 0 for other kinds"),
        "ts_sig_ns": (NS, "inference stamp of the tick behind an order/fill; 0 otherwise"),
        "kind": ("code", "see 'kind.codes'"),
        "side": ("code", "see 'side.codes'"),
        "reduce_only": ("bool", "1 for a reduce-only order"),
        "symbol": ("text", "instrument, UTF-8"),
        "client_id": ("text", "our client order id"),
        "order_id": ("text", "the venue's order id"),
        "fill_id": ("text", "the venue's fill id (fills only)"),
        "order_type": ("text", "LIMIT / MARKET"),
        "tif": ("text", "time in force"),
        "status": ("text", "order: new status; breaker: new state"),
        "old_status": ("text", "order: previous status; breaker: previous state"),
        "position_side": ("text", "BOTH / LONG / SHORT"),
        "reason": ("text", "order: reason; risk: reason; breaker: trigger"),
        "detail": ("text", "risk and breaker: detail"),
        "qty": (BASE, "order/fill qty; position: signed qty (short < 0)"),
        "price": (QUOTE, "order limit price (NaN: none); fill price; position: avg price"),
        "filled_qty": (BASE, "order: filled so far"),
        "avg_price": (QUOTE, "order: average fill price; position: average entry price"),
        "fee": ("quote currency", "order/fill: fee paid (positive = paid); position: fees"),
        "realised": ("quote currency", "position: realised PnL"),
        "unrealised": ("quote currency", "position: unrealised PnL at 'mark'"),
        "funding": ("quote currency", "position: funding paid/received"),
        "mark": (QUOTE, "position: the mark price its PnL used"),
    },
    GAPS: {
        "ts_capture_ns": (NS, "when capture noticed the gap"),
        "expected_seq": ("count", "the seq that should have come next"),
        "seq": ("count", "the seq that came"),
        "lost": ("records", "records lost (seq - expected_seq); 0 for a restart"),
        "stream": ("text", "the stream that lost them"),
        "reason": ("text", "lapped | write_failed | upstream | restart"),
    },
}
_CODES: Final[dict[tuple[str, str], dict[int, str]]] = {
    ("md.trade", "side"): _TRADE_SIDE,
    (STREAM_ORDERS, "side"): _ORDER_SIDE,
    (STREAM_ORDERS, "kind"): KIND_CODES,
}
_STREAM_DOC: Final[dict[str, str]] = {
    "md.book": "top-15 order book snapshots after ingest normalisation, one per venue push",
    "md.trade": "public trades, one per tick of a venue trade push",
    "feat": "feature vectors, one per book",
    "sig": "model signals, one per feature vector",
    STREAM_ORDERS: "execution's order, fill, position, risk and breaker events",
    GAPS: "records known to be lost, one row per gap in a stream's seq",
}


def field_meaning(stream: str, field: str) -> tuple[str, str]:
    """Return ``(units, meaning)`` of ``field`` in ``stream``."""
    return _STREAM_FIELDS.get(stream, {}).get(field) or _FIELDS.get(field, ("", ""))


def dataset_attrs(stream: str, dtype: Dtype) -> dict[str, str | int]:
    """Return the attributes that describe dataset ``stream`` of layout ``dtype``."""
    name = capture_dtype_name(dtype)
    out: dict[str, str | int] = {
        "dtype_name": name,
        "dtype_crc": dtype_crc(dtype),
        "description": _STREAM_DOC.get(stream, stream),
    }
    if stream != GAPS:
        out["time_field"] = time_field(stream, dtype)
    for field in dtype.names or ():
        units, doc = field_meaning(stream, field)
        out[f"{field}.units"] = units
        out[f"{field}.doc"] = doc
        codes = _CODES.get((stream, field))
        if codes is not None:
            out[f"{field}.codes"] = json.dumps({str(k): v for k, v in codes.items()})
    if "flags" in (dtype.names or ()):
        out["flags.bits"] = json.dumps({str(k): v for k, v in FLAG_BITS.items()})
    return out


__all__ = [
    "CAPTURE_DTYPES",
    "FLAG_BITS",
    "GAPS",
    "GAP_LAPPED",
    "GAP_RESTART",
    "GAP_UPSTREAM",
    "GAP_V1",
    "GAP_WRITE_FAILED",
    "KIND_BREAKER",
    "KIND_CODES",
    "KIND_FILL",
    "KIND_ORDER",
    "KIND_POSITION",
    "KIND_RISK",
    "ORDER_V1",
    "ORDER_V2",
    "STREAM_ORDERS",
    "capture_dtype_name",
    "dataset_attrs",
    "dtype_by_crc",
    "field_meaning",
    "time_field",
]
