"""Paper-mode funding: rates polled from the public REST, settled on the local legs once."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from ipc.bitunix.fields import decoder
from ipc.bitunix.schemas_rest import FundingRate
from procs.trading.config import PaperConfig
from procs.trading.engine import ExecutionProc
from procs.trading.model import Fill, PositionSide, Side
from procs.trading.paper import BookLevels, levels
from procs.trading.paper_funding import FundingQuote, PaperFunding
from procs.trading.positions import PositionSnapshot
from procs.trading.venue import PaperVenueAdapter
from tests.helpers.execution_fakes import T0, make_rig

D = Decimal
NEXT_MS = T0 // 1_000_000 + 1_000


def leg(qty: str, side: PositionSide = PositionSide.BOTH) -> PositionSnapshot:
    return PositionSnapshot(symbol="BTCUSDT", position_side=side, qty=D(qty))


def test_paper_funding_settles_each_leg_once_when_its_time_comes():
    f = PaperFunding()
    f.update([FundingQuote("BTCUSDT", D("0.001"), NEXT_MS)])
    legs = [leg("2", PositionSide.LONG), leg("-1", PositionSide.SHORT)]
    marks = {"BTCUSDT": D(100)}

    assert f.settle(NEXT_MS - 1, legs, marks) == []
    events = f.settle(NEXT_MS, legs, marks)
    f.update([FundingQuote("BTCUSDT", D("0.001"), NEXT_MS)])  # a stale poll of the same time

    assert [(e.position_side, e.amount) for e in events] == [
        (PositionSide.LONG, D("-0.2")),  # a positive rate: the long pays
        (PositionSide.SHORT, D("0.1")),
    ]
    assert events[0].event_id == f"paper:BTCUSDT:LONG:{NEXT_MS}"
    assert f.settle(NEXT_MS + 5, legs, marks) == []


def test_paper_funding_without_a_price_books_nothing():
    f = PaperFunding()
    f.update([FundingQuote("BTCUSDT", D("0.001"), NEXT_MS)])

    assert f.settle(NEXT_MS, [leg("1")], {}) == []


@dataclass
class FakePublicRest:
    rates: list[FundingRate] = field(default_factory=list)
    polls: int = 0

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def funding_rates(self) -> list[FundingRate]:
        self.polls += 1
        return self.rates


def test_paper_adapter_polls_rates_and_books_funding_through_the_process(tmp_path, ns):
    raw = f'{{"symbol":"BTCUSDT","fundingRate":"0.001","nextFundingTime":"{NEXT_MS}"}}'
    rest = FakePublicRest([decoder(FundingRate).decode(raw.encode())])
    now = [T0]
    holder: list[ExecutionProc] = []
    venue = PaperVenueAdapter(
        PaperConfig(settle_funding=True),
        local=lambda _cid: None,
        positions=lambda: holder[0].positions.snapshots(),
        balance=lambda: D(0),
        public_rest=rest,  # type: ignore[arg-type]  # the fake has what the adapter calls
        clock=lambda: now[0],
    )
    r = make_rig(tmp_path, ns, venue=venue, mode="paper")
    holder.append(r.proc)
    try:
        venue.on_book(BookLevels("BTCUSDT", levels(("99", "1")), levels(("101", "1"))))
        r.proc.positions.apply_fill(
            Fill(fill_id="f1", client_id="c", order_id="o", symbol="BTCUSDT", side=Side.BUY,
                 qty=D(2), price=D(100), fee=D(0))
        )  # fmt: skip
        r.loop.run_until_complete(venue.marks(["BTCUSDT"]))  # polls: the time is not yet here
        assert rest.polls == 1
        assert r.proc.journal.count("funding") == 0

        now[0] = NEXT_MS * 1_000_000
        r.loop.run_until_complete(venue.marks(["BTCUSDT"]))
        r.loop.run_until_complete(venue.marks(["BTCUSDT"]))

        assert r.proc.journal.count("funding") == 1
        assert r.proc.positions.position("BTCUSDT").funding == D("-0.2")
        assert rest.polls == 1  # polled again only after funding_poll_s
    finally:
        r.close()
