"""wait_accepting: bounded wait for a venue to listen, health serviced meanwhile, clear logs."""

from __future__ import annotations

import asyncio
import logging

import pytest

from procs.venue_wait import host_port, wait_accepting
from tests.conftest import free_port


def test_host_port_from_urls():
    assert host_port("ws://127.0.0.1:18081/public/") == ("127.0.0.1", 18081)
    assert host_port("https://fapi.bitunix.com") == ("fapi.bitunix.com", 443)
    assert host_port("wss://fapi.bitunix.com/private/") == ("fapi.bitunix.com", 443)
    with pytest.raises(ValueError, match="no host"):
        host_port("not a url")


async def _serve(port: int) -> asyncio.Server:
    return await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)


def test_listening_venue_returns_at_once_without_a_log_line(caplog):
    port = free_port()

    async def go() -> bool:
        server = await _serve(port)
        try:
            return await wait_accepting([f"http://127.0.0.1:{port}"], 5.0)
        finally:
            server.close()

    with caplog.at_level(logging.INFO, logger="procs.venue_wait"):
        assert asyncio.run(go()) is True
    assert caplog.text == ""


def test_venue_that_starts_late_is_waited_for_while_health_is_served(caplog):
    rest, ws = free_port(), free_port()
    servers: list[asyncio.Server] = []
    services = 0

    async def go() -> bool:
        loop = asyncio.get_running_loop()

        def service() -> None:  # the process answers health while it waits
            nonlocal services
            services += 1
            if services == 3:  # simex comes up after a few tries
                for port in (rest, ws):
                    loop.create_task(_serve(port)).add_done_callback(
                        lambda t: servers.append(t.result())
                    )

        try:
            urls = [f"http://127.0.0.1:{rest}", f"ws://127.0.0.1:{ws}/public/"]
            return await wait_accepting(urls, 30.0, service=service, what="simex")
        finally:
            for s in servers:
                s.close()

    with caplog.at_level(logging.INFO, logger="procs.venue_wait"):
        assert asyncio.run(go()) is True
    assert services >= 3
    assert f"waiting up to 30s for the simex at 127.0.0.1:{min(rest, ws)}" in caplog.text
    assert "the simex accepts connections after" in caplog.text
    assert "WARNING" not in caplog.text


def test_venue_that_never_listens_gives_up_after_the_bound(caplog):
    port = free_port()

    with caplog.at_level(logging.INFO, logger="procs.venue_wait"):
        ok = asyncio.run(wait_accepting([f"http://127.0.0.1:{port}"], 0.3))

    assert ok is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "does not accept connections after 0.3s" in warnings[0].getMessage()


def test_stop_ends_the_wait():
    port = free_port()

    ok = asyncio.run(wait_accepting([f"http://127.0.0.1:{port}"], 30.0, stop=lambda: True))

    assert ok is False
