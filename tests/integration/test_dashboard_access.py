"""The dashboard process's access control over real HTTP on loopback (no browser, no group).

Each test starts ``python -m procs.dashboard`` as supervisord would (tests/helpers/
dashboard_run.py) and talks to it with http.client, from 127.0.0.1 or, for the allowlist,
from 127.0.0.2 (Linux routes all of 127/8 to lo).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request

import pytest

from procs.dashboard.control import verify_audit
from procs.group.supervise import ROOT
from procs.trading.killswitch import FileStore
from tests.conftest import free_port
from tests.helpers.dashboard_run import DashRun, log_text, running_dashboard, write_config
from tests.helpers.poll import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _cookie(set_cookie: str) -> str:
    return set_cookie.split(";", 1)[0]


def _csrf(d: DashRun, cookie: str) -> str:
    status, _, body = d.request("GET", "/", headers={"Cookie": cookie})
    assert status == 200, body[:300]
    m = re.search(rb'name="csrf-token" content="([^"]+)"', body)
    assert m, body[:500]
    return m.group(1).decode()


def _run(run_dir, overrides, env_password: str | None):
    config = write_config(run_dir, 1, overrides)
    env = {"PATH": "/usr/bin:/bin", "BITRADER_RUN_DIR": str(run_dir)}
    if env_password is not None:
        env["BITRADER_DASHBOARD_PASSWORD"] = env_password
    return subprocess.run(
        [sys.executable, "-m", "procs.dashboard", str(config)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_dashboard_without_password_refuses_to_start_with_78(run_dir):
    res = _run(run_dir, {}, env_password=None)

    assert res.returncode == 78, res.stdout + res.stderr
    assert "BITRADER_DASHBOARD_PASSWORD" in res.stdout + res.stderr


@pytest.mark.parametrize(
    "dash",
    [
        {"host": "0.0.0.0", "allow_dev_password": True, "allowlist": ["10.0.0.0/8"]},
        {"host": "0.0.0.0"},  # beyond loopback without an allowlist
        {"allowlist": ["not-an-address"]},
    ],
)
def test_dashboard_unsafe_config_exits_78_before_binding(run_dir, dash):
    res = _run(run_dir, {"dashboard": dash}, env_password="x")

    assert res.returncode == 78, res.stdout + res.stderr


def test_dev_config_on_loopback_generates_a_password_logged_once(run_dir):
    with running_dashboard(
        run_dir, password=None, overrides={"dashboard": {"allow_dev_password": True}}
    ) as d:
        found = eventually(
            lambda: re.findall(
                r"dev password \(loopback only, this run\): (\S+)", log_text(run_dir)
            ),
            timeout_s=5,
        )
        status, cookie = d.login(found[0])

    assert len(found) == 1
    assert status == 303, log_text(run_dir)
    assert cookie


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/api/state"),
        ("GET", "/events"),
        ("GET", "/static/app.js"),
        ("POST", "/api/kill-switch"),
        ("POST", "/logout"),
    ],
)
def test_unauthenticated_request_gets_401_and_no_data(run_dir, method, path):
    with running_dashboard(run_dir) as d:
        body = json.dumps({"on": True}).encode() if method == "POST" else None
        status, _, payload = d.request(method, path, body=body)
        forged, _, _ = d.request(method, path, body=body, headers={"Cookie": "bitrader_dash=x"})

    assert (status, forged) == (401, 401)
    if path == "/":
        assert b'id="login"' in payload  # the login form, nothing else
        assert b"csrf-token" not in payload
    else:
        assert json.loads(payload) == {"error": "login required"}
    assert not (run_dir / "killswitch.json").exists()


def test_login_wrong_then_right_sets_strict_httponly_cookie_and_is_audited(run_dir):
    with running_dashboard(run_dir) as d:
        bad_status, bad_cookie = d.login("wrong")
        status, cookie = d.login()
        api, _, state = d.request("GET", "/api/state", headers={"Cookie": _cookie(cookie)})
        audit = d.audit()

    assert (bad_status, bad_cookie) == (401, "")
    assert status == 303
    attrs = {a.strip().lower() for a in cookie.split(";")}
    assert "httponly" in attrs
    assert "samesite=strict" in attrs
    assert api == 200
    assert {"positions", "pnl", "breaker_history", "health"} <= json.loads(state).keys()
    assert [r["kind"] for r in audit] == ["login_failed", "login_ok"]
    assert all(r["address"] == "127.0.0.1" for r in audit)
    assert verify_audit(d.audit_path) == (True, len(d.audit(marks=True)))


def test_kill_switch_post_needs_the_csrf_token_and_same_origin(run_dir):
    with running_dashboard(run_dir) as d:
        _, set_cookie = d.login()
        cookie = _cookie(set_cookie)
        token = _csrf(d, cookie)
        on = json.dumps({"on": True, "reason": "test"}).encode()
        headers = {"Cookie": cookie, "Content-Type": "application/json"}
        no_token, _, _ = d.request("POST", "/api/kill-switch", body=on, headers=headers)
        bad_token, _, _ = d.request(
            "POST", "/api/kill-switch", body=on, headers={**headers, "X-CSRF-Token": "x" + token}
        )
        cross, _, _ = d.request(
            "POST",
            "/api/kill-switch",
            body=on,
            headers={**headers, "X-CSRF-Token": token, "Origin": "http://evil.example"},
        )
        untouched = not d.killswitch_path.exists()
        ok, _, body = d.request(
            "POST", "/api/kill-switch", body=on, headers={**headers, "X-CSRF-Token": token}
        )
        state = FileStore(d.killswitch_path).read()
        audit = d.audit()
        cli = subprocess.run(
            [sys.executable, "-m", "procs.cli", "kill-switch", "status", "--run-dir", str(run_dir)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env={"PATH": "/usr/bin:/bin", "BITRADER_KILLSWITCH_FILE": str(d.killswitch_path)},
        )

    assert (no_token, bad_token, cross) == (403, 403, 403)
    assert untouched
    assert ok == 200, body
    reply = json.loads(body)
    assert reply["written"]
    assert not reply["acknowledged"]  # no execution here: the group test covers the ack
    assert state.on
    assert state.reason == "test"
    assert state.source == "dashboard:operator@127.0.0.1"
    assert f"file {d.killswitch_path}: on since" in cli.stdout, cli.stdout + cli.stderr
    kinds = [r["kind"] for r in audit]
    assert kinds.count("killswitch_refused") == 3
    assert kinds[-1] == "killswitch"
    assert (audit[-1]["on"], audit[-1]["acknowledged"]) == (True, False)


def test_login_attempts_past_the_limit_get_429_even_with_the_right_password(run_dir):
    with running_dashboard(
        run_dir, overrides={"dashboard": {"login_max_failures": 3, "login_window_s": 300.0}}
    ) as d:
        failures = [d.login("guess")[0] for _ in range(3)]
        limited, cookie = d.login()
        again, _ = d.login("guess")
        kinds = [r["kind"] for r in d.audit()]

    assert failures == [401, 401, 401]
    assert (limited, cookie, again) == (429, "", 429)
    assert kinds == ["login_failed"] * 3 + ["login_rate_limited"]  # once per lock-out


def test_cross_origin_login_form_is_refused(run_dir):
    body = b"password=correct+horse+battery+staple"
    with running_dashboard(run_dir) as d:
        status, headers, _ = d.request(
            "POST", "/login", body=body, headers={**FORM, "Origin": "http://evil.example"}
        )
        kinds = [r["kind"] for r in d.audit()]

    assert status == 403
    assert "set-cookie" not in headers
    assert kinds == ["login_refused"]


def test_address_outside_the_allowlist_gets_403_everywhere(run_dir):
    with running_dashboard(run_dir, overrides={"dashboard": {"allowlist": ["127.0.0.2/32"]}}) as d:
        refused = [d.request("GET", p)[0] for p in ("/", "/login", "/api/state")]
        login_refused, _ = d.login()
        allowed_form = d.request("GET", "/login", source="127.0.0.2")[0]
        allowed_login, cookie = d.login(source="127.0.0.2")

    assert refused == [403, 403, 403]
    assert login_refused == 403
    assert allowed_form == 200
    assert allowed_login == 303
    assert cookie


def test_logins_show_in_the_dashboards_metrics(run_dir):
    port = free_port()
    with running_dashboard(
        run_dir, overrides={"dashboard": {"runtime": {"metrics_port": port}}}
    ) as d:
        d.login("wrong")
        d.login()

        # no execution here: both records wait for its audit chain, the first one marked
        undelivered = 'bitrader_dashboard_audit_undelivered_total{proc="dashboard"} 1.0'

        def metrics() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                text = str(r.read().decode())
            return text if undelivered in text else ""

        text = eventually(metrics, timeout_s=10)

    assert 'bitrader_dashboard_audit_pending{proc="dashboard"} 2.0' in text
    assert 'bitrader_dashboard_logins_total{outcome="failed",proc="dashboard"} 1.0' in text
    assert 'bitrader_dashboard_logins_total{outcome="ok",proc="dashboard"} 1.0' in text
    assert 'bitrader_dashboard_sessions{proc="dashboard"} 1.0' in text
