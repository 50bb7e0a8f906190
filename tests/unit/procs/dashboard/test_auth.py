"""Access-control logic of the dashboard, with the clock passed in."""

from __future__ import annotations

import pytest

from procs.dashboard.auth import (
    Allowlist,
    LoginLimiter,
    Password,
    Sessions,
    csrf_ok,
    generate_password,
)


def test_password_checks_only_the_exact_secret():
    pw = Password("s3cret")

    assert pw.check("s3cret")
    assert not pw.check("s3cret ")
    assert not pw.check("")


def test_password_refuses_an_empty_secret():
    with pytest.raises(ValueError, match="must not be empty"):
        Password("")


def test_generated_passwords_are_long_and_differ():
    a, b = generate_password(), generate_password()

    assert a != b
    assert len(a) >= 20


def test_session_lives_until_its_ttl_then_is_gone():
    sessions = Sessions(ttl_s=10)
    s = sessions.create("op", now_s=100.0)

    alive, expired = sessions.get(s.token, 109.9), sessions.get(s.token, 110.0)

    assert alive == s
    assert expired is None
    assert len(sessions) == 0


def test_session_unknown_or_missing_token_is_none():
    sessions = Sessions(ttl_s=10)
    s = sessions.create("op", now_s=0.0)

    assert sessions.get(None, 1.0) is None
    assert sessions.get("", 1.0) is None
    assert sessions.get(s.token + "x", 1.0) is None


def test_session_drop_logs_out():
    sessions = Sessions(ttl_s=10)
    s = sessions.create("op", now_s=0.0)

    sessions.drop(s.token)

    assert sessions.get(s.token, 1.0) is None


def test_csrf_token_must_match_the_sessions_own():
    sessions = Sessions(ttl_s=10)
    a, b = sessions.create("a", 0.0), sessions.create("b", 0.0)

    assert csrf_ok(a, a.csrf)
    assert not csrf_ok(a, b.csrf)
    assert not csrf_ok(a, None)
    assert not csrf_ok(a, "")
    assert a.csrf != a.token


def test_limiter_refuses_after_max_failures_until_the_window_passes():
    lim = LoginLimiter(max_failures=3, window_s=60)
    for t in (0.0, 1.0, 2.0):
        lim.failed("1.2.3.4", t)

    refused, other = lim.allowed("1.2.3.4", 3.0), lim.allowed("5.6.7.8", 3.0)
    wait_s = lim.retry_after_s("1.2.3.4", 3.0)
    later = lim.allowed("1.2.3.4", 60.5)

    assert not refused
    assert other
    assert wait_s == pytest.approx(57.0)
    assert later


def test_limiter_success_clears_the_failures():
    lim = LoginLimiter(max_failures=2, window_s=60)
    lim.failed("a", 0.0)

    lim.succeeded("a")
    lim.failed("a", 1.0)

    assert lim.allowed("a", 1.0)


@pytest.mark.parametrize(
    ("cidrs", "addr", "allowed"),
    [
        ([], "127.0.0.1", True),
        ([], "::1", True),
        ([], "10.1.2.3", False),
        (["10.0.0.0/8"], "10.1.2.3", True),
        (["10.0.0.0/8"], "127.0.0.1", False),
        (["10.0.0.0/8"], "::ffff:10.0.0.7", True),
        (["127.0.0.2/32"], "127.0.0.1", False),
        (["192.168.1.5"], "192.168.1.5", True),
        ([], None, False),
        ([], "not-an-ip", False),
    ],
)
def test_allowlist(cidrs, addr, allowed):
    assert Allowlist(cidrs).allows(addr) is allowed
