"""ZeroMQ benchmarks: our PUB->SUB helpers vs bare pyzmq, and a ring read by a hybrid waiter.

``zmq_hop``: one-way p50 of a paced PUB->SUB hop over ipc:// between two processes, with
``Publisher.send``/``Subscriber.recv`` vs bare pyzmq (``bare_pyzmq_pubsub``) in the same run.
``ring_latency_hybrid``: one-way p50 of a BENCH_V1 record through an shm ring whose writer calls
``WakeSender.notify()`` after each publish, read by a HybridWaiter blocking on a ZeroMQ-only
WakeListener (``direct=False``: the design the goal was set for), vs the same bare pyzmq hop.
``ring_latency_hybrid_direct``: the same with the listener's direct datagram wake-up (the
default on ``ipc://``; ipc/sockets.py), which skips zmq's two I/O-thread hops.
The writer side runs as ``python -m tests.bench.bench_zmq ROLE ...``.
"""

from __future__ import annotations

import gc
import select
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import zmq

from ipc.messages import wake_topic
from ipc.sockets import WakeListener, WakeSender, bind_pub, connect_sub
from procs._config import RuntimeConfig
from shm.records import BENCH_V1
from shm.ring import RingReader, RingSpec, RingWriter
from shm.waiters import make_waiter
from tests.bench._common import Result, percentiles_us
from tests.conftest import ROOT, unique_ns

GAP_S = 200e-6  # pacing between messages: the reader goes idle, as in a live feed
HANDSHAKE_S = 10.0
STREAM = "bench"
LAT = b"lat."
PROBE = b"probe."


# ---- writer side (child process) -------------------------------------------------------------


def _handshake(probe: Callable[[], object]) -> None:
    # probe until the reader says go on stdin: PUB drops until the subscription has arrived
    deadline = time.monotonic() + HANDSHAKE_S
    while not select.select([sys.stdin], [], [], 0.002)[0]:
        probe()
        if time.monotonic() > deadline:
            raise SystemExit("no go from the reader")
    sys.stdin.readline()


def _writer_ours(endpoint: str, n: int) -> None:
    pub = bind_pub(endpoint)
    try:
        _handshake(lambda: pub.send(PROBE, b""))
        for _ in range(n):
            time.sleep(GAP_S)
            pub.send(LAT, time.perf_counter_ns().to_bytes(8, "little"))
        sys.stdin.readline()  # stay open until the reader is done: linger 0 drops the queue
    finally:
        pub.close()


def _writer_bare(endpoint: str, n: int) -> None:
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.PUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(endpoint)
    try:
        _handshake(lambda: sock.send_multipart([PROBE, b""]))
        for _ in range(n):
            time.sleep(GAP_S)
            sock.send_multipart([LAT, time.perf_counter_ns().to_bytes(8, "little")])
        sys.stdin.readline()
    finally:
        sock.close(linger=0)


def _writer_ring(endpoint: str, n: int, ring: str) -> None:
    writer = RingWriter(RingSpec(name=ring, dtype=BENCH_V1, capacity=1024))
    pub = bind_pub(endpoint)
    waker = WakeSender(pub, wake_topic(STREAM))
    rec = np.zeros(1, BENCH_V1)
    try:
        _handshake(waker.notify)
        for i in range(n):
            time.sleep(GAP_S)
            rec["seq"] = i
            rec["ts_event_ns"] = time.perf_counter_ns()
            writer.publish(rec)
            waker.notify()
        sys.stdin.readline()
    finally:
        pub.close()
        writer.close()


def child_main(argv: list[str]) -> int:
    role, endpoint, n = argv[0], argv[1], int(argv[2])
    gc.disable()
    if role == "ours":
        _writer_ours(endpoint, n)
    elif role == "bare":
        _writer_bare(endpoint, n)
    elif role == "ring":
        _writer_ring(endpoint, n, argv[3])
    else:
        raise SystemExit(f"unknown role {role!r}")
    return 0


# ---- reader side (this process) ----------------------------------------------------------------


def _spawn(role: str, endpoint: str, n: int, *extra: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "tests.bench.bench_zmq", role, endpoint, str(n), *extra]
    return subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, text=True)


