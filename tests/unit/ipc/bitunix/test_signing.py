"""Signing against the reference's worked examples (§2.3) and the WS login formula (§4.3)."""

from __future__ import annotations

import hashlib

from ipc.bitunix.signing import compact_json, query_string, sign_rest, sign_ws_login


def _h(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


def test_sign_rest_go_demo_vector_matches_official_value():
    sign = sign_rest(
        nonce="33333333333333333",
        timestamp="1747104711262",
        api_key="11111111111111111",
        query="marginCoinUSDT",
        body="",
        secret="22222222222222222",
    )

    assert sign == "40e87256554e263e39201a3979469b7fbb640d1c7c41759abf5c6a18f937f922"


def test_sign_rest_doc_page_vector_matches_reference_value():
    body = compact_json(
        {"uid": "2899", "arr": [{"id": 1, "name": "maple"}, {"id": 2, "name": "lily"}]}
    )

    sign = sign_rest(
        nonce="123456",
        timestamp="20241120123045",
        api_key="yourApiKey",
        query=query_string({"uid": 200, "id": 1}),
        body=body,
        secret="yourSecretKey",
    )

    assert body == '{"uid":"2899","arr":[{"id":1,"name":"maple"},{"id":2,"name":"lily"}]}'
    assert sign == "00397cd1e52c7dce3258067324363b6361fabc9178a0912b330c138db8745655"


def test_sign_ws_login_is_double_sha_over_nonce_seconds_key():
    nonce, ts, key, secret = "o9jnhu8ijko2nbhy36fgt0mnjuyhgtsh", 1747402389, "k", "s"

    sign = sign_ws_login(nonce=nonce, timestamp_s=ts, api_key=key, secret=secret)

    assert sign == _h(_h(nonce + "1747402389" + key) + secret)
    assert sign != sign_ws_login(nonce=nonce, timestamp_s=ts * 1000, api_key=key, secret=secret)


def test_query_string_sorts_and_skips_empty_values():
    assert query_string({"uid": 200, "id": 1, "x": "", "y": None}) == "id1uid200"
