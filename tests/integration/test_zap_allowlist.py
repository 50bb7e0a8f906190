"""An IP allowlist on a tcp REP socket (ZAP through zmq.auth): others are never answered."""

from __future__ import annotations

import threading

import pytest

from ipc.sockets import bind_rep, request, stop_authenticator
from tests.conftest import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _authenticator():
    yield
    stop_authenticator()


def serve_once(endpoint: str, allow_ips: list[str]) -> tuple[threading.Thread, list[bytes]]:
    got: list[bytes] = []
    ready = threading.Event()

    def run() -> None:
        rep = bind_rep(endpoint, allow_ips=allow_ips)
        ready.set()
        try:
            body = rep.recv(3.0)
            if body is not None:
                got.append(body)
                rep.send(b"pong")
        finally:
            rep.close()

    t = threading.Thread(target=run)
    t.start()
    assert ready.wait(5)
    return t, got


@pytest.mark.parametrize(("allowed", "answered"), [("127.0.0.1", True), ("127.0.0.2", False)])
def test_zap_allowlist_answers_only_listed_peers(allowed, answered):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    t, got = serve_once(endpoint, [allowed])

    reply = request(endpoint, b"ping", 1.0)
    t.join(5)

    assert (reply == b"pong") is answered
    assert (got == [b"ping"]) is answered