def _go(child: subprocess.Popen[str], ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + HANDSHAKE_S
    while not ready():
        if time.monotonic() > deadline or child.poll() is not None:
            raise RuntimeError("writer never reached the reader")
    assert child.stdin is not None
    child.stdin.write("go\n")
    child.stdin.flush()


def _finish(child: subprocess.Popen[str]) -> None:
    assert child.stdin is not None
    try:
        child.stdin.write("done\n")
        child.stdin.close()
    except BrokenPipeError:  # the writer already died; its traceback is on stderr
        pass
    try:
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def _read_ours(endpoint: str, n: int) -> np.ndarray:
    sub = connect_sub(endpoint, [LAT, PROBE])
    child = _spawn("ours", endpoint, n)
    out = np.zeros(n, np.int64)
    got = 0
    try:
        _go(child, lambda: sub.recv(0.01) is not None)
        while got < n:
            msg = sub.recv(2.0)
            if msg is None:
                break
            now = time.perf_counter_ns()
            if msg[0] == LAT:
                out[got] = now - int.from_bytes(msg[1], "little")
                got += 1
    finally:
        _finish(child)
        sub.close()
    return out[:got]


def _read_bare(endpoint: str, n: int) -> np.ndarray:
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 2000)
    sock.setsockopt(zmq.SUBSCRIBE, LAT)
    sock.setsockopt(zmq.SUBSCRIBE, PROBE)
    sock.connect(endpoint)
    child = _spawn("bare", endpoint, n)
    out = np.zeros(n, np.int64)
    got = 0
    try:
        _go(child, lambda: bool(sock.poll(10)) and sock.recv_multipart() is not None)
        while got < n:
            try:
                topic, payload = sock.recv_multipart()
            except zmq.Again:
                break
            now = time.perf_counter_ns()
            if topic == LAT:
                out[got] = now - int.from_bytes(payload, "little")
                got += 1
    finally:
        _finish(child)
        sock.close(linger=0)
    return out[:got]


def _read_ring(endpoint: str, n: int) -> np.ndarray:
    return _read_ring_with(endpoint, n, direct=False)


def _read_ring_direct(endpoint: str, n: int) -> np.ndarray:
    return _read_ring_with(endpoint, n, direct=True)


def _read_ring_with(endpoint: str, n: int, *, direct: bool) -> np.ndarray:
    ring = f"{unique_ns('bench')}.bench.ring"
    listener = WakeListener(endpoint, wake_topic(STREAM), direct=direct)
    child = _spawn("ring", endpoint, n, ring)
    out = np.zeros(n, np.int64)
    got = 0
    reader: RingReader | None = None
    try:
        _go(child, lambda: listener.wait(0.01))
        reader = RingReader(ring, BENCH_V1)  # the writer created it before binding
        cfg = RuntimeConfig(pub_endpoint="inproc://unused.pub", control_endpoint="inproc://u.ctl")
        waiter = make_waiter(
            "hybrid", listener, spin_s=cfg.spin_s, block_timeout_s=cfg.wake_timeout_s
        )  # the runtime's defaults
        deadline = time.monotonic() + 60
        while got < n and time.monotonic() < deadline:
            batch = reader.poll(64)
            if len(batch):
                now = time.perf_counter_ns()
                k = min(len(batch), n - got)
                out[got : got + k] = now - batch["ts_event_ns"][:k]
                got += k
                waiter.reset()
            else:
                waiter.idle()
    finally:
        _finish(child)
        if reader is not None:
            reader.close()
        listener.close()
    return out[:got]


def _round(read: Callable[[str, int], np.ndarray], n: int) -> np.ndarray:
    run_dir = Path("/tmp") / f"br-bench-{uuid.uuid4().hex[:8]}"
    run_dir.mkdir()
    try:
        gc.disable()
        return read(f"ipc://{run_dir}/w.pub", n)
    finally:
        gc.enable()
        shutil.rmtree(run_dir, ignore_errors=True)


def run(quick: bool) -> list[Result]:
    n, rounds = (2_000, 2) if quick else (10_000, 3)
    readers = {
        "ours": _read_ours,
        "bare": _read_bare,
        "ring": _read_ring,
        "direct": _read_ring_direct,
    }
    p50: dict[str, list[float]] = {k: [] for k in readers}
    p99: dict[str, list[float]] = {k: [] for k in readers}
    for r in range(rounds):
        for name, read in readers.items():  # interleaved, so drift hits every variant alike
            samples = _round(read, n)
            if len(samples) < n * 0.99:
                raise RuntimeError(f"{name}: only {len(samples)} of {n} messages arrived")
            a, b = percentiles_us(samples[n // 10 :], (50, 99))  # first 10%: warm-up
            p50[name].append(a)
            p99[name].append(b)
            print(f"round {r} {name}: p50={a:.1f} µs p99={b:.1f} µs", file=sys.stderr)
    med = {k: statistics.median(v) for k, v in p50.items()}
    med99 = {k: statistics.median(v) for k, v in p99.items()}
    base = "bare_pyzmq_pubsub"
    ring = "ring_latency_hybrid"
    return [
        Result("zmq_hop", "p50_one_way", med["ours"], "us", base, med["bare"], "ratio <= 1.1"),
        Result("zmq_hop", "p99_one_way", med99["ours"], "us", base, med99["bare"]),
        Result(ring, "p50_one_way", med["ring"], "us", base, med["bare"], "ratio <= 1.2"),
        Result(ring, "p99_one_way", med99["ring"], "us", base, med99["bare"]),
        Result(f"{ring}_direct", "p50_one_way", med["direct"], "us", base, med["bare"], "(info)"),
        Result(f"{ring}_direct", "p99_one_way", med99["direct"], "us", base, med99["bare"]),
    ]


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
