"""Sockets: house options, non-blocking sends, topic matching, timeouts, control, wake-ups."""

from __future__ import annotations

import socket
import threading
import time
from typing import Protocol

import pytest
import zmq

from ipc import sockets
from ipc.messages import IpcError
from ipc.sockets import (
    Publisher,
    Subscriber,
    WakeListener,
    WakeSender,
    bind_pub,
    bind_rep,
    connect_sub,
    pin_io_threads,
    request,
)
from tests.conftest import free_port
from tests.helpers.poll import eventually


@pytest.fixture
def closing():
    opened: list[Closable] = []
    yield opened.append
    for thing in reversed(opened):
        thing.close()


class Closable(Protocol):
    def close(self) -> None: ...


def _await_subscription(pub: Publisher, sub: Subscriber, topic: bytes = b"probe.") -> None:
    # PUB drops until the subscription has propagated: probe until one gets through
    def probe() -> tuple[bytes, bytes] | None:
        pub.send(topic, b"")
        return sub.recv(0.005)

    eventually(probe, timeout_s=5)
    sub.drain()


def test_bind_pub_sets_linger_zero_and_given_hwm(run_dir, closing):
    pub = bind_pub(f"ipc://{run_dir}/a.pub", sndhwm=123)
    closing(pub)

    assert pub._sock.getsockopt(zmq.LINGER) == 0
    assert pub._sock.getsockopt(zmq.SNDHWM) == 123


def test_connect_sub_sets_linger_zero_and_given_hwm(run_dir, closing):
    sub = connect_sub(f"ipc://{run_dir}/a.pub", [b"x."], rcvhwm=77)
    closing(sub)

    assert sub._sock.getsockopt(zmq.LINGER) == 0
    assert sub._sock.getsockopt(zmq.RCVHWM) == 77


def test_bind_rep_sets_linger_zero(run_dir, closing):
    rep = bind_rep(f"ipc://{run_dir}/a.ctl")
    closing(rep)

    assert rep._sock.getsockopt(zmq.LINGER) == 0
    assert rep._sock.getsockopt(zmq.SNDHWM) == sockets.CONTROL_HWM


def test_bind_pub_creates_ipc_parent_directory(run_dir, closing):
    path = run_dir / "deep" / "er" / "a.pub"

    closing(bind_pub(f"ipc://{path}"))

    assert path.exists()


def test_bind_pub_bad_endpoint_raises_before_binding():
    with pytest.raises(IpcError, match="loopback"):
        bind_pub("tcp://10.1.2.3:5555")


def test_bind_pub_port_in_use_raises_ipc_error(closing):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    closing(bind_pub(endpoint))

    with pytest.raises(IpcError, match="cannot bind"):
        bind_pub(endpoint)


def test_publisher_send_without_subscribers_returns_true_and_drops(run_dir, closing):
    pub = bind_pub(f"ipc://{run_dir}/a.pub", sndhwm=1)
    closing(pub)

    results = [pub.send(b"t.", b"x") for _ in range(1000)]

    assert all(results)
    assert pub.again_total == 0


def test_publisher_nodrop_full_hwm_counts_again_without_raising(run_dir, closing):
    endpoint = f"ipc://{run_dir}/a.pub"
    pub = bind_pub(endpoint, sndhwm=1, nodrop=True)
    closing(pub)
    sub = connect_sub(endpoint, [b"probe.", b"big."], rcvhwm=1)
    closing(sub)
    _await_subscription(pub, sub)
    big = b"\0" * 65536

    refused = 0
    for _ in range(10_000):  # the kernel socket buffer absorbs a few hundred KiB first
        refused += not pub.send(b"big.", big)
        if refused >= 3:
            break

    assert refused == 3
    assert pub.again_total == 3


def test_subscriber_topic_with_trailing_dot_does_not_prefix_match(run_dir, closing):
    endpoint = f"ipc://{run_dir}/a.pub"
    pub = bind_pub(endpoint)
    closing(pub)
    sub = connect_sub(endpoint, [b"probe.", b"sig.7."])
    closing(sub)
    _await_subscription(pub, sub)

    pub.send(b"sig.70.", b"seventy")
    pub.send(b"sig.7.", b"seven")
    first = sub.recv(2.0)
    second = sub.recv(0.05)

    assert first == (b"sig.7.", b"seven")
    assert second is None


