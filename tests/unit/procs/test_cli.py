"""The console script: every listed command resolves to a real function; bad input is clear."""

from __future__ import annotations

import importlib

import pytest

from procs.cli import COMMANDS, main


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_cli_command_resolves_to_a_callable(name):
    module, func, _ = COMMANDS[name]

    target = getattr(importlib.import_module(module), func)

    assert callable(target)


def test_cli_unknown_command_exits_2_and_lists_commands(capsys):
    rc = main(["no-such-command"])

    assert rc == 2
    assert "unknown command" in capsys.readouterr().err
