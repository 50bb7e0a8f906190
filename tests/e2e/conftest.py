"""Fixtures for the whole-group e2e tests: keys in the environment, a group factory.

``make_group(overrides)`` builds a config from configs/demo.toml (see
tests/helpers/group_config.py), starts the ``pipeline`` group under supervisord and stops it when
the test ends. ``FAST`` are the settings that make execution trade within seconds.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import unique_ns
from tests.helpers.group_config import EXEC_KEY, build_group_config, merge
from tests.helpers.group_run import Group, running_group

# execution trades on small scores, reconciles and polls the switch often
FAST: dict[str, Any] = {
    "execution": {
        "killswitch_poll_s": 0.05,
        "reconcile_interval_s": 1.0,
        "reconcile_retry_s": 0.3,
        "position_snapshot_interval_s": 1.0,
        "order_ack_timeout_s": 2.0,
        "cancel_timeout_s": 1.0,
        "strategy": {"enter_score": 0.05, "exit_score": 0.02, "take_score": 0.3},
    },
}

MakeGroup = Callable[[dict[str, Any]], Group]


def short_run_dir() -> Path:
    # ipc:// paths must stay under the 107-byte sun_path limit: keep it short
    path = Path("/tmp") / f"br-{uuid.uuid4().hex[:10]}"
    path.mkdir()
    return path


@pytest.fixture(scope="module")
def exec_keys() -> Iterator[None]:
    """Execution's key in the environment the group inherits (GroupEnv copies os.environ)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BITUNIX_API_KEY", EXEC_KEY[0])
        mp.setenv("BITUNIX_SECRET", EXEC_KEY[1])
        yield


@pytest.fixture
def make_group(exec_keys: None, run_dir: Path, ns: str) -> Iterator[MakeGroup]:
    """Start one group per test (at most one): ``make_group(overrides) -> Group``."""
    with ExitStack() as stack:

        def make(overrides: dict[str, Any]) -> Group:
            cfg = build_group_config(run_dir, run_dir, merge(FAST, overrides))
            return stack.enter_context(running_group(run_dir, ns, cfg))

        yield make


@pytest.fixture(scope="module")
def module_group(exec_keys: None, request: pytest.FixtureRequest) -> Iterator[Group]:
    """One group shared by a module; its overrides come from the module's ``GROUP_OVERRIDES``."""
    run_dir = short_run_dir()
    overrides: dict[str, Any] = getattr(request.module, "GROUP_OVERRIDES", {})
    try:
        cfg = build_group_config(run_dir, run_dir, merge(FAST, overrides))
        with running_group(run_dir, unique_ns("g"), cfg) as group:
            yield group
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