def test_subscriber_recv_times_out_with_none(run_dir, closing):
    sub = connect_sub(f"ipc://{run_dir}/nobody.pub", [b""])
    closing(sub)
    t0 = time.monotonic()

    got = sub.recv(0.05)

    assert got is None
    assert time.monotonic() - t0 >= 0.045


def test_subscriber_recv_zero_timeout_does_not_wait(run_dir, closing):
    sub = connect_sub(f"ipc://{run_dir}/nobody.pub", [b""])
    closing(sub)
    t0 = time.monotonic()

    got = sub.recv(0)

    assert got is None
    assert time.monotonic() - t0 < 0.04


def test_subscriber_many_endpoints_receives_from_each(run_dir, closing):
    a, b = f"ipc://{run_dir}/a.pub", f"ipc://{run_dir}/b.pub"
    pa, pb = bind_pub(a), bind_pub(b)
    closing(pa)
    closing(pb)
    sub = connect_sub([a, b], [b"probe.", b"x."])
    closing(sub)
    _await_subscription(pa, sub)
    _await_subscription(pb, sub)

    pa.send(b"x.", b"a")
    pb.send(b"x.", b"b")
    got = {sub.recv(2.0), sub.recv(2.0)}

    assert got == {(b"x.", b"a"), (b"x.", b"b")}


def test_request_without_server_returns_none_within_timeout(run_dir):
    t0 = time.monotonic()

    got = request(f"ipc://{run_dir}/nobody.ctl", b"ping", timeout_s=0.1)

    assert got is None
    assert time.monotonic() - t0 < 1.0


def test_request_reply_round_trip(run_dir):
    endpoint = f"ipc://{run_dir}/a.ctl"
    ready = threading.Event()
    served = []

    def serve():  # the REP socket lives and dies on this thread
        rep = bind_rep(endpoint)
        try:
            ready.set()
            body = rep.recv(5.0)
            if body is not None:
                served.append(rep.send(body.upper()))
        finally:
            rep.close()

    server = threading.Thread(target=serve)
    server.start()
    assert ready.wait(5)

    reply = request(endpoint, b"ping", timeout_s=5.0)
    server.join(5)

    assert reply == b"PING"
    assert served == [True]


def test_replier_recv_times_out_with_none(run_dir, closing):
    rep = bind_rep(f"ipc://{run_dir}/a.ctl")
    closing(rep)

    assert rep.recv(0.01) is None


def test_wake_listener_wait_without_wake_returns_false(run_dir, closing):
    listener = WakeListener(f"ipc://{run_dir}/a.pub", b"wake.s.")
    closing(listener)

    assert listener.wait(0.02) is False


def test_wake_listener_drains_queued_wakes_in_one_wait(ns, closing):
    endpoint = f"inproc://{ns}"  # inproc: a sent message is queued at once, no I/O thread
    pub = bind_pub(endpoint)
    closing(pub)
    listener = WakeListener(endpoint, b"wake.s.")
    closing(listener)
    sender = WakeSender(pub, b"wake.s.")
    eventually(lambda: _notify_and_wait(sender, listener), timeout_s=5)
    before = listener.wakes_total

    for _ in range(3):
        sender.notify()
    first = listener.wait(1.0)
    second = listener.wait(0)

    assert (first, second) == (True, False)
    assert listener.wakes_total - before == 3


def test_wake_listener_wake_sent_before_wait_is_not_lost(run_dir, closing):
    endpoint = f"ipc://{run_dir}/a.pub"
    pub = bind_pub(endpoint)
    closing(pub)
    listener = WakeListener(endpoint, b"wake.s.")
    closing(listener)
    sender = WakeSender(pub, b"wake.s.")
    eventually(lambda: _notify_and_wait(sender, listener), timeout_s=5)
    eventually(lambda: not listener.wait(0.01), timeout_s=5)

    sender.notify()
    got = listener.wait(2.0)

    assert got is True


