"""A recorded session (fixed sig/book records) gives the same orders and fills as the code
before the hot-path work of issue 12 (golden file written by that code:
``tests/helpers/golden_session.py``)."""

from __future__ import annotations

import json

from tests.helpers.golden_session import GOLDEN, load_session, run_session


def test_recorded_session_gives_the_golden_orders(tmp_path, ns):
    golden = [json.loads(line) for line in GOLDEN.read_text().splitlines()]
    got = json.loads(json.dumps(run_session(tmp_path, ns, load_session())))
    assert len(golden) > 500  # the session does trade: quotes, takes, cancels, fills
    assert {e["status"] for e in golden if e["kind"] == "OrderEvent"} >= {
        "SENT", "ACKED", "CANCELED", "FILLED", "PART_FILLED",
    }  # fmt: skip
    for i, (want, have) in enumerate(zip(golden, got, strict=False)):
        assert have == want, f"event {i} differs"
    assert len(got) == len(golden)
