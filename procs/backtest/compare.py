"""Parity with live: the backtest's feat and sig records against the ones the live group
recorded in the capture, and its order intents against a live execution journal.

Records are matched on the book that caused them (``symbol_id``, ``ts_event_ns``,
``ts_recv_ns``) and compared bit for bit on every field the live code computes; the publish
stamps (``ts_feat_ns``, ``ts_sig_ns``: the live wall clock) are not.

An intent's identity is the signal that caused it (symbol, the tick's ``ts_event_ns`` and
``ts_recv_ns``) and its place among that signal's intents (journal order); it is compared on
what the order asks for (``INTENT_FIELDS``: side, type, time in force, quantity, price,
reduce-only, position side, tag) and, when the live run's steps were replayed
(``procs.backtest.follow``), also on its client id and the moment it was decided (the step's
clock, ``ts_ns``): the same decision at the same step gets the same id. Send times
(``ts_order_ns``: when the order left, after the journal write) are not compared.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import numpy as np

from procs.backtest.livejournal import intent_key, live_intents
from procs.backtest.replay import Market
from procs.backtest.signals import book_keys
from shm.records import Records

__all__ = ["compare_journal", "compare_records", "parity"]

FEAT_FIELDS: Final = ("seq", "flags", "mid", "x")
SIG_FIELDS: Final = ("seq", "flags", "mid", "score", "model_version")
INTENT_FIELDS: Final = (
    "side", "order_type", "tif", "qty", "price", "reduce_only", "position_side", "tag",
)  # fmt: skip
FOLLOWED_FIELDS: Final = ("client_id", "ts_ns")  # compared when the live steps were replayed
SHOWN: Final = 50  # differences listed per check (all are counted)


def compare_records(
    live: Records, ours: Records, fields: tuple[str, ...], books: Records | None = None
) -> dict[str, Any]:
    """Match ``live`` records to ``ours`` by their book and compare ``fields`` bit for bit.

    Live records with no twin are listed (``unmatched``) with whether ``books`` (the
    capture's) holds the book that caused them."""
    idx = {k: i for i, k in enumerate(book_keys(ours))}
    live_keys = book_keys(live)
    pairs = [(i, idx.get(k)) for i, k in enumerate(live_keys)]
    matched = [(i, j) for i, j in pairs if j is not None]
    captured = set(book_keys(books)) if books is not None else set()
    unmatched = [
        f"seq {int(live['seq'][i])} symbol {int(live['symbol_id'][i])} "
        f"ts_recv_ns {int(live['ts_recv_ns'][i])}: its book is "
        f"{'in the capture' if k in captured else 'not in the capture'}"
        for (i, j), k in zip(pairs, live_keys, strict=True)
        if j is None
    ][:SHOWN]
    diffs: list[str] = []
    n_diff = 0
    if matched:
        li = np.array([i for i, _ in matched])
        oi = np.array([j for _, j in matched])
        bad = np.zeros(li.size, dtype=bool)
        per_field = {}
        for f in fields:
            a, b = live[f][li], ours[f][oi]
            ne = a.view(np.uint8).reshape(li.size, -1) != b.view(np.uint8).reshape(li.size, -1)
            row_bad = ne.any(axis=1)
            per_field[f] = int(row_bad.sum())
            bad |= row_bad
        n_diff = int(bad.sum())
        for k in np.flatnonzero(bad)[:SHOWN].tolist():
            i, j = matched[k]
            fs = [f for f in fields if live[f][i].tobytes() != ours[f][j].tobytes()]
            diffs.append(
                f"seq {int(live['seq'][i])} symbol {int(live['symbol_id'][i])} "
                f"ts_recv_ns {int(live['ts_recv_ns'][i])}: differs in {fs}"
            )
    else:
        per_field = dict.fromkeys(fields, 0)
    return {
        "live_records": int(live.size),
        "compared": len(matched),
        "identical": len(matched) - n_diff,
        "differing": n_diff,
        "differing_by_field": per_field,
        "live_unmatched": int(live.size) - len(matched),
        "fields": list(fields),
        "differences": diffs,
        "unmatched": unmatched,
    }


def parity(market: Market, feats: Records, sigs: Records) -> dict[str, Any]:
    """The feat and sig checks for the streams the capture holds."""
    out: dict[str, Any] = {}
    if market.feat.size:
        out["feat"] = compare_records(market.feat, feats, FEAT_FIELDS, market.books)
    if market.sig.size:
        out["sig"] = compare_records(market.sig, sigs, SIG_FIELDS, market.books)
    return out


def _norm(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return Decimal(v).normalize() if v[:1].isdigit() else v
        except ArithmeticError:
            return v
    return v


Key = tuple[str, int, int, int]


def _keyed(intents: Iterable[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    out: dict[Key, dict[str, Any]] = {}
    for it in intents:
        base = intent_key(it)
        n = 0
        while (*base, n) in out:
            n += 1
        out[(*base, n)] = it
    return out


def compare_journal(
    path: str | Path,
    ours: list[dict[str, Any]],
    *,
    followed: bool = False,
    outside_ns: Iterable[int] = (),
) -> dict[str, Any]:
    """Every difference between the live journal's intents and the backtest's.

    ``followed``: the backtest replayed the live run's steps (compare client ids and decision
    times too). ``outside_ns``: the clocks of live steps the capture could not replay; live
    intents decided at them are listed apart (``live_outside_capture``), not as differences."""
    try:
        live = live_intents(path)
    except (OSError, sqlite3.Error) as exc:
        return {"error": f"{path}: not a readable execution journal ({exc})"}
    skip = set(outside_ns)
    apart = [it for it in live if int(it["ts_ns"]) in skip]
    live = [it for it in live if int(it["ts_ns"]) not in skip]
    fields = INTENT_FIELDS + (FOLLOWED_FIELDS if followed else ())
    lk, ok = _keyed(live), _keyed(ours)
    diffs: list[str] = []
    same = 0
    for key in sorted(set(lk) | set(ok)):
        a, b = lk.get(key), ok.get(key)
        where = f"{key[0]} tick ts_event_ns {key[1]} ts_recv_ns {key[2]} #{key[3]}"
        if b is None:
            assert a is not None
            diffs.append(f"only live: {where} {a['client_id']} {_brief(a)}")
        elif a is None:
            diffs.append(f"only backtest: {where} {b['client_id']} {_brief(b)}")
        else:
            fs = [f"{f} live={a[f]} backtest={b[f]}" for f in fields if _norm(a[f]) != _norm(b[f])]
            if fs:
                diffs.append(f"differs: {where} {a['client_id']}: {'; '.join(fs)}")
            else:
                same += 1
    return {
        "journal": str(path),
        "followed": followed,
        "fields": list(fields),
        "live_intents": len(live),
        "backtest_intents": len(ours),
        "matching": same,
        "live_outside_capture": [f"{it['client_id']} {_brief(it)}" for it in apart],
        "differences": diffs,
    }


def _brief(it: dict[str, Any]) -> str:
    return (
        f"{it['side']} {it['qty']} @ {it['price']} {it['tif']} ro={it['reduce_only']} "
        f"decided ts_ns {it['ts_ns']}"
    )
