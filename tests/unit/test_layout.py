"""The layout contract (pyproject's [tool.importlinter]): it holds, it covers procs/, it can fail.

Programs never import one another, libraries never import programs, shm/ and ipc/ never import
procs/. ``make check`` runs ``lint-imports``; these tests show that every package under procs/
is in one of the contract's lists, and that a violating import in a copy of the tree breaks the
contract it should.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
DISPATCHER = "procs.cli"  # imports the command modules lazily by name; in neither list


def _contracts() -> dict[str, dict[str, Any]]:
    doc = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {c["id"]: c for c in doc["tool"]["importlinter"]["contracts"]}


def _procs_members() -> set[str]:
    out = set()
    for p in (ROOT / "procs").iterdir():
        if p.is_dir() and (p / "__init__.py").is_file():
            out.add(f"procs.{p.name}")
        elif p.suffix == ".py" and p.name != "__init__.py":
            out.add(f"procs.{p.stem}")
    return out


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_package_under_procs_is_a_program_or_a_library() -> None:
    contracts = _contracts()
    programs = set(contracts["programs"]["modules"])
    libraries = set(contracts["libraries"]["source_modules"])
    assert not programs & libraries
    assert _procs_members() - {DISPATCHER} == programs | libraries
    assert set(contracts["libraries"]["forbidden_modules"]) == programs | {DISPATCHER}
    assert contracts["base"]["source_modules"] == ["shm", "ipc"]
    assert contracts["base"]["forbidden_modules"] == ["procs"]


def test_the_tree_keeps_the_contract() -> None:
    res = _lint(ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "3 kept, 0 broken" in res.stdout, res.stdout


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    for pkg in ("procs", "shm", "ipc"):
        shutil.copytree(
            ROOT / pkg,
            tmp_path / pkg,
            ignore=shutil.ignore_patterns("__pycache__", "*.so", "static"),
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


@pytest.mark.parametrize(
    ("module_file", "line", "broken", "shown"),
    [
        (
            "procs/backtest/__init__.py",
            "from procs.execution import control",
            "programs never import one another",
            "procs.backtest is not allowed to import procs.execution",
        ),
        (
            "procs/tickstore/__init__.py",
            "import procs.capture.proc",
            "libraries never import programs",
            "procs.tickstore is not allowed to import procs.capture",
        ),
        (
            "ipc/__init__.py",
            "import procs.trading.orders",
            "shm and ipc never import procs",
            "ipc is not allowed to import procs",
        ),
    ],
)
def test_a_violating_import_breaks_the_contract(
    tree_copy: Path, module_file: str, line: str, broken: str, shown: str
) -> None:
    assert _lint(tree_copy).returncode == 0  # the copy is analysed, and clean before the edit
    target = tree_copy / module_file
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    res = _lint(tree_copy)
    assert res.returncode != 0, res.stdout
    assert f"{broken} BROKEN" in res.stdout, res.stdout
    assert shown in res.stdout, res.stdout
