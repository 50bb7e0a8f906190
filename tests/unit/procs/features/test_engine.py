from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from procs.featurecalc import (
    FEATURES,
    N_FEATURES,
    FeatureEngine,
    _featc,
    compute_batch,
    feature_index,
)
from procs.ml.synth import synthetic_market
from procs.tickstore import concat_records
from shm.records import BOOK_V1, FEAT_V1, FEATURE_SLOTS, FLAG_STALE, TRADE_V1, Records
from tests.unit.procs.features.reference import reference
from tests.unit.procs.features.strategies import books_and_trades


def _split_points(
    rng: np.random.Generator, books: Records, trades: Records, n_cuts: int
) -> list[tuple[int, int]]:
    """Random batch splits that honour the delivery contract (trades no later than their book)."""
    n_b, n_t = books.size, trades.size
    book_cuts = np.sort(rng.integers(0, n_b + 1, size=n_cuts))
    key_b = _running_key(books)
    key_t = _running_key(trades)
    out, t_done = [], 0
    for end in [*book_cuts.tolist(), n_b]:
        need = t_done
        for i in range(end):
            same = np.flatnonzero(
                (trades["symbol_id"] == books["symbol_id"][i]) & (key_t <= key_b[i])
            )
            if same.size:
                need = max(need, int(same[-1]) + 1)
        t_end = int(rng.integers(need, n_t + 1)) if rng.random() < 0.3 else need
        out.append((end, t_end))
        t_done = t_end
    out[-1] = (n_b, n_t)
    return out


def _running_key(recs: Records) -> np.ndarray:
    key = np.empty(recs.size, dtype=np.int64)
    last: dict[int, int] = {}
    for i, r in enumerate(recs):
        s = int(r["symbol_id"])
        last[s] = max(last.get(s, -(2**63)), int(r["ts_recv_ns"]))
        key[i] = last[s]
    return key


def _stream(
    books: Records, trades: Records, splits: list[tuple[int, int]], n_symbols: int
) -> Records:
    eng = FeatureEngine(n_symbols)
    parts, b0, t0 = [], 0, 0
    for b1, t1 in splits:
        parts.append(eng.update(books[b0:b1], trades[t0:t1]))
        b0, t0 = b1, t1
    return concat_records(parts, FEAT_V1)


def test_features_declaration_fits_feat_record_and_names_are_unique():
    assert N_FEATURES == len(FEATURES) <= FEATURE_SLOTS
    assert feature_index("book_ok") == N_FEATURES - 1
    with pytest.raises(KeyError):
        feature_index("nope")


@settings(max_examples=100, deadline=None)
@given(books_and_trades())
def test_engine_each_feature_matches_naive_reference(market):
    books, trades = market

    feat = compute_batch(books, trades, n_symbols=2)
    ref_x, ref_mid = reference(books, trades)

    for j, name in enumerate(FEATURES):
        np.testing.assert_allclose(feat["x"][:, j], ref_x[:, j], rtol=2e-5, atol=2e-4, err_msg=name)
    np.testing.assert_allclose(feat["mid"], ref_mid, rtol=1e-12)
    assert np.all(feat["x"][:, N_FEATURES:] == 0.0)


@settings(max_examples=100, deadline=None)
@given(books_and_trades(), st.integers(0, 2**32 - 1), st.integers(0, 8))
def test_engine_streaming_in_random_splits_equals_batch(market, seed, n_cuts):
    books, trades = market
    splits = _split_points(np.random.default_rng(seed), books, trades, n_cuts)

    streamed = _stream(books, trades, splits, 2)
    batch = compute_batch(books, trades, n_symbols=2)

    assert streamed.tobytes() == batch.tobytes()  # each book computed alone: the same bytes


@pytest.mark.parametrize("batch_size", [1, 7, 64, 1000])
def test_engine_streaming_long_capture_equals_batch(batch_size):
    books, trades = synthetic_market(seed=3, n_books=3000, n_symbols=3)
    rng = np.random.default_rng(batch_size)
    eng = FeatureEngine(3)
    parts, t0 = [], 0
    for b0 in range(0, books.size, batch_size):
        chunk = books[b0 : b0 + batch_size]
        t1 = int(np.searchsorted(trades["ts_recv_ns"], chunk["ts_recv_ns"].max(), "right"))
        t1 = min(trades.size, t1 + int(rng.integers(0, 3)))  # sometimes a few trades early
        t1 = max(t1, t0)
        parts.append(eng.update(chunk, trades[t0:t1]))
        t0 = t1
    parts.append(eng.update(books[:0], trades[t0:]))

    streamed = concat_records(parts, FEAT_V1)
    batch = compute_batch(books, trades)

    np.testing.assert_array_equal(streamed["x"], batch["x"])
    assert np.isfinite(batch["x"]).all()
    assert (np.abs(batch["x"][:, feature_index("return_bps_10s")]) > 0).mean() > 0.5