def test_wake_listener_ipc_endpoint_wakes_directly(run_dir, closing):
    endpoint = f"ipc://{run_dir}/a.pub"
    pub = bind_pub(endpoint)
    closing(pub)
    listener = WakeListener(endpoint, b"wake.s.")
    closing(listener)
    sender = WakeSender(pub, b"wake.s.")

    sender.notify()
    got = listener.wait(2.0)

    assert listener.direct is True
    assert sender.direct_peers == 1
    assert got is True
    assert listener.direct_total >= 1


def test_wake_listener_direct_false_wakes_over_zmq_only(run_dir, closing):
    endpoint = f"ipc://{run_dir}/a.pub"
    pub = bind_pub(endpoint)
    closing(pub)
    listener = WakeListener(endpoint, b"wake.s.", direct=False)
    closing(listener)
    sender = WakeSender(pub, b"wake.s.")

    woke = eventually(lambda: sender.notify() or listener.wait(0.005), timeout_s=5)

    assert woke is True
    assert listener.direct is False
    assert sender.direct_peers == 0
    assert listener.direct_total == 0
    assert listener.wakes_total >= 1


def test_wake_listener_plain_pub_sender_still_wakes_it(run_dir, closing):
    endpoint = f"ipc://{run_dir}/a.pub"
    pub = bind_pub(endpoint)
    closing(pub)
    listener = WakeListener(endpoint, b"wake.s.")
    closing(listener)

    woke = eventually(lambda: pub.send(b"wake.s.", b"") and listener.wait(0.005), timeout_s=5)

    assert woke is True
    assert listener.direct_total == 0


def test_wake_listener_after_direct_wake_zmq_copy_is_filtered(run_dir, closing):
    endpoint = f"ipc://{run_dir}/a.pub"
    pub = bind_pub(endpoint)
    closing(pub)
    listener = WakeListener(endpoint, b"wake.s.")
    closing(listener)
    sender = WakeSender(pub, b"wake.s.")
    sender.notify()
    assert listener.wait(2.0)
    eventually(lambda: not listener.wait(0.01), timeout_s=5)  # zmq copies in flight drained
    before = listener.wakes_total

    for _ in range(3):
        sender.notify()
    first = listener.wait(1.0)
    late = listener.wait(0.05)  # a zmq copy would arrive here

    assert (first, late) == (True, False)
    assert listener.wakes_total - before == 3


def test_wake_listener_close_removes_its_socket_file(run_dir):
    listener = WakeListener(f"ipc://{run_dir}/a.pub", b"wake.s.")
    made = [p.name for p in run_dir.iterdir() if p.name.startswith("a.pub.wake.s.w")]

    listener.close()

    assert len(made) == 1
    assert not [p for p in run_dir.iterdir() if p.name.startswith("a.pub.wake.s.w")]


def test_wake_sender_dead_listener_file_is_removed(run_dir, closing):
    endpoint = f"ipc://{run_dir}/a.pub"
    pub = bind_pub(endpoint)
    closing(pub)
    dead = run_dir / "a.pub.wake.s.w999999.0"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(dead))
    s.close()  # a crashed listener: the file stays, nobody reads it
    sender = WakeSender(pub, b"wake.s.")

    sender.notify()

    assert not dead.exists()
    assert sender.direct_peers == 0


def test_wake_listener_fds_turn_readable_on_a_direct_wake(run_dir, closing):
    import select

    endpoint = f"ipc://{run_dir}/a.pub"
    pub = bind_pub(endpoint)
    closing(pub)
    listener = WakeListener(endpoint, b"wake.s.")
    closing(listener)
    sender = WakeSender(pub, b"wake.s.")
    assert listener.wait(0) is False  # arms zmq's edge-triggered descriptor

    sender.notify()
    ready, _, _ = select.select(listener.fds, [], [], 2.0)

    assert len(listener.fds) == 2
    assert ready
    assert listener.wait(0) is True


def test_wake_listener_tcp_endpoint_has_no_direct_socket(closing):
    listener = WakeListener(f"tcp://127.0.0.1:{free_port()}", b"wake.s.")
    closing(listener)

    assert listener.direct is False


