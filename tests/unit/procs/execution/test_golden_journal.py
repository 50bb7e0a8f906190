"""The recorded session's journal, byte for byte, and every event it published: the same as the
code before the order path's cuts of issue 12 wrote them (``tests/helpers/golden_session.py``:
a fixed audit key and journal clock, so the audit chain's hashes are comparable too)."""

from __future__ import annotations

import json

from tests.helpers.golden_session import GOLDEN_JOURNAL, run_journaled


def test_recorded_session_writes_the_golden_journal_and_events(tmp_path, ns):
    golden = json.loads(GOLDEN_JOURNAL.read_text())
    got = run_journaled(tmp_path, ns)
    rows = golden["rows"]  # the session writes every kind of row the order path writes
    assert rows["intents"] > 300
    assert rows["order_events"] > 1000
    assert rows["fills"] > 0
    assert rows["risk_events"] > 0
    assert rows["reads"] > 0
    assert got["rows"] == golden["rows"]
    assert got["audit_head"] == golden["audit_head"]  # the chain: every row and its order
    assert got["journal_sha256"] == golden["journal_sha256"]
    assert (got["events"], got["events_sha256"]) == (golden["events"], golden["events_sha256"])
