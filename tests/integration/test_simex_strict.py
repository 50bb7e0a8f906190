"""Strict simex over real sockets: what the venue's docs do not allow is refused with its codes.

Requests are signed with the bot's own ``ipc/bitunix/signing.py``; simex checks them with its
independent ``procs/simex/auth.py``. Hostile input (deep JSON, bad control bodies) gets an error
answer, and simex keeps serving.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from ipc.bitunix.signing import new_nonce, query_string, sign_rest, sign_ws_login
from tests.helpers.simex_proc import KEYS, SimexProc, http, run_simex, write_config

pytestmark = pytest.mark.integration

NAME, SECRET, _ = KEYS[0]
PLACE = "/api/v1/futures/trade/place_order"
# these tests are not about rate limits: many requests in a second must pass
LIMITS = "[simex.limits]\nrest_public_per_s = 1000.0\nrest_private_per_s = 1000.0\n"


@pytest.fixture(scope="module")
def sx(tmp_path_factory) -> Iterator[SimexProc]:
    cfg = write_config(tmp_path_factory.mktemp("strict"), "strict = true\n" + LIMITS)
    with run_simex(cfg) as proc:
        yield proc


@pytest.fixture(scope="module")
def lenient(tmp_path_factory) -> Iterator[SimexProc]:
    cfg = write_config(tmp_path_factory.mktemp("lenient"), LIMITS)
    with run_simex(cfg) as proc:
        yield proc


def signed(
    sx: SimexProc,
    method: str,
    path: str,
    params: dict[str, Any] | None = None,
    *,
    body_text: str | None = None,
    nonce: str | None = None,
    ts: str | None = None,
    mangle: Any = None,
) -> tuple[int, Any]:
    """Call ``path`` signed like the bot; ``mangle(sign) -> sign`` spoils the signature."""
    url = sx.rest_url + path
    if method == "GET" and params:
        url += "?" + urllib.parse.urlencode(params)
    if body_text is None:
        body_text = json.dumps(params or {}, separators=(",", ":")) if method == "POST" else ""
    nonce = nonce or new_nonce()
    ts = ts or str(int(time.time() * 1000))
    sign = sign_rest(
        nonce=nonce, timestamp=ts, api_key=NAME, secret=SECRET, body=body_text,
        query=query_string(params) if method == "GET" else "",
    )  # fmt: skip
    headers = {
        "api-key": NAME,
        "nonce": nonce,
        "timestamp": ts,
        "sign": mangle(sign) if mangle else sign,
    }
    headers["Content-Type"] = "application/json"
    return http(method, url, body_text.encode() if method == "POST" else None, headers)


def order(**over: Any) -> dict[str, Any]:
    base = {"symbol": "BTCUSDT", "side": "BUY", "orderType": "LIMIT", "qty": "0.001"}
    return base | {"price": "1000", "effect": "GTC", "clientId": f"st{time.time_ns()}"} | over


def test_strict_mode_shows_in_status(sx, lenient):
    assert http("GET", sx.control_url + "/_simex/status")[1]["strict"] is True
    assert http("GET", lenient.control_url + "/_simex/status")[1]["strict"] is False


def test_strict_signed_request_from_the_bot_signer_is_accepted(sx):
    status, out = signed(sx, "GET", "/api/v1/futures/account", {"marginCoin": "USDT"})

    assert (status, out["code"]) == (200, 0), out


def test_strict_uppercase_signature_refused_lenient_accepts(sx, lenient):
    upper = str.upper

    _, strict_out = signed(
        sx, "GET", "/api/v1/futures/account", {"marginCoin": "USDT"}, mangle=upper
    )
    _, lenient_out = signed(
        lenient, "GET", "/api/v1/futures/account", {"marginCoin": "USDT"}, mangle=upper
    )

    assert strict_out["code"] == 10007
    assert lenient_out["code"] == 0


def test_strict_replayed_nonce_refused(sx):
    nonce = new_nonce()
    ts = str(int(time.time() * 1000))

    first = signed(sx, "GET", "/api/v1/futures/account", {"marginCoin": "USDT"}, nonce=nonce, ts=ts)
    again = signed(sx, "GET", "/api/v1/futures/account", {"marginCoin": "USDT"}, nonce=nonce, ts=ts)

    assert first[1]["code"] == 0
    assert again[1]["code"] == 10007
    assert "nonce" in again[1]["msg"]


def test_strict_constant_nonce_with_fresh_timestamps_accepted(sx):
    # the official Java SDK sends nonce "defaultnonce" on every request: not a replay
    now_ms = int(time.time() * 1000)
    params = {"marginCoin": "USDT"}

    outs = [
        signed(sx, "GET", "/api/v1/futures/account", params, nonce="defaultnonce", ts=str(t))[1]
        for t in (now_ms, now_ms + 1, now_ms + 2)
    ]

    assert [o["code"] for o in outs] == [0, 0, 0]


@pytest.mark.parametrize("ts", ["+1700000000000", " 1700000000000", "1_700_000_000_000"])
def test_strict_timestamp_not_plain_millisecond_digits_refused(sx, ts):
    now_ms = int(time.time() * 1000)
    spelled = ts.replace("1700000000000", str(now_ms)).replace("1_700_000_000_000", f"{now_ms:_}")

    _, out = signed(sx, "GET", "/api/v1/futures/account", {"marginCoin": "USDT"}, ts=spelled)

    assert out["code"] == 10007


@pytest.mark.parametrize(
    "bad",
    [{"qty": 0.001}, {"price": 1000}, {"qty": 1, "price": 1000.5}],
    ids=["qty", "price", "both"],
)
def test_strict_numeric_qty_or_price_refused(sx, bad):
    _, out = signed(sx, "POST", PLACE, order(**bad))

    assert out["code"] == 10002
    assert "must be a string" in out["msg"]


def test_strict_numeric_qty_in_batch_refused_and_string_accepted(sx):
    items = [{k: v for k, v in order(qty=q).items() if k != "symbol"} for q in ("0.001", 0.001)]

    _, bad = signed(
        sx, "POST", "/api/v1/futures/trade/batch_order", {"symbol": "BTCUSDT", "orderList": items}
    )
    _, good = signed(
        sx,
        "POST",
        "/api/v1/futures/trade/batch_order",
        {"symbol": "BTCUSDT", "orderList": items[:1]},
    )

    assert bad["code"] == 10002
    assert good["code"] == 0, good


def test_strict_accepts_the_official_demo_body_with_spaces(sx):
    body = json.dumps(order())  # the Python demo signs and sends json.dumps(data): spaces kept

    status, out = signed(sx, "POST", PLACE, body_text=body)

    assert (status, out["code"]) == (200, 0), out


@pytest.mark.parametrize(
    "body", ["[" * 100_000 + "]" * 100_000, "[]", "{bad", '{"qty": {"a": [1, {}]}}'],
    ids=["deep", "array", "not-json", "object-qty"],
)  # fmt: skip
def test_rest_bad_body_is_a_parameter_error_not_a_crash(sx, body):
    status, out = signed(sx, "POST", PLACE, body_text=body)

    assert (status, out["code"]) == (200, 10002), out
    assert "Traceback" not in sx.log_path.read_text()


@pytest.mark.parametrize("limit", ["1", "5", "15", "50", "100", "max"])
def test_depth_accepts_the_documented_limits_and_the_demos_100(sx, limit):
    status, out = http(
        "GET", f"{sx.rest_url}/api/v1/futures/market/depth?symbol=BTCUSDT&limit={limit}"
    )

    assert (status, out["code"]) == (200, 0), out
    if limit != "max":
        assert 0 < len(out["data"]["bids"]) <= int(limit)


@pytest.mark.parametrize("limit", ["0", "-5", "abc", "1e3", "100000"])
def test_depth_bad_limit_is_a_parameter_error(sx, limit):
    _, out = http("GET", f"{sx.rest_url}/api/v1/futures/market/depth?symbol=BTCUSDT&limit={limit}")

    assert out["code"] == 10002


# ---- WS --------------------------------------------------------------------------------------


def recv_json(ws: ClientConnection, timeout: float = 3.0) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=timeout))


@contextmanager
def open_ws(url: str) -> Iterator[ClientConnection]:
    with connect(url, ping_interval=None, open_timeout=5, close_timeout=1, max_size=None) as ws:
        assert recv_json(ws)["op"] == "connect"
        yield ws


def login_arg(**over: Any) -> dict[str, Any]:
    ts, nonce = over.pop("ts", int(time.time())), over.pop("nonce", new_nonce())
    sign = sign_ws_login(nonce=nonce, timestamp_s=ts, api_key=NAME, secret=SECRET)
    return {"apiKey": NAME, "timestamp": ts, "nonce": nonce, "sign": sign} | over


def login(url: str, arg: dict[str, Any]) -> dict[str, Any]:
    with open_ws(url) as ws:
        ws.send(json.dumps({"op": "login", "args": [arg]}))
        return recv_json(ws)


def test_strict_ws_login_as_documented_succeeds(sx):
    reply = login(sx.ws_private_url, login_arg())

    assert reply["data"]["result"] is True


def test_strict_ws_login_in_milliseconds_succeeds(sx):
    # ❓ the Java demo sends milliseconds; the sheet says the venue may take both
    reply = login(sx.ws_private_url, login_arg(ts=int(time.time() * 1000)))

    assert reply["data"]["result"] is True


def _string_ts() -> dict[str, Any]:
    ts, nonce = int(time.time()), new_nonce()
    sign = sign_ws_login(nonce=nonce, timestamp_s=ts, api_key=NAME, secret=SECRET)
    return {"apiKey": NAME, "timestamp": str(ts), "nonce": nonce, "sign": sign}


def _no_nonce() -> dict[str, Any]:
    ts = int(time.time())
    sign = sign_ws_login(nonce="", timestamp_s=ts, api_key=NAME, secret=SECRET)
    return {"apiKey": NAME, "timestamp": ts, "sign": sign}


def _upper() -> dict[str, Any]:
    arg = login_arg()
    return arg | {"sign": arg["sign"].upper()}


@pytest.mark.parametrize(
    ("make", "code"), [(_string_ts, 10002), (_no_nonce, 10002), (_upper, 10007)],
    ids=["string-timestamp", "no-nonce", "uppercase-sign"],
)  # fmt: skip
def test_strict_ws_login_outside_the_docs_refused_lenient_accepts(sx, lenient, make, code):
    strict_reply = login(sx.ws_private_url, make())
    lenient_reply = login(lenient.ws_private_url, make())

    assert strict_reply["data"]["result"] is False
    assert strict_reply["code"] == code
    assert lenient_reply["data"]["result"] is True


def test_strict_ws_login_replayed_nonce_refused(sx):
    arg = login_arg()

    first = login(sx.ws_private_url, arg)
    again = login(sx.ws_private_url, arg)

    assert first["data"]["result"] is True
    assert again["data"]["result"] is False
    assert "nonce" in again["msg"]


@pytest.mark.parametrize("depth", [10_000, 200_000])
def test_ws_deeply_nested_json_answers_an_error_and_keeps_serving(sx, depth):
    with open_ws(sx.ws_public_url) as ws:
        ws.send("[" * depth + "]" * depth)
        error = recv_json(ws)
        ws.send(json.dumps({"op": "ping", "ping": 7}))
        pong = recv_json(ws)

    assert (error["op"], error["code"]) == ("error", 10002)
    assert pong["pong"] == 7
    assert "Traceback" not in sx.log_path.read_text()


@pytest.mark.parametrize("frame", ["[1, 2]", '"text"', "not json", "{"])
def test_ws_frame_not_a_json_object_answers_an_error(sx, frame):
    with open_ws(sx.ws_public_url) as ws:
        ws.send(frame)
        error = recv_json(ws)

    assert (error["op"], error["code"]) == ("error", 10002)


# ---- control port ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/_simex/faults", b"[]"),
        ("/_simex/faults", b'{"ws_stall_s":1e308}'),
        ("/_simex/faults", b'{"ws_stall_s":-1}'),
        ("/_simex/faults", b'{"ws_stall_s":"5"}'),
        ("/_simex/faults", b'{"ws_stall_s":true}'),
        ("/_simex/faults", b'{"rest_error_rate":2}'),
        ("/_simex/faults", b"{not json"),
        ("/_simex/faults", b"[" * 100_000 + b"]" * 100_000),
        ("/_simex/ws/drop", b"[]"),
        ("/_simex/ws/drop", b"{bad"),
        ("/_simex/ws/drop", b'{"scope":["all"]}'),
        ("/_simex/funding/settle", b"[]"),
        ("/_simex/funding/settle", b'{"rates":[]}'),
        ("/_simex/funding/settle", b'{"rates":{"BTCUSDT":"NaN"}}'),
        ("/_simex/funding/settle", b'{"rates":{"BTCUSDT":1e308}}'),
        ("/_simex/funding/settle", b'{"rates":{"BTCUSDT":true}}'),
        ("/_simex/funding/settle", b'{"rates":{"BTCUSDT":"-1.5"}}'),
    ],
)
def test_control_bad_body_answers_400_with_a_message(sx, path, body):
    status, out = http("POST", sx.control_url + path, body, {"Content-Type": "application/json"})

    assert status == 400, out
    assert out["error"]
    assert http("GET", sx.control_url + "/_simex/status")[0] == 200
    assert "Traceback" not in sx.log_path.read_text()
