from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from procs.tickstore import concat_records
from procs.tickstore.store import (
    SCHEMA_VERSION,
    CaptureFormatError,
    CaptureReader,
    CaptureWriter,
    capture_filename,
    list_captures,
    open_capture,
    parse_start_ns,
    read_stream,
)
from shm.records import BOOK_V1, FEAT_V1, SIG_V1, TRADE_V1, dtype_crc

STREAMS = {"md.book": BOOK_V1, "md.trade": TRADE_V1, "feat": FEAT_V1, "sig": SIG_V1}
T0 = 1_767_225_600_000_000_000


class FakeClock:
    def __init__(self, t: int = T0) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t


def _count(path: Path, stream: str) -> int:
    with CaptureReader(path) as r:
        return r.count(stream)


def random_records(rng: np.random.Generator, dtype: np.dtype, n: int) -> np.ndarray:
    raw = rng.integers(0, 256, size=n * dtype.itemsize, dtype=np.uint8)  # padding bytes too
    recs: np.ndarray = raw.view(dtype).copy()
    recs["seq"] = np.arange(n)
    return recs


def test_writer_roundtrip_is_bit_identical_for_every_ring_dtype(tmp_path):
    rng = np.random.default_rng(0)
    sent = {
        name: [random_records(rng, dt, n) for n in (1, 300, 5000)] for name, dt in STREAMS.items()
    }
    with CaptureWriter(tmp_path, streams=STREAMS, attrs={"venue": "simex"}) as w:
        for i in range(3):
            for name in STREAMS:
                w.append(name, sent[name][i])

    cap = open_capture(w.path)

    assert cap.clean
    for name, dt in STREAMS.items():
        got = cap.streams[name]
        want = np.concatenate([p.view(np.uint8) for p in sent[name]])
        assert got.dtype == dt
        assert got.view(np.uint8).tobytes() == want.tobytes()


def test_writer_file_opens_with_plain_h5py_and_carries_attributes(tmp_path):
    attrs: dict[str, str | list[str]] = {
        "venue": "bitunix",
        "symbols": ["BTCUSDT", "ETHUSDT"],
        "config_hash": "abc123",
    }
    with CaptureWriter(tmp_path, streams=STREAMS, attrs=attrs, clock_ns=FakeClock()) as w:
        w.append("md.trade", np.zeros(10, dtype=TRADE_V1))

    with h5py.File(w.path, "r") as f:
        ds = f["md.trade"]
        assert ds.shape == (10,)
        assert ds.dtype == TRADE_V1
        assert ds.chunks is not None
        assert int(ds.attrs["dtype_crc"]) == dtype_crc(TRADE_V1)
        assert f.attrs["schema_version"] == SCHEMA_VERSION
    with CaptureReader(w.path) as r:
        assert r.attrs["symbols"] == ["BTCUSDT", "ETHUSDT"]
        assert r.attrs["venue"] == "bitunix"
        assert r.attrs["created_ns"] == T0
        assert r.dtype_name("md.trade") == "TRADE_V1"
        assert set(r.streams) == set(STREAMS)
    assert w.path.name == capture_filename("capture", T0)
    assert parse_start_ns(w.path.name) == T0


def test_writer_rotates_by_size_keeping_every_record_in_order(tmp_path):
    batch = np.zeros(100, dtype=TRADE_V1)
    with CaptureWriter(
        tmp_path, streams={"t": TRADE_V1}, rotate_bytes=250 * 64, clock_ns=FakeClock()
    ) as w:
        for i in range(10):
            batch["seq"] = np.arange(i * 100, (i + 1) * 100)
            w.append("t", batch)

    files = list_captures(tmp_path)
    counts = [_count(p, "t") for p in files]
    got = read_stream(files, "t", TRADE_V1)

    assert files == w.paths
    assert counts == [200] * 5
    np.testing.assert_array_equal(got["seq"], np.arange(1000))


def test_writer_rotates_by_time_and_names_files_by_start(tmp_path):
    clock = FakeClock()
    with CaptureWriter(tmp_path, streams={"t": TRADE_V1}, rotate_s=60.0, clock_ns=clock) as w:
        for _ in range(5):
            w.append("t", np.zeros(3, dtype=TRADE_V1))
            clock.t += 25 * 1_000_000_000

    starts = [parse_start_ns(p.name) for p in list_captures(tmp_path)]

    assert starts == [T0, T0 + 75 * 10**9]
    assert [_count(p, "t") for p in w.paths] == [9, 6]


def test_writer_rejects_unknown_stream_wrong_dtype_and_bad_options(tmp_path):
    with CaptureWriter(tmp_path, streams={"t": TRADE_V1}) as w:
        with pytest.raises(KeyError, match="unknown stream"):
            w.append("x", np.zeros(1, dtype=TRADE_V1))
        with pytest.raises(TypeError):
            w.append("t", np.zeros(1, dtype=BOOK_V1))
    with pytest.raises(ValueError, match="compression"):
        CaptureWriter(tmp_path, streams={"t": TRADE_V1}, compression="zstd")
    with pytest.raises(ValueError, match="rotate_bytes"):
        CaptureWriter(tmp_path, streams={"t": TRADE_V1}, rotate_bytes=0)


@pytest.mark.parametrize("compression", ["lzf", "gzip"])
def test_writer_compressed_roundtrip_is_bit_identical(tmp_path, compression):
    recs = random_records(np.random.default_rng(1), BOOK_V1, 3000)
    with CaptureWriter(tmp_path, streams={"b": BOOK_V1}, compression=compression) as w:
        w.append("b", recs[:1000])
        w.append("b", recs[1000:])

    with CaptureReader(w.path) as r:
        got = r.read("b")
        part = r.read("b", 10, 20)

    assert got.tobytes() == recs.tobytes()
    assert part.tobytes() == recs[10:20].tobytes()


def test_reader_refuses_missing_garbage_and_foreign_hdf5_files(tmp_path):
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not hdf5 at all" * 10)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.arange(3)

    for path in (tmp_path / "missing.h5", garbage, foreign):
        with pytest.raises(CaptureFormatError):
            CaptureReader(path)


def test_concat_records_keeps_dtype_and_padding_bytes():
    rng = np.random.default_rng(3)
    parts = [random_records(rng, FEAT_V1, n) for n in (0, 3, 5)]

    got = concat_records(parts, FEAT_V1)

    assert got.dtype == FEAT_V1
    assert got.tobytes() == b"".join(p.tobytes() for p in parts)
