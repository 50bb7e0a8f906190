"""LocalBook: snapshot, deltas (qty 0 deletes), crossing, ordering invariants."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ipc.bitunix.book import LocalBook


def test_apply_delta_zero_qty_deletes_and_updates_in_place():
    book = LocalBook("X")
    book.apply_snapshot([(100.0, 1.0), (99.0, 2.0)], [(101.0, 1.0), (102.0, 3.0)])

    book.apply_delta([(100.0, 0.0), (99.0, 5.0), (98.0, 1.0)], [(101.0, 0.0), (100.5, 2.0)])

    assert book.top(5) == ([(99.0, 5.0), (98.0, 1.0)], [(100.5, 2.0), (102.0, 3.0)])
    assert book.best_bid() == (99.0, 5.0)
    assert book.best_ask() == (100.5, 2.0)
    assert not book.crossed


def test_crossed_when_best_bid_reaches_best_ask():
    book = LocalBook("X")
    book.apply_snapshot([(100.0, 1.0)], [(101.0, 1.0)])

    book.apply_delta([(101.0, 1.0)], [])

    assert book.crossed


def test_reset_empties_and_unsyncs():
    book = LocalBook("X")
    book.apply_snapshot([(1.0, 1.0)], [(2.0, 1.0)])

    book.reset()

    assert book.depth == (0, 0)
    assert not book.synced


def test_non_finite_levels_ignored():
    book = LocalBook("X")

    book.apply_snapshot([(float("nan"), 1.0), (float("inf"), 1.0), (-1.0, 1.0)], [(2.0, 1.0)])

    assert book.depth == (0, 1)


levels = st.lists(
    st.tuples(st.integers(1, 50).map(float), st.sampled_from([0.0, 1.0, 2.5])), max_size=30
)


@given(st.lists(st.tuples(levels, levels), min_size=1, max_size=20))
def test_book_matches_dict_model_after_any_deltas(steps):
    book = LocalBook("X")
    model_b: dict[float, float] = {}
    model_a: dict[float, float] = {}

    for bids, asks in steps:
        book.apply_delta(bids, asks)
        for model, side in ((model_b, bids), (model_a, asks)):
            for p, q in side:
                if q == 0.0:
                    model.pop(p, None)
                else:
                    model[p] = q

    bids, asks = book.top(100)
    assert bids == sorted(model_b.items(), reverse=True)
    assert asks == sorted(model_a.items())
