"""The execution journal's tables: their columns, the SQL that creates them and inserts a row
(split from ``journal.py``, which writes them)."""

from __future__ import annotations

from typing import Final

__all__ = ["COLUMNS", "HAS_FILL", "HAS_INTENT", "INSERT", "columns_for", "schema", "table_ddl"]

COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "intents": (
        "client_id", "symbol", "side", "order_type", "tif", "qty", "price", "reduce_only",
        "position_side", "tag", "ts_event_ns", "ts_recv_ns", "ts_feat_ns", "ts_sig_ns",
        "ts_order_ns", "ts_ns",
    ),
    "order_events": (
        "client_id", "old", "new", "order_id", "filled_qty", "avg_price", "fee", "mtime_ms",
        "ts_sent_ns", "ts_cancel_ns", "cause", "reason", "ts_ns",
    ),
    "fills": (
        "fill_id", "client_id", "order_id", "symbol", "side", "position_side", "qty", "price",
        "fee", "maker", "ts_ns",
    ),
    "funding": ("event_id", "symbol", "position_side", "amount", "ts_ns"),
    "positions": (
        "symbol", "position_side", "qty", "cost", "realised", "fees", "funding", "ts_ns",
    ),
    "risk_events": ("client_id", "symbol", "reason", "detail", "ts_ns"),
    "breaker_events": ("old", "new", "trigger", "detail", "ts_ns"),
    # what the steps that read signals while they could trade acted on, a batch a row (one
    # audited row per flush, not per step: an audit row costs ~30 us): the run (its client id
    # epoch), then ``steps``, a JSON array of [book_seq, sig_first, sig_last, ts_ns] per step
    # (the newest book ring seq read so far, the signal ring seqs read, the step's clock);
    # ts_ns: the last step's clock (procs/trading/reads.py)
    "reads": ("run_ms", "steps", "ts_ns"),
}  # fmt: skip
_SINCE: Final = {"reads": 3}  # tables a schema added (older ones: every schema)
_INTEGER: Final = frozenset({"reduce_only", "maker"})
_UNIQUE: Final = {"intents": "client_id", "fills": "fill_id", "funding": "event_id"}
HAS_FILL: Final = "SELECT 1 FROM fills WHERE fill_id=?"
HAS_INTENT: Final = "SELECT 1 FROM intents WHERE client_id=?"
INSERT: Final = {
    table: f"{'INSERT OR IGNORE' if table in _UNIQUE else 'INSERT'} INTO {table}"
    f"({', '.join(cols)}, audit_id) VALUES ({', '.join('?' * (len(cols) + 1))})"
    for table, cols in COLUMNS.items()
}  # built once: sqlite3 keeps each text's prepared statement in its cache


def columns_for(version: int) -> dict[str, tuple[str, ...]]:
    """The content tables of a schema-``version`` journal (to verify one read-only)."""
    return {t: c for t, c in COLUMNS.items() if _SINCE.get(t, 0) <= version}


def table_ddl(table: str) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for one content table (migrations add tables with it)."""
    cols = COLUMNS[table]
    defs = [
        f"{c} {'INTEGER' if c in _INTEGER or c.endswith(('_ns', '_ms')) else 'TEXT'}" for c in cols
    ]
    if table in _UNIQUE:
        defs = [d + " UNIQUE" if d.split()[0] == _UNIQUE[table] else d for d in defs]
    defs.append("audit_id INTEGER NOT NULL UNIQUE")
    return f"CREATE TABLE IF NOT EXISTS {table}(id INTEGER PRIMARY KEY, {', '.join(defs)});"


def schema() -> str:
    parts = [
        "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);",
        "CREATE TABLE IF NOT EXISTS audit(id INTEGER PRIMARY KEY, ts_ns INTEGER NOT NULL,"
        " kind TEXT NOT NULL, body TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);",
    ]
    parts += [table_ddl(table) for table in COLUMNS]
    parts.append("CREATE INDEX IF NOT EXISTS order_events_cid ON order_events(client_id, id);")
    return "\n".join(parts)
