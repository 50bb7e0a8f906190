"""``python -m procs.execution`` exit codes for configurations it cannot run."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from procs.trading.journal import Journal
from tests.integration.test_audit_cli import bitrader

pytestmark = pytest.mark.integration

BASE = """
[execution]
mode = "live"
[[execution.symbols]]
symbol = "BTCUSDT"
symbol_id = 1
"""
RUNTIME = """
[execution.runtime]
pub_endpoint = "ipc://{run_dir}/execution.pub"
control_endpoint = "ipc://{run_dir}/execution.ctl"
"""


def run(tmp_path, run_dir, text: str) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "exec.toml"
    cfg.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BITUNIX_")}
    env |= {"BITRADER_RUN_DIR": str(run_dir), "BITRADER_NS": "cli"}
    return subprocess.run(
        [sys.executable, "-m", "procs.execution", str(cfg)],
        capture_output=True, text=True, env=env, timeout=30,
    )  # fmt: skip


def test_execution_without_runtime_table_exits_78(tmp_path, run_dir):
    done = run(tmp_path, run_dir, BASE)
    assert done.returncode == 78, done.stdout + done.stderr
    assert "runtime" in done.stdout + done.stderr


def test_execution_live_without_keys_exits_78(tmp_path, run_dir):
    done = run(tmp_path, run_dir, BASE + RUNTIME)
    assert done.returncode == 78, done.stdout + done.stderr
    assert "no API key" in done.stdout + done.stderr


def test_execution_unknown_field_exits_78_naming_it(tmp_path, run_dir):
    done = run(tmp_path, run_dir, BASE.replace('mode = "live"', "batch_maxx = 3") + RUNTIME)
    assert done.returncode == 78
    assert "batch_maxx" in done.stdout + done.stderr


PAPER = """
[execution]
mode = "paper"
journal_path = "{journal}"
[[execution.symbols]]
symbol = "BTCUSDT"
symbol_id = 1
tick = "0.1"
step = "0.0001"
min_qty = "0.0001"
"""


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(p.read_bytes()[:-1000]), "truncated"),
        (lambda p: p.write_bytes(b"\x00" * 4096), "not a SQLite database"),
        (
            lambda p: Path(f"{p}-intents").write_bytes((b"f" * 64 + b' ["c1"]\n') * 2),
            "line 1 is damaged or was edited",
        ),  # the intent log: its lines' seals do not match
    ],
    ids=["truncated-to-zero", "truncated", "not-sqlite", "intent-log-edited"],
)
def test_execution_damaged_journal_exits_78_with_a_message(tmp_path, run_dir, damage, says):
    from procs.trading.journal import Journal

    journal = tmp_path / "journal.sqlite"
    j = Journal.open(journal)
    for key in range(200):
        j.set_meta(f"k{key}", "v" * 100)
    j.close()
    damage(journal)

    done = run(tmp_path, run_dir, PAPER.format(journal=journal) + RUNTIME)

    out = done.stdout + done.stderr
    assert done.returncode == 78, out
    assert "journal_path" in out
    assert says in out
    assert "Traceback" not in out


def test_execution_unwritable_journal_path_exits_78(tmp_path, run_dir):
    (tmp_path / "afile").write_text("")
    journal = tmp_path / "afile" / "journal.sqlite"

    done = run(tmp_path, run_dir, PAPER.format(journal=journal) + RUNTIME)

    out = done.stdout + done.stderr
    assert done.returncode == 78, out
    assert "cannot create directory" in out
    assert "Traceback" not in out


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ('api_key = "k-123456"\nsecret = "s-123456"\n', 0o644),  # readable by others
        ('api_key = "k-123456"\n', 0o600),  # no secret
        ("api_key = = nope\n", 0o600),  # bad TOML
    ],
    ids=["mode-0644", "no-secret", "bad-toml"],
)
def test_execution_bad_key_file_exits_78(tmp_path, run_dir, text, mode):
    keys = tmp_path / "keys.toml"
    keys.write_text(text)
    keys.chmod(mode)
    venue = f'\n[execution.venue]\nkey_file = "{keys}"\n'

    done = run(tmp_path, run_dir, BASE + RUNTIME + venue)

    assert done.returncode == 78, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_execution_keystore_without_passphrase_exits_78(tmp_path, run_dir):
    from procs.keystore.store import Secrets, save

    ks = tmp_path / "ks.json"
    save(ks, Secrets(api_key="k-123456", secret="s-123456"), "pw-123456", n=2**10)
    venue = f'\n[execution.venue]\nkeystore_path = "{ks}"\n'

    done = run(tmp_path, run_dir, BASE + RUNTIME + venue)

    assert done.returncode == 78, done.stdout + done.stderr
    assert "BITRADER_KEYSTORE_PASSPHRASE" in done.stdout + done.stderr


# past the audit gate, then give up waiting for rings nobody writes
PAPER_NO_RINGS = PAPER.replace('mode = "paper"\n', 'mode = "paper"\nattach_timeout_s = 0.3\n')


def _tampered_journal(path):
    j = Journal.open(path)
    j.set_meta("balance_base", "100000")
    j.close()
    with closing(sqlite3.connect(path)) as c:
        c.execute("UPDATE meta SET value='900000' WHERE key='balance_base'")
        c.commit()


def test_execution_refuses_a_broken_audit_chain_with_78(tmp_path, run_dir):
    journal = tmp_path / "execution.sqlite"
    _tampered_journal(journal)

    done = run(tmp_path, run_dir, PAPER_NO_RINGS.format(journal=journal) + RUNTIME)

    assert done.returncode == 78, done.stdout + done.stderr
    assert "audit chain broken" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_execution_override_reseals_once_and_is_journaled(tmp_path, run_dir):
    journal = tmp_path / "execution.sqlite"
    _tampered_journal(journal)
    ov = bitrader("audit", "override", journal, "--reason", "balance fixed by hand")
    assert ov.returncode == 0, ov.stderr

    done = run(tmp_path, run_dir, PAPER_NO_RINGS.format(journal=journal) + RUNTIME)

    # it got past the gate (then stopped: no rings to attach in this test)
    assert done.returncode != 78, done.stdout + done.stderr
    assert not Path(f"{journal}.audit-override").exists()
    with closing(sqlite3.connect(journal)) as c:
        kinds = [k for (k,) in c.execute("SELECT kind FROM audit ORDER BY id")]
        body = c.execute("SELECT body FROM audit WHERE kind='reseal'").fetchone()[0]
    assert "reseal" in kinds
    assert "balance fixed by hand" in body
    assert bitrader("audit", "verify", journal).returncode == 0
