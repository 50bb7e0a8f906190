"""Fixtures for the whole-group e2e tests: keys in the environment, a group factory.

``make_group(overrides, topology="split")`` builds a config from configs/demo.toml (see
tests/helpers/group_config.py), starts the ``pipeline`` group (``pipeline-colocated`` for
``topology="colocated"``) under supervisord and stops it when
the test ends. ``FAST`` are the settings that make execution trade within seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.group_config import EXEC_KEY, build_group_config, merge
from tests.helpers.group_run import Group, group_lock, running_group

# Execution trades on small scores, reconciles and polls the switch often. Market-data gaps:
# on two busy cores (and while a SIGKILLed ingest restarts: python start, REST snapshot, WS
# login) a symbol can go quiet for seconds; past ingest's stale_after_s that latches execution's
# breaker in REDUCING until an operator reset, by design. These tests are not about that gap.
FAST: dict[str, Any] = {
    "ingest": {"stale_after_s": 5.0},
    "execution": {
        "killswitch_poll_s": 0.05,
        "reconcile_interval_s": 1.0,
        "reconcile_retry_s": 0.3,
        "position_snapshot_interval_s": 1.0,
        "order_ack_timeout_s": 2.0,
        "cancel_timeout_s": 1.0,
        "strategy": {"enter_score": 0.05, "exit_score": 0.02, "take_score": 0.3},
        # two busy cores make a slow ack now and then; these tests are not about latency
        "breaker": {"latency_spike_s": 5.0, "stale_data_s": 15.0},
    },
}

MakeGroup = Callable[..., Group]


@pytest.fixture
def make_group(monkeypatch: pytest.MonkeyPatch, run_dir: Path, ns: str) -> Iterator[MakeGroup]:
    """Start one group per test (at most one): ``make_group(overrides) -> Group``."""
    # execution's key, in the environment the group inherits (GroupEnv copies os.environ)
    monkeypatch.setenv("BITUNIX_API_KEY", EXEC_KEY[0])
    monkeypatch.setenv("BITUNIX_SECRET", EXEC_KEY[1])
    with ExitStack() as stack:
        stack.enter_context(group_lock())

        def make(overrides: dict[str, Any], topology: str = "split") -> Group:
            """``topology="colocated"``: the ``pipeline-colocated`` group (procs.hotpath)."""
            extra = {"group": {"topology": topology}}
            cfg = build_group_config(run_dir, run_dir, merge(merge(FAST, overrides), extra))
            name = "pipeline" if topology == "split" else "pipeline-colocated"
            return stack.enter_context(running_group(run_dir, ns, cfg, group_name=name))

        yield make
