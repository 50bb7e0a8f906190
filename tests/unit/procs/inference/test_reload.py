"""ModelWatcher: acts on settled changes only, loads the bytes it hashed, remembers refusals."""

from __future__ import annotations

import pytest

from procs.models.errors import ModelLoadError
from procs.models.reload import ModelWatcher, file_sha256
from tests.helpers.inference_models import write_model


class Loads:
    def __init__(self) -> None:
        self.calls: list[bytes] = []

    def __call__(self, data: bytes, source: str) -> bytes:
        self.calls.append(data)
        if data.startswith(b"bad"):
            raise ModelLoadError(f"model {source}: bad bytes")
        return data


@pytest.fixture
def watched(tmp_path):
    path = write_model(tmp_path / "m.onnx", b"v1")
    loads = Loads()
    watch = ModelWatcher("champion", str(path), loads)
    assert watch.load_now() == b"v1"
    return path, watch, loads


def test_poll_unchanged_file_returns_none(watched):
    _, watch, loads = watched

    assert [watch.poll() for _ in range(3)] == [None, None, None]
    assert len(loads.calls) == 1


def test_poll_changed_file_loaded_on_second_look(watched):
    path, watch, _ = watched
    write_model(path, b"v2")

    first, second, third = watch.poll(), watch.poll(), watch.poll()

    assert (first, second, third) == (None, b"v2", None)
    assert watch.sha256 == file_sha256(b"v2")
    assert watch.loaded_total == 2


def test_poll_still_changing_file_waits(watched):
    path, watch, loads = watched
    write_model(path, b"v2-partial")
    assert watch.poll() is None
    write_model(path, b"v2-complete")

    results = [watch.poll(), watch.poll()]

    assert results == [None, b"v2-complete"]
    assert loads.calls[-1] == b"v2-complete"


def test_poll_same_bytes_rewritten_not_reloaded(watched):
    path, watch, loads = watched
    write_model(path, b"v1")

    assert [watch.poll(), watch.poll()] == [None, None]
    assert len(loads.calls) == 1


def test_poll_bad_file_refused_once_and_remembered(watched):
    path, watch, _ = watched
    write_model(path, b"bad model")

    results = [watch.poll() for _ in range(4)]
    write_model(path, b"bad model")
    results += [watch.poll() for _ in range(2)]

    assert results == [None] * 6
    assert watch.refused_total == 1
    assert "bad bytes" in watch.last_error
    assert watch.sha256 == file_sha256(b"v1")


def test_poll_file_removed_keeps_running_model(watched):
    path, watch, _ = watched
    path.unlink()

    assert [watch.poll(), watch.poll()] == [None, None]
    assert watch.refused_total == 0


def test_load_now_missing_file_raises(tmp_path):
    watch = ModelWatcher("champion", str(tmp_path / "absent.onnx"), Loads())

    with pytest.raises(ModelLoadError, match="cannot read"):
        watch.load_now()


def test_load_now_counts_a_model_the_gate_failed(tmp_path):
    from procs.models.errors import ModelNotPromotableError

    def load(data: bytes, source: str) -> bytes:
        raise ModelNotPromotableError(f"model {source}: not promotable to champion")

    watch = ModelWatcher("champion", str(write_model(tmp_path / "m.onnx", b"v1")), load)

    with pytest.raises(ModelNotPromotableError):
        watch.load_now()
    assert (watch.not_promotable_total, watch.refused_total) == (1, 1)