def test_wake_listener_other_topic_is_not_woken_directly(run_dir, closing):
    endpoint = f"ipc://{run_dir}/a.pub"
    pub = bind_pub(endpoint)
    closing(pub)
    listener = WakeListener(endpoint, b"wake.t.")
    closing(listener)
    sender = WakeSender(pub, b"wake.s.")

    sender.notify()

    assert sender.direct_peers == 0
    assert listener.wait(0.02) is False


def test_pin_io_threads_after_first_socket_raises(monkeypatch):
    monkeypatch.setitem(sockets._state, "sockets_made", 1)

    with pytest.raises(IpcError, match="before the first socket"):
        pin_io_threads([0])


def test_pin_io_threads_no_cores_raises():
    with pytest.raises(IpcError, match="at least one core"):
        pin_io_threads([])


def _notify_and_wait(sender: WakeSender, listener: WakeListener) -> bool:
    sender.notify()
    return listener.wait(0.005)


def test_connect_sub_remote_host_refused_unless_allowed(closing):
    with pytest.raises(IpcError, match="loopback"):
        connect_sub("tcp://10.1.2.3:5555", [b"x."])

    closing(connect_sub("tcp://10.1.2.3:5555", [b"x."], allow_remote=True))


def _raw_req(endpoint: str, frames: list[bytes], timeout_s: float = 5.0) -> bytes | None:
    # a hostile client: any frames at all on a REQ socket (the REP sees them as one request)
    sock = sockets.context().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        sock.send_multipart(frames)
        if not sock.poll(int(timeout_s * 1000), zmq.POLLIN):
            return None
        return sock.recv()
    finally:
        sock.close(linger=0)


def _serve_one(rep: sockets.Replier, answer: bytes) -> None:
    body = eventually(lambda: rep.recv(0.05), timeout_s=5)
    rep.send(answer)
    assert body is not None


@pytest.mark.parametrize(
    ("frames", "why"),
    [([b"a", b"b"], "2 frames, 2 bytes"), ([b"x" * (70 << 10)], "1 frames, 71680 bytes")],
)
def test_replier_answers_a_malformed_request_counts_it_and_keeps_serving(
    run_dir, closing, frames, why
):
    endpoint = f"ipc://{run_dir}/a.ctl"
    rep = bind_rep(endpoint, malformed_reply=b"bad")
    closing(rep)
    got: list[bytes | None] = []
    t = threading.Thread(target=lambda: got.append(_raw_req(endpoint, frames)))
    t.start()

    eventually(lambda: rep.recv(0.05) is None and rep.malformed_total == 1, timeout_s=5)
    t.join(5)
    t2 = threading.Thread(target=lambda: got.append(request(endpoint, b"ok?", 5.0)))
    t2.start()
    _serve_one(rep, b"fine")
    t2.join(5)

    assert got == [b"bad", b"fine"]
    assert rep.last_malformed == why


def test_replier_recv_after_an_unanswered_request_answers_it_instead_of_raising(run_dir, closing):
    endpoint = f"ipc://{run_dir}/a.ctl"
    rep = bind_rep(endpoint, malformed_reply=b"dropped")
    closing(rep)
    got: list[bytes | None] = []
    t = threading.Thread(target=lambda: got.append(request(endpoint, b"one", 5.0)))
    t.start()
    assert eventually(lambda: rep.recv(0.05), timeout_s=5) == b"one"

    assert rep.recv(0.01) is None  # plain REP: EFSM; here the owed reply goes out first
    t.join(5)

    assert got == [b"dropped"]


def test_replier_rebinds_after_a_socket_error(run_dir, closing):
    endpoint = f"ipc://{run_dir}/a.ctl"
    rep = bind_rep(endpoint)
    closing(rep)
    rep._sock.close(linger=0)  # any ZMQError from the socket (here ENOTSOCK)

    assert rep.recv(0.01) is None
    got: list[bytes | None] = []
    t = threading.Thread(target=lambda: got.append(request(endpoint, b"again", 5.0)))
    t.start()
    _serve_one(rep, b"yes")
    t.join(5)

    assert rep.rebinds_total == 1
    assert got == [b"yes"]
