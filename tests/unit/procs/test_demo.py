"""The demo's summary lines: nothing misleading before the group is up."""

from __future__ import annotations

from procs.demo import CONFIGS, _PipelineView, group_up, starting_line
from procs.health import ProcHealth
from procs.supervise import GroupEnv

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
