"""``bitrader keys set|show|rotate``: non-interactive use, masking, refusals with exit 78."""

from __future__ import annotations

import io

import pytest

import procs.keystore.store as store_mod
from procs.keystore.cli import main
from procs.keystore.store import load

KEY, SECRET = "cli-api-key-0123456789", "cli-api-secret-abcdefghijkl"


@pytest.fixture(autouse=True)
def _cheap_scrypt(monkeypatch):
    monkeypatch.setattr(store_mod, "SCRYPT_N", 2**10)  # the file records its own cost


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("BITRADER_KEYSTORE_PASSPHRASE", "pass-one")
    monkeypatch.setenv("BITUNIX_API_KEY", KEY)
    monkeypatch.setenv("BITUNIX_SECRET", SECRET)


def test_keys_set_from_env_then_show_masks_everything(tmp_path, env, capsys):
    path = tmp_path / "ks.json"

    rc_set = main(["set", "--keystore", str(path), "--from-env"])
    rc_show = main(["show", "--keystore", str(path)])

    out = capsys.readouterr().out
    assert (rc_set, rc_show) == (0, 0)
    assert KEY not in out
    assert SECRET not in out
    assert "cli-" in out  # enough to recognise which key it is
    data = load(path, "pass-one")
    assert (data.api_key, data.secret) == (KEY, SECRET)
    assert len(bytes.fromhex(data.audit_key)) == 32


def test_keys_set_from_stdin(tmp_path, monkeypatch):
    monkeypatch.setenv("BITRADER_KEYSTORE_PASSPHRASE", "pw-stdin")
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{KEY}\n{SECRET}\n"))
    path = tmp_path / "ks.json"

    rc = main(["set", "--keystore", str(path), "--stdin"])

    assert rc == 0
    assert load(path, "pw-stdin").secret == SECRET


def test_keys_rotate_replaces_credentials_and_passphrase_keeps_audit_key(
    tmp_path, env, monkeypatch
):
    path = tmp_path / "ks.json"
    main(["set", "--keystore", str(path), "--from-env"])
    before = load(path, "pass-one")
    monkeypatch.setenv("BITUNIX_API_KEY", "rotated-key-000000")
    monkeypatch.setenv("BITUNIX_SECRET", "rotated-secret-00000")
    monkeypatch.setenv("BITRADER_KEYSTORE_NEW_PASSPHRASE", "pass-two")

    rc = main(["rotate", "--keystore", str(path), "--from-env"])

    after = load(path, "pass-two")
    assert rc == 0
    assert (after.api_key, after.secret) == ("rotated-key-000000", "rotated-secret-00000")
    assert after.audit_key == before.audit_key


def test_keys_show_loose_keystore_exits_78(tmp_path, env, capsys):
    path = tmp_path / "ks.json"
    main(["set", "--keystore", str(path), "--from-env"])
    path.chmod(0o644)

    rc = main(["show", "--keystore", str(path)])

    assert rc == 78
    assert "chmod 600" in capsys.readouterr().err


def test_keys_show_wrong_passphrase_fails_without_secret(tmp_path, env, monkeypatch, capsys):
    path = tmp_path / "ks.json"
    main(["set", "--keystore", str(path), "--from-env"])
    monkeypatch.setenv("BITRADER_KEYSTORE_PASSPHRASE", "not-it")

    rc = main(["show", "--keystore", str(path)])

    err = capsys.readouterr()
    assert rc == 1
    assert SECRET not in err.out + err.err


def test_keys_set_refuses_to_overwrite_and_needs_both_values(tmp_path, env, monkeypatch):
    path = tmp_path / "ks.json"
    main(["set", "--keystore", str(path), "--from-env"])
    monkeypatch.setenv("BITUNIX_SECRET", "")

    again = main(["set", "--keystore", str(path), "--from-env"])
    forced_empty = main(["set", "--keystore", str(path), "--from-env", "--force"])

    assert (again, forced_empty) == (1, 1)
    assert load(path, "pass-one").secret == SECRET
