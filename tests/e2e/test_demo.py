"""``bitrader demo`` / ``make demo``: namespace from the config, clean start-up summary."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from procs.demo import RUN_ROOT, resolve
from shm.segment import SHM_DIR
from tests.conftest import ROOT, free_port, unique_ns
from tests.helpers.group_run import group_lock
from tests.helpers.poll import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("group"), pytest.mark.timeout(180)]

TRANSPORT = ROOT / "configs" / "transport.toml"


def _transport_config(directory: Path, ns: str) -> Path:
    text = TRANSPORT.read_text()
    text = re.sub(r"metrics_port = \d+", lambda _: f"metrics_port = {free_port()}", text)
    path = directory / f"{ns}.toml"
    path.write_text(text)
    return path


def test_resolve_namespace_and_run_dir_follow_the_config_or_ns():
    assert resolve("pipeline", None, None, None) == (
        ROOT / "configs" / "demo.toml",
        "demo",
        (RUN_ROOT / "demo").resolve(),
    )
    cfg = Path("/x/mine.toml")
    assert resolve("pipeline", cfg, None, None) == (cfg, "mine", (RUN_ROOT / "mine").resolve())
    assert resolve("pipeline", cfg, "other", Path("/tmp/rd"))[1:] == ("other", Path("/tmp/rd"))


def test_two_demos_with_different_configs_run_side_by_side(tmp_path):
    ns_a, ns_b, ns_c = unique_ns("da"), unique_ns("db"), unique_ns("dc")
    cfg_a = _transport_config(tmp_path, ns_a)
    cfg_b = _transport_config(tmp_path, ns_b)
    common = ["--group", "transport", "--duration", "25"]
    with group_lock():
        # one through make (CONFIG=, NS= are passed on), one through the module, config stem
        make = subprocess.Popen(
            ["make", "-s", "-o", ".venv/.installed", "demo", f"CONFIG={cfg_a}", f"NS={ns_c}",
             "GROUP=transport", "DURATION=25", f"RUN_DIR={tmp_path / 'ra'}"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        direct = subprocess.Popen(
            [sys.executable, "-m", "procs.demo", "--config", str(cfg_b), *common,
             "--run-dir", str(tmp_path / "rb")],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            both = [SHM_DIR / f"{ns_c}.producer.bench", SHM_DIR / f"{ns_b}.producer.bench"]
            eventually(lambda: all(p.exists() for p in both), timeout_s=60)
            out_make, _ = make.communicate(timeout=90)
            out_direct, _ = direct.communicate(timeout=90)
        finally:
            for p in (make, direct):
                if p.poll() is None:
                    p.kill()
                    p.communicate(timeout=30)

    assert make.returncode == 0, out_make
    assert direct.returncode == 0, out_direct
    assert f"namespace {ns_c!r}" in out_make
    assert f"namespace {ns_b!r}" in out_direct
    assert not (SHM_DIR / f"{ns_a}.producer.bench").exists()  # --ns won over the stem
    for out in (out_make, out_direct):
        assert "stopped cleanly" in out
        _assert_clean_start(out)


def _assert_clean_start(out: str) -> None:
    lines = [ln for ln in out.splitlines() if re.match(r"\s*\d+s  ", ln)]
    first_up = next(i for i, ln in enumerate(lines) if "rec/s" in ln)
    assert first_up >= 1, out  # the first print comes before any process can answer
    assert all("starting…" in ln for ln in lines[:first_up]), out
    assert "health request failed" not in out
    assert "?" not in "\n".join(lines)
