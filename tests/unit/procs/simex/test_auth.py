"""simex's own signature check against the reference's vectors, and against the bot's signer."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from ipc.bitunix import signing
from procs.simex.auth import (
    NonceWindow,
    params_text,
    rest_sign,
    rest_sign_ok,
    sign_format_ok,
    ws_login_sign,
)


def test_rest_sign_matches_the_official_go_demo_vector():
    # reference §2.3 example 1 (Demo/Golang/open_api_http_sign_test.go)
    sign = rest_sign(
        "22222222222222222", nonce="33333333333333333", timestamp="1747104711262",
        api_key="11111111111111111", params="marginCoinUSDT", body="",
    )  # fmt: skip

    assert sign == "40e87256554e263e39201a3979469b7fbb640d1c7c41759abf5c6a18f937f922"


def test_rest_sign_matches_the_doc_sign_page_vector():
    # reference §2.3 example 2: params {uid: 200, id: 1} sorted by key, no separators
    body = '{"uid":"2899","arr":[{"id":1,"name":"maple"},{"id":2,"name":"lily"}]}'

    params = params_text([("uid", "200"), ("id", "1")])
    sign = rest_sign(
        "yourSecretKey", nonce="123456", timestamp="20241120123045", api_key="yourApiKey",
        params=params, body=body,
    )  # fmt: skip

    assert params == "id1uid200"
    assert sign == "00397cd1e52c7dce3258067324363b6361fabc9178a0912b330c138db8745655"


def test_rest_sign_digest_is_the_documented_intermediate():
    digest = hashlib.sha256(b"33333333333333333174710471126211111111111111111marginCoinUSDT")

    assert digest.hexdigest() == "ea0f6d6bc37d102c41ccbd820f4cfbb10663f3675a75aea80a353e0e317fcdcc"


def test_params_text_sorts_by_ascii_key_and_skips_empty_values():
    pairs = [("symbol", "BTCUSDT"), ("Limit", "5"), ("clientId", ""), ("a", "1")]

    assert params_text(pairs) == "Limit5a1symbolBTCUSDT"
    assert params_text(pairs, skip_empty=False) == "Limit5a1clientIdsymbolBTCUSDT"


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
_word = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=12)


@given(nonce=_word, ts=st.integers(0, 10**13), key=_word, secret=_text, body=_text)
def test_rest_check_accepts_what_the_bot_signs(nonce, ts, key, secret, body):
    sign = signing.sign_rest(
        nonce=nonce, timestamp=str(ts), api_key=key, query="", body=body, secret=secret
    )

    assert rest_sign_ok(
        sign, secret, nonce=nonce, timestamp=str(ts), api_key=key, query=(), body=body, strict=True
    )


@given(params=st.dictionaries(_word, _word, max_size=5), nonce=_word, secret=_text)
def test_rest_check_accepts_the_bots_signed_query(params, nonce, secret):
    sign = signing.sign_rest(
        nonce=nonce, timestamp="1", api_key="k", query=signing.query_string(params), body="",
        secret=secret,
    )  # fmt: skip

    assert rest_sign_ok(
        sign, secret, nonce=nonce, timestamp="1", api_key="k", query=params.items(), body="",
        strict=True,
    )  # fmt: skip


@given(nonce=_word, ts=st.integers(0, 10**13), key=_word, secret=_text)
def test_ws_login_sign_agrees_with_the_bots_signer(nonce, ts, key, secret):
    want = signing.sign_ws_login(nonce=nonce, timestamp_s=ts, api_key=key, secret=secret)

    assert ws_login_sign(secret, nonce=nonce, timestamp=ts, api_key=key) == want


def test_rest_check_strict_refuses_uppercase_lenient_takes_it():
    sign = rest_sign("s", nonce="n", timestamp="1", api_key="k", params="", body="{}")
    kw = {"nonce": "n", "timestamp": "1", "api_key": "k", "query": (), "body": "{}"}

    assert not rest_sign_ok(sign.upper(), "s", strict=True, **kw)
    assert rest_sign_ok(sign.upper(), "s", strict=False, **kw)
    assert not rest_sign_ok(sign, "other secret", strict=False, **kw)


def test_rest_check_accepts_a_signature_over_the_space_stripped_body():
    sent = '{"symbol": "BTCUSDT", "qty": "0.1"}'
    sign = rest_sign(
        "s", nonce="n", timestamp="1", api_key="k", params="", body=sent.replace(" ", "")
    )

    assert rest_sign_ok(
        sign, "s", nonce="n", timestamp="1", api_key="k", query=(), body=sent, strict=True
    )


def test_sign_format_is_64_lowercase_hex():
    good = "a" * 64

    assert sign_format_ok(good)
    assert not sign_format_ok(good.upper())
    assert not sign_format_ok(good[:-1])
    assert not sign_format_ok(good + "\n")


def test_nonce_window_refuses_a_repeat_inside_the_window_only():
    w = NonceWindow(window_s=10.0)

    first = w.replayed("k", "n1", "5", now_s=100.0)
    again = w.replayed("k", "n1", "5", now_s=109.0)
    other_key = w.replayed("k2", "n1", "5", now_s=109.0)
    later = w.replayed("k", "n1", "5", now_s=120.0)

    assert (first, again, other_key, later) == (False, True, False, False)


def test_nonce_window_takes_a_constant_nonce_with_fresh_timestamps():
    # the official Java SDK signs every request with nonce "defaultnonce"
    w = NonceWindow(window_s=10.0)

    seen = [w.replayed("k", "defaultnonce", str(ts), now_s=100.0) for ts in (1, 2, 3)]

    assert seen == [False, False, False]
    assert w.replayed("k", "defaultnonce", "2", now_s=101.0)


def test_nonce_window_forgets_expired_nonces():
    w = NonceWindow(window_s=1.0)
    for i in range(1000):
        w.replayed("k", f"n{i}", "1", now_s=float(i))

    assert len(w) == 1


def test_simex_never_imports_the_bots_signer():
    import ast
    from pathlib import Path

    import procs.simex

    imported = set()
    for path in Path(procs.simex.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(a.name for a in node.names)

    assert not {m for m in imported if m.startswith("ipc.bitunix")}, imported
