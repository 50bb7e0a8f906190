"""Control credentials: signed requests verify once, within the clock window, for their args."""

from __future__ import annotations

import pytest

from procs._auth import AuthError, Verifier, ensure_token, guard_wsgi, read_token, sign, strip

TOKEN = bytes(range(32))
NOW = 1_800_000_000_000_000_000


def test_auth_signed_request_verifies_once():
    v = Verifier(TOKEN)
    args = sign(TOKEN, "stop", {"reason": "op"}, now_ns=NOW)

    v.check("stop", args, now_ns=NOW + 1)

    with pytest.raises(AuthError, match="replayed"):
        v.check("stop", args, now_ns=NOW + 2)
    assert strip(args) == {"reason": "op"}


@pytest.mark.parametrize(
    ("cmd", "mutate", "problem"),
    [
        ("stop", lambda a: {k: v for k, v in a.items() if k != "auth_mac"}, "required"),
        ("kill", lambda a: a, "bad credentials"),  # signed for another command
        ("stop", lambda a: {**a, "reason": "other"}, "bad credentials"),  # args changed
        ("stop", lambda a: {**a, "auth_ts": str(NOW - 60 * 10**9)}, "off"),  # stale
    ],
    ids=["unsigned", "other-command", "changed-args", "stale"],
)
def test_auth_bad_request_refused(cmd, mutate, problem):
    args = mutate(sign(TOKEN, "stop", {"reason": "op"}, now_ns=NOW))

    with pytest.raises(AuthError, match=problem):
        Verifier(TOKEN).check(cmd, args, now_ns=NOW)


def test_auth_other_token_refused():
    args = sign(bytes(32), "stop", {}, now_ns=NOW)

    with pytest.raises(AuthError, match="bad credentials"):
        Verifier(TOKEN).check("stop", args, now_ns=NOW)


def test_auth_token_file_private_and_stable(tmp_path):
    path = ensure_token(tmp_path)
    first = read_token(path)

    ensure_token(tmp_path)

    assert read_token(path) == first
    assert path.stat().st_mode & 0o777 == 0o600
    path.chmod(0o644)
    with pytest.raises(AuthError, match="group or others"):
        read_token(path)


def _call(app, environ):
    seen = []
    body = b"".join(app(environ, lambda status, headers: seen.append(status)))
    return seen[0], body


@pytest.mark.parametrize(
    ("addr", "auth", "status"),
    [
        ("10.0.0.9", f"Bearer {TOKEN.hex()}", "200 OK"),
        ("10.0.0.9", "Bearer nope", "401 Unauthorized"),
        ("10.0.0.9", "", "401 Unauthorized"),
        ("10.0.0.8", f"Bearer {TOKEN.hex()}", "403 Forbidden"),
    ],
)
def test_auth_guarded_wsgi_needs_allowed_address_and_token(addr, auth, status):
    def app(environ, start_response):
        start_response("200 OK", [])
        return [b"metrics"]

    guarded = guard_wsgi(app, ["10.0.0.9"], TOKEN)

    got, body = _call(guarded, {"REMOTE_ADDR": addr, "HTTP_AUTHORIZATION": auth})

    assert got == status
    assert (body == b"metrics") is (status == "200 OK")
