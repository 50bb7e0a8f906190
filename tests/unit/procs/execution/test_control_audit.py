"""Execution's ``audit`` command: what it accepts (known kinds, bounded fields), what it refuses,
and that an accepted record is one keyed ``audit_record`` row the chain verifies."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from types import SimpleNamespace
from typing import Any, cast

import pytest

from procs.trading.control import (
    AUDIT_MAX_BYTES,
    AUDIT_MAX_FIELDS,
    AUDIT_MAX_TEXT,
    OperatorCommands,
    OperatorHost,
    journal_control,
    validate_audit,
)
from procs.trading.journal import Journal


def args(kind: str = "login_ok", **fields: Any) -> dict[str, str]:
    return {
        "kind": kind,
        "source": "dashboard",
        "fields": json.dumps(fields or {"address": "127.0.0.1", "user": "operator"}),
        "seq": "7",
        "ts_ns": "1700000000000000000",
    }


def test_a_valid_login_record_becomes_its_journal_body():
    body = validate_audit(args("login_failed", address="10.0.0.9"))

    assert body == {
        "kind": "login_failed",
        "source": "dashboard",
        "fields": {"address": "10.0.0.9"},
        "seq": 7,
        "ts_ns": 1700000000000000000,
    }


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"kind": "drop_tables"}, "unknown kind"),
        ({"kind": ""}, "unknown kind"),
        ({"source": ""}, "source must be"),
        ({"source": "x" * 33}, "source must be"),
        ({"source": "dash\nboard"}, "source must be"),
        ({"fields": "not json"}, "not JSON"),
        ({"fields": "[1, 2]"}, "must be an object"),
        ({"fields": json.dumps({f"k{i}": i for i in range(AUDIT_MAX_FIELDS + 1)})}, "at most"),
        ({"fields": json.dumps({"why": "x" * (AUDIT_MAX_TEXT + 1)})}, "over 400 characters"),
        ({"fields": json.dumps({"k": "x" * AUDIT_MAX_BYTES})}, "over 4096 bytes"),
        ({"fields": json.dumps({"nested": {"a": 1}})}, "string, number, boolean or null"),
        ({"fields": json.dumps({"bad name": 1})}, "bad field name"),
        ({"seq": "-1"}, "seq must be"),
        ({"ts_ns": "1e9"}, "ts_ns must be"),
        ({"sql": "1"}, "unknown arguments"),
    ],
)
def test_bad_audit_requests_are_refused_saying_why(change, error):
    with pytest.raises(ValueError, match=error):
        validate_audit({**args(), **change})


@pytest.fixture
def path(tmp_path):
    return tmp_path / "journal.sqlite"


@pytest.fixture
def journal(path):
    j = Journal.open(path)
    yield j
    j.close()


def audit_rows(path, kind: str) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(path)) as c:
        rows = c.execute("SELECT body FROM audit WHERE kind = ? ORDER BY id", (kind,))
        return [json.loads(b) for (b,) in rows]


def test_an_accepted_record_is_one_keyed_audit_row_and_a_refusal_a_control_row(journal, path):
    ops = OperatorCommands(cast(OperatorHost, SimpleNamespace(journal=journal)), lambda: 5)
    on_control = journal_control(journal)

    reply = ops.audit(args("killswitch", on=True, user="operator", acknowledged=True))
    resent = ops.audit(args("killswitch", on=True, user="operator", acknowledged=True))
    on_control("audit", args(), True, "")  # the dispatcher's hook: no second row for it
    with pytest.raises(ValueError):
        ops.audit(args("nonsense"))
    on_control("audit", args("nonsense"), False, "audit: unknown kind")

    [row] = audit_rows(path, "audit_record")
    assert row["fields"] == {"on": True, "user": "operator", "acknowledged": True}
    assert reply == {"audit_id": journal.head[0] - 1}  # the refusal's control row came after
    assert resent == {**reply, "duplicate": 1}  # a resend (same seq and time) is not a new row
    [refused] = audit_rows(path, "control")
    assert (refused["cmd"], refused["ok"]) == ("audit", False)
    assert journal.verify_audit().ok