def test_engine_output_carries_book_stamps_and_flags():
    books, trades = synthetic_market(seed=1, n_books=50)
    books["flags"][::5] |= FLAG_STALE

    feat = FeatureEngine(1).update(books, trades, ts_feat_ns=123)

    assert feat.dtype == FEAT_V1
    for name in ("seq", "ts_event_ns", "ts_recv_ns", "symbol_id"):
        np.testing.assert_array_equal(feat[name], books[name])
    assert (feat["ts_feat_ns"] == 123).all()
    assert (feat["flags"][::5] & FLAG_STALE).all()


def _degenerate_books() -> np.ndarray:
    books = np.zeros(6, dtype=BOOK_V1)
    books["ts_recv_ns"] = np.arange(6) * 1_000_000_000
    books["bid_px"][:, 0], books["ask_px"][:, 0] = 100.0, 100.5
    books["n_bids"] = [0, 1, 1, 1, 0, 1]
    books["n_asks"] = [0, 0, 1, 1, 1, 1]
    books["bid_qty"][:, 0] = [0, 1, 0, 2, 0, 1]
    books["ask_qty"][:, 0] = [0, 0, 0, 1, 3, 1]
    books["bid_px"][5, 0] = 0.0  # zero price counts as an empty side
    return books


def test_engine_degenerate_books_give_finite_neutral_features_and_stale_flag():
    books = _degenerate_books()

    feat = compute_batch(books, np.zeros(0, dtype=TRADE_V1))

    x = feat["x"]
    assert np.isfinite(x).all()
    assert np.isfinite(feat["mid"]).all()
    ok = x[:, feature_index("book_ok")]
    np.testing.assert_array_equal(ok, [0, 0, 1, 1, 0, 0])
    np.testing.assert_array_equal(feat["flags"] & FLAG_STALE, [1, 1, 0, 0, 1, 1])
    np.testing.assert_array_equal(feat["mid"], [0.0, 0.0, 100.25, 100.25, 100.25, 100.25])
    assert x[0, feature_index("spread_bps")] == 0.0
    assert x[2, feature_index("microprice_dev_bps")] == 0.0  # both top quantities zero
    assert x[1, feature_index("imbalance_1")] == 1.0  # bid quantity only
    assert x[4, feature_index("imbalance_1")] == -1.0


def test_engine_rejects_out_of_range_symbol_and_wrong_dtype():
    books, trades = synthetic_market(seed=2, n_books=5)
    eng = FeatureEngine(1)
    books["symbol_id"][2] = 1

    with pytest.raises(ValueError, match="symbol_id"):
        eng.update(books, trades)
    with pytest.raises(TypeError):
        eng.update(trades, trades)


def test_engine_one_book_at_a_time_equals_one_batch_on_degenerate_books():
    books = _degenerate_books()
    trades = np.zeros(3, dtype=TRADE_V1)
    trades["ts_recv_ns"] = [0, 2_000_000_000, 2_500_000_000]
    trades["px"] = [100.0, np.nan, 100.5]
    trades["qty"] = [1.0, 1.0, 0.0]
    trades["side"] = [1, -1, 1]
    eng = FeatureEngine(1)

    one_by_one = concat_records(
        [
            eng.update(
                books[i : i + 1],
                trades[
                    (trades["ts_recv_ns"] <= books["ts_recv_ns"][i])
                    & (trades["ts_recv_ns"] > (books["ts_recv_ns"][i - 1] if i else -1))
                ],
            )
            for i in range(books.size)
        ],
        FEAT_V1,
    )
    batch = compute_batch(books, trades)

    assert one_by_one.tobytes() == batch.tobytes()


def test_engine_a_degenerate_book_changes_nothing_before_it():
    # a partial, NaN-holding book at the end of a batch leaves the complete books' bytes alone
    books, trades = synthetic_market(seed=4, n_books=400)
    bad = books[-1:].copy()
    bad["ts_recv_ns"] += 1
    bad["n_asks"] = 3  # partial depth: the batch takes the masked path
    bad["bid_qty"][0, 1] = np.nan

    fast = compute_batch(books, trades)
    masked = compute_batch(concat_records([books, bad], BOOK_V1), trades)

    assert masked[:-1].tobytes() == fast.tobytes()
    assert masked["flags"][-1] & FLAG_STALE == 0  # partial depth is still a two-sided book


