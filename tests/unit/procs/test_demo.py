"""The demo's summary lines: nothing misleading before the group is up; the dashboard line."""

from __future__ import annotations

import os

from procs.demo import (
    CONFIGS,
    DASHBOARD_PASSWORD_ENV,
    _dashboard_login,
    _PipelineView,
    group_up,
    starting_line,
)
from procs.group.health import ProcHealth
from procs.group.supervise import GroupEnv

NAMES = ("simex", "ingest", "features", "inference", "capture", "execution")


def _rows(**overrides: ProcHealth) -> dict[str, ProcHealth]:
    rows = {n: ProcHealth(name=n, state="RUNNING") for n in NAMES}
    rows.update(overrides)
    return rows


def test_group_is_up_only_when_every_process_answers():
    silent = ProcHealth(name="ingest", state="RUNNING", problems=["health request failed: x"])

    assert group_up(_rows())
    assert not group_up(_rows(ingest=silent))
    assert not group_up(_rows(simex=ProcHealth(name="simex", state="STARTING")))
    assert not group_up({})


def test_starting_line_names_what_it_waits_for_and_nothing_else():
    silent = ProcHealth(name="ingest", state="RUNNING", problems=["health request failed: x"])

    line = starting_line(3.0, _rows(ingest=silent))

    assert "starting… 5/6 up; waiting for ingest" in line
    assert "health request failed" not in line
    assert "?" not in line


def test_no_tick_to_order_figure_beside_zero_orders(tmp_path):
    view = _PipelineView(GroupEnv(tmp_path, CONFIGS["pipeline"], "demo", "pipeline"))
    try:
        view._t2o_ns += [2_000_000, 3_000_000]  # order events seen before the counter moved
        ex = ProcHealth(name="execution", state="RUNNING", counters={"orders_sent_total": 0})
        before = "\n".join(view.lines(5.0, _rows(execution=ex), 1.0))
        ex.counters["orders_sent_total"] = 2
        after = "\n".join(view.lines(6.0, _rows(execution=ex), 1.0))
    finally:
        view.close()

    assert "orders 0" in before
    assert "tick-to-order no orders yet" in before
    assert "µs" not in before
    assert "tick-to-order p50 2,500 µs" in after
    assert "(n=2)" in after


def test_demo_makes_a_password_prints_it_and_hands_it_to_the_group(monkeypatch):
    monkeypatch.delenv(DASHBOARD_PASSWORD_ENV, raising=False)

    line = _dashboard_login(CONFIGS["pipeline"])

    password = os.environ[DASHBOARD_PASSWORD_ENV]
    assert len(password) >= 16
    assert line == f"risk dashboard: http://127.0.0.1:18090/  (log in with password {password})"


def test_demo_keeps_the_operators_password_and_does_not_print_it(monkeypatch):
    monkeypatch.setenv(DASHBOARD_PASSWORD_ENV, "mine")

    line = _dashboard_login(CONFIGS["pipeline"])

    assert os.environ[DASHBOARD_PASSWORD_ENV] == "mine"
    assert line is not None
    assert "mine" not in line
    assert f"${DASHBOARD_PASSWORD_ENV}" in line


def test_demo_treats_an_empty_password_as_unset(monkeypatch):
    monkeypatch.setenv(DASHBOARD_PASSWORD_ENV, "")

    _dashboard_login(CONFIGS["pipeline"])

    assert os.environ[DASHBOARD_PASSWORD_ENV]


def test_transport_demo_has_no_dashboard():
    assert _dashboard_login(CONFIGS["transport"]) is None
