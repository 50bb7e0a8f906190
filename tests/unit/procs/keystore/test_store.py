"""Keystore: authenticated encryption round trip, tamper and passphrase failures, file modes."""

from __future__ import annotations

import json

import pytest

from procs.keystore.store import (
    KeyFileError,
    Secrets,
    WrongPassphraseError,
    load,
    load_with_header,
    mask,
    read_key_file,
    save,
    seal,
)

FAST_N = 2**10  # unit tests: a cheap scrypt; the files carry their own parameters
DATA = Secrets(api_key="live-key-0123456789", secret="live-secret-abcdefghij", audit_key="aa" * 32)


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "keystore.json"
    save(path, DATA, "correct horse", n=FAST_N)
    return path


def test_keystore_round_trip_returns_secrets_and_file_is_0600(store):
    got = load(store, "correct horse")

    assert got == DATA
    assert store.stat().st_mode & 0o777 == 0o600
    text = store.read_text()
    assert DATA.secret not in text
    assert DATA.api_key not in text


def test_keystore_wrong_passphrase_is_refused(store):
    with pytest.raises(WrongPassphraseError):
        load(store, "wrong horse")


@pytest.mark.parametrize("field", ["ciphertext", "nonce", "created_ns", "kdf"])
def test_keystore_altered_field_does_not_authenticate(store, field):
    doc = json.loads(store.read_text())
    if field == "kdf":
        doc["kdf"]["p"] = 2  # the header is associated data: a changed parameter fails
    elif field == "created_ns":
        doc["created_ns"] += 1
    else:
        raw = bytearray(__import__("base64").b64decode(doc[field]))
        raw[0] ^= 1
        doc[field] = __import__("base64").b64encode(bytes(raw)).decode()
    store.write_text(json.dumps(doc))

    with pytest.raises(WrongPassphraseError):
        load(store, "correct horse")


def test_keystore_readable_by_group_is_refused(store):
    store.chmod(0o640)

    with pytest.raises(KeyFileError, match="group or others"):
        load(store, "correct horse")


@pytest.mark.parametrize("text", ["not json", "[]", '{"format": "other", "version": 1}'])
def test_keystore_malformed_is_a_key_file_error(tmp_path, text):
    path = tmp_path / "ks.json"
    path.write_text(text)
    path.chmod(0o600)

    with pytest.raises(KeyFileError):
        load(path, "pw")


def test_keystore_empty_passphrase_is_refused():
    with pytest.raises(Exception, match="empty passphrase"):
        seal(DATA, "", n=FAST_N)


def test_keystore_save_keeps_created_and_moves_updated(store):
    _, first = load_with_header(store, "correct horse")

    save(store, DATA, "new horse", n=FAST_N)
    _, second = load_with_header(store, "new horse")

    assert second["created_ns"] == first["created_ns"]
    assert second["updated_ns"] >= first["updated_ns"]


@pytest.mark.parametrize(
    ("text", "mode", "problem"),
    [
        ('api_key = "k"\nsecret = "s"\n', 0o644, "group or others"),
        ('api_key = "k"\n', 0o600, "secret missing"),
        ('api_key = "k"\nsecret = ""\n', 0o600, "secret missing"),
        ("api_key = = 'k'\n", 0o600, "not a readable TOML"),
    ],
)
def test_key_file_loose_or_malformed_is_refused(tmp_path, text, mode, problem):
    path = tmp_path / "keys.toml"
    path.write_text(text)
    path.chmod(mode)

    with pytest.raises(KeyFileError, match=problem):
        read_key_file(path)


def test_mask_never_shows_the_whole_value():
    shown = [mask(v) for v in ("abcdefghijklmnopqrstuvwxyz", "short", "")]

    assert "abcdefghijklmnopqrstuvwxyz" not in shown[0]
    assert shown[0].startswith("abcd")
    assert "short" not in shown[1]
    assert shown[2] == "(none)"