def test_engine_invalid_trades_count_as_nothing_in_one_batch_or_one_by_one():
    books, trades = synthetic_market(seed=5, n_books=300)
    trades["px"][::7] = np.nan
    trades["qty"][3::11] = 0.0
    trades["qty"][5::13] = np.inf
    trades["px"][6::17] = -1.0

    whole = FeatureEngine(1)
    whole.update(books[:0], trades)  # one append
    one_by_one = FeatureEngine(1)
    for i in range(trades.size):  # a trade per call
        one_by_one.update(books[:0], trades[i : i + 1])

    a, b = whole.update(books, trades[:0]), one_by_one.update(books, trades[:0])
    assert a.tobytes() == b.tobytes()
    assert np.isfinite(a["x"]).all()
    assert (a["x"][:, feature_index("vwap_dev_bps_60s")] != 0.0).any()


def test_engine_batches_of_many_sizes_equal_one_whole_capture_batch():
    # many batch sizes (the histories grow and move their rows several times), complete and
    # degenerate books mixed, two symbols: every batch must equal the same rows of one batch
    books, trades = synthetic_market(seed=6, n_books=4000, n_symbols=2)
    rng = np.random.default_rng(6)
    degenerate = rng.random(books.size) < 0.01
    books["n_asks"][degenerate] = 0
    books["bid_qty"][rng.random(books.size) < 0.01, 3] = np.nan
    sizes = [2, 3, 5, 8, 13, 21, 34, 55, 89, 144, *range(60, 80)]
    eng = FeatureEngine(2)
    parts, b0, t0 = [], 0, 0
    for i in range(10_000):
        if b0 >= books.size:
            break
        chunk = books[b0 : b0 + sizes[i % len(sizes)]]
        t1 = int(np.searchsorted(trades["ts_recv_ns"], chunk["ts_recv_ns"].max(), "right"))
        parts.append(eng.update(chunk, trades[t0:t1]))
        b0, t0 = b0 + chunk.size, t1

    streamed = concat_records(parts, FEAT_V1)
    batch = compute_batch(books, trades)

    assert streamed.tobytes() == batch.tobytes()
    assert (streamed["flags"] & FLAG_STALE).any()


def test_engine_output_buffer_reused_gives_the_bytes_of_new_arrays():
    # a buffer the stage reuses for every step: no byte of an earlier, larger or degenerate
    # batch survives into a later record (padding included), and bad buffers are refused
    books, trades = synthetic_market(seed=8, n_books=1500, n_symbols=3)
    rng = np.random.default_rng(8)
    books["n_asks"][rng.random(books.size) < 0.02] = 0
    fresh, reused = FeatureEngine(3), FeatureEngine(3)
    buf = np.zeros(64, FEAT_V1)
    sizes = [1, 64, 1, 7, 33, 1, 2, 64, 5]
    b0 = t0 = 0
    for i in range(10_000):
        if b0 >= books.size:
            break
        chunk = books[b0 : b0 + sizes[i % len(sizes)]]
        t1 = int(np.searchsorted(trades["ts_recv_ns"], chunk["ts_recv_ns"].max(), "right"))
        want = fresh.update(chunk, trades[t0:t1], ts_feat_ns=i)
        got = reused.update(chunk, trades[t0:t1], ts_feat_ns=i, out=buf)
        assert got.base is buf or got.base is buf.base
        assert got.tobytes() == want.tobytes(), i
        b0, t0 = b0 + chunk.size, t1
    one = books[:2]
    for bad in (np.zeros(1, FEAT_V1), np.zeros(4, BOOK_V1), np.zeros(8, FEAT_V1)[::2]):
        with pytest.raises(ValueError, match="out must be"):
            FeatureEngine(3).update(one, trades[:0], out=bad)


@pytest.mark.parametrize("batch_size", [2, 5, 12, 40])
def test_engine_mixed_symbol_batches_equal_each_symbols_own_batches(batch_size):
    # a batch of several symbols is computed per symbol, each record in its book's row: the
    # bytes equal feeding every symbol's rows of the batch (books and trades) on their own
    books, trades = synthetic_market(seed=8, n_books=1500, n_symbols=3, trades_per_book=2.0)
    books["bid_qty"][::97, 2] = np.nan  # a few degenerate books
    mixed, alone = FeatureEngine(3), FeatureEngine(3)
    got, want = [], []
    t0 = 0
    for b0 in range(0, books.size, batch_size):
        chunk = books[b0 : b0 + batch_size]
        t1 = int(np.searchsorted(trades["ts_recv_ns"], chunk["ts_recv_ns"].max(), "right"))
        tr = trades[t0:t1]
        got.append(mixed.update(chunk, tr))
        out = np.zeros(chunk.size, FEAT_V1)
        for s in range(3):
            rows = chunk["symbol_id"] == s
            out[rows] = alone.update(chunk[rows], tr[tr["symbol_id"] == s])
        want.append(out)
        t0 = t1

    assert concat_records(got, FEAT_V1).tobytes() == concat_records(want, FEAT_V1).tobytes()


