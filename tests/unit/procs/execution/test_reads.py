"""ReadLog: what trading steps read, one journal row per flush, in the text json.dumps gives."""

from __future__ import annotations

import json
import random
import sqlite3
from contextlib import closing

import numpy as np

from procs.trading.journal import Journal
from procs.trading.reads import ReadLog
from shm.records import BOOK_V1, SIG_V1


def _recs(dtype: np.dtype, seqs: list[int]) -> np.ndarray:
    r = np.zeros(len(seqs), dtype)
    r["seq"] = seqs
    return r


def test_reads_rows_are_the_json_dumps_text_of_each_step(tmp_path):
    rnd = random.Random(4)
    path = tmp_path / "j.sqlite"
    j = Journal.open(path)
    log = ReadLog(j, flush_s=3600.0)
    log.run_ms = 1_767_225_600_123
    want: list[list[int]] = []
    for k in range(300):
        if k % 50 == 0:  # no book read yet, then a new batch now and then
            log.books = None if k == 0 else _recs(BOOK_V1, [rnd.randrange(2**62) for _ in "ab"])
        sigs = _recs(SIG_V1, sorted(rnd.randrange(2**62) for _ in range(rnd.randint(1, 4))))
        now = rnd.randrange(2**63)
        log._due = now + 1  # (no flush until asked)
        log.note(sigs, now)
        book_seq = 0 if log.books is None else int(log.books["seq"][-1])
        want.append([book_seq, int(sigs["seq"][0]), int(sigs["seq"][-1]), now])
    log.flush()
    j.close()
    with closing(sqlite3.connect(path)) as c:
        [(run_ms, text, ts_ns)] = c.execute("SELECT run_ms, steps, ts_ns FROM reads").fetchall()
    assert text == json.dumps(want, separators=(",", ":"))
    assert (run_ms, ts_ns) == (log.run_ms, want[-1][3])
    again = Journal.open(path)
    try:
        assert again.verify_audit().ok  # the row's audit text is what verify recomputes
    finally:
        again.close()


def test_reads_text_of_any_ints_is_json_dumps_text():
    from procs.trading.journal_rows import JSON as _JSON

    rnd = random.Random(9)
    edges = [0, -1, 2**63 - 1, -(2**63), 2**64 + 5]
    for _ in range(200):
        steps = [
            tuple(rnd.choice([*edges, rnd.randrange(-(2**70), 2**70)]) for _ in range(4))
            for _ in range(rnd.randint(1, 5))
        ]
        assert _JSON.encode(steps).decode() == json.dumps([list(x) for x in steps],
                                                          separators=(",", ":"))  # fmt: skip