def test_engine_rejects_a_bad_symbol_before_changing_any_state():
    books, trades = synthetic_market(seed=9, n_books=200, n_symbols=2)
    half = books.size // 2
    t_half = int(np.searchsorted(trades["ts_recv_ns"], books["ts_recv_ns"][half - 1], "right"))
    eng, clean = FeatureEngine(2), FeatureEngine(2)
    bad_trades = trades[t_half:].copy()
    bad_trades["symbol_id"][-1] = 7
    bad_books = books[half:].copy()
    bad_books["symbol_id"][-1] = -1

    eng.update(books[:half], trades[:t_half])
    clean.update(books[:half], trades[:t_half])
    with pytest.raises(ValueError, match="symbol_id must be in \\[0, 2\\), was 7"):
        eng.update(books[half:], bad_trades)  # the good trades before it are not absorbed
    with pytest.raises(ValueError, match="was -1"):
        eng.update(bad_books, trades[t_half:])

    assert (
        eng.update(books[half:], trades[t_half:]).tobytes()
        == clean.update(books[half:], trades[t_half:]).tobytes()
    )


def test_engine_reads_strided_batches_like_their_copies():
    books, trades = synthetic_market(seed=10, n_books=300, n_symbols=2)

    strided = FeatureEngine(2).update(books[::3], trades[::2])
    copied = FeatureEngine(2).update(books[::3].copy(), trades[::2].copy())

    assert strided.tobytes() == copied.tobytes()
    assert (strided["seq"] == books["seq"][::3]).all()


def test_engine_kernel_refuses_to_write_past_a_history_or_a_short_output():
    books, _ = synthetic_market(seed=11, n_books=4)
    keys = np.full(2, np.iinfo(np.int64).min)  # room for the sentinel and one book only
    vals = np.zeros((2, 2))
    t_keys, t_vals = np.full(1, np.iinfo(np.int64).min), np.zeros((1, 3))
    out = np.zeros(books.size, FEAT_V1)

    with pytest.raises(ValueError, match="reserve first"):
        _featc.books(books, 0, keys, vals, 0, 1, t_keys, t_vals, 0, 1, out, 0, True)
    assert keys[1] != np.iinfo(np.int64).min  # the book that fitted was written
    with pytest.raises(ValueError, match="one FEAT_V1 record per book"):
        _featc.books(books, 0, keys, vals, 0, 1, t_keys, t_vals, 0, 1, out[:2], 0, True)
    with pytest.raises(ValueError, match="bad capacity"):
        _featc.books(books, 0, keys, np.zeros((2, 1)), 0, 1, t_keys, t_vals, 0, 1, out, 0, True)
    with pytest.raises(ValueError, match="reserve first"):
        _featc.append_trades(np.zeros(1, TRADE_V1), 0, t_keys, t_vals, 1)


def test_engine_grows_each_symbols_history_by_its_own_rows():
    # a many-symbol capture in one call: each history holds about its symbol's share, not the
    # whole batch (20 symbols of 1 M books would otherwise reserve 20 M rows each)
    books, trades = synthetic_market(seed=12, n_books=8000, n_symbols=4)
    eng = FeatureEngine(4)
    eng.update(books, trades)

    for s in range(4):
        st = eng._states[s]
        assert st is not None
        own_books = int((books["symbol_id"] == s).sum())
        own_trades = int((trades["symbol_id"] == s).sum())
        assert st.books.keys.size <= 2 * (own_books + 1)
        assert st.trades.keys.size <= 2 * (own_trades + 1)


def test_engine_batches_of_more_than_sixteen_symbols_equal_each_symbol_alone():
    books, trades = synthetic_market(seed=13, n_books=2000, n_symbols=20)
    assert _featc.symbol_counts(books, BOOK_V1.itemsize, 32) is None  # counted in numpy then
    assert _featc.symbol_counts(books[:10], BOOK_V1.itemsize, 32) is not None

    mixed = FeatureEngine(20).update(books, trades)

    alone = np.zeros(books.size, FEAT_V1)
    for s in range(20):
        rows = books["symbol_id"] == s
        alone[rows] = FeatureEngine(20).update(books[rows], trades[trades["symbol_id"] == s])
    assert mixed.tobytes() == alone.tobytes()


def test_symbol_counts_counts_rows_per_id_in_id_order():
    books = np.zeros(7, BOOK_V1)
    books["symbol_id"] = [5, 2, 5, 5, 0, 2, 5]

    assert _featc.symbol_counts(books, BOOK_V1.itemsize, 32) == [(0, 1), (2, 2), (5, 4)]
    assert _featc.symbol_counts(books[:0], BOOK_V1.itemsize, 32) == []
    with pytest.raises(ValueError, match="bad itemsize or offset"):
        _featc.symbol_counts(books, BOOK_V1.itemsize, BOOK_V1.itemsize - 2)
