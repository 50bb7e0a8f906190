"""Unit tests for shm.segment: stale unlink, attach, guarded destroy, listing, cleaning."""

from __future__ import annotations

import errno
import os

import pytest

from shm.segment import (
    PAGE,
    ShmError,
    attach_segment,
    clean_segments,
    close_segment,
    create_segment,
    destroy_segment,
    is_bitrader_name,
    list_segments,
    main,
    mapping_inode,
    prefault,
    segment_inode,
)
from tests.helpers.pages import touch_pages


def test_create_segment_replaces_stale_one_zero_filled(ring_name):
    stale = create_segment(ring_name, 64)
    assert stale.buf is not None
    stale.buf[:4] = b"junk"
    stale_ino = mapping_inode(stale)
    close_segment(stale)

    seg = create_segment(ring_name, 128)
    try:
        assert seg.buf is not None
        content = bytes(seg.buf[:4])
        ino = mapping_inode(seg)
    finally:
        destroy_segment(seg)

    assert content == b"\0\0\0\0"
    assert ino != stale_ino
    assert seg.size == 128


def test_create_segment_nonpositive_size_rejected(ring_name):
    with pytest.raises(ValueError, match="size_bytes must be positive, was 0"):
        create_segment(ring_name, 0)


def test_attach_segment_missing_raises_file_not_found(ring_name):
    with pytest.raises(FileNotFoundError):
        attach_segment(ring_name)


def test_attach_segment_sees_writer_bytes_and_close_keeps_it(ring_name):
    seg = create_segment(ring_name, 64)
    assert seg.buf is not None
    seg.buf[:3] = b"abc"

    other = attach_segment(ring_name)
    assert other.buf is not None
    seen = bytes(other.buf[:3])
    close_segment(other)
    exists = segment_inode(ring_name) is not None
    destroy_segment(seg)

    assert seen == b"abc"
    assert exists
    assert segment_inode(ring_name) is None


def test_destroy_segment_leaves_a_replacement_alone(ring_name):
    old = create_segment(ring_name, 64)
    new = create_segment(ring_name, 64)  # a restarted writer took the name over

    destroy_segment(old)
    survived = segment_inode(ring_name) == mapping_inode(new)
    destroy_segment(new)

    assert survived
    assert segment_inode(ring_name) is None


def test_list_segments_filters_by_prefix(ns):
    segs = [create_segment(f"{ns}.test.{s}", 64) for s in ("a", "b")]
    try:
        names = list_segments(ns)
    finally:
        for s in segs:
            destroy_segment(s)

    assert names == [f"{ns}.test.a", f"{ns}.test.b"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("prod.ingest.md.book", True),
        ("demo.features.feat", True),
        ("tgw0abcd1234.test.ring", True),
        ("x.bench.ring", True),
        ("psm_12345", False),
        ("prod.other.ring", False),
        ("ingest.md", False),
        ("a.ingest.", False),
    ],
)
def test_is_bitrader_name_matches_ns_writer_stream(name, expected):
    assert is_bitrader_name(name) is expected


def test_clean_segments_with_prefix_removes_only_those(ns):
    mine = [create_segment(f"{ns}.test.{s}", 64) for s in ("a", "b")]
    for s in mine:
        close_segment(s)  # left behind
    other = create_segment(f"{ns}x.test.keep", 64)

    removed = clean_segments(f"{ns}.")
    kept = segment_inode(f"{ns}x.test.keep") is not None
    destroy_segment(other)

    assert removed == [f"{ns}.test.a", f"{ns}.test.b"]
    assert kept


def test_clean_segments_empty_prefix_rejected():
    with pytest.raises(ValueError, match="prefix must not be empty"):
        clean_segments("")


def test_main_clean_prefix_reports_removed(ns, capsys):
    close_segment(create_segment(f"{ns}.test.a", 64))

    rc = main(["--clean", ns])

    assert rc == 0
    assert capsys.readouterr().out.splitlines()[-1] == "removed=1"
    assert not os.path.exists(f"/dev/shm/{ns}.test.a")


def test_main_list_prefix_prints_names(ns, capsys):
    seg = create_segment(f"{ns}.test.a", 64)
    try:
        rc = main(["--list", ns])
    finally:
        destroy_segment(seg)

    assert rc == 0
    assert capsys.readouterr().out.split() == [f"{ns}.test.a"]


def test_main_list_without_prefix_shows_only_bitrader_names(ns, capsys):
    mine = create_segment(f"{ns}.test.a", 64)
    foreign = create_segment(f"{ns}_foreign", 64)
    try:
        rc = main(["--list"])
    finally:
        destroy_segment(mine)
        destroy_segment(foreign)

    names = capsys.readouterr().out.split()
    assert rc == 0
    assert f"{ns}.test.a" in names
    assert f"{ns}_foreign" not in names


def test_created_and_attached_segments_are_mapped_before_first_use(ring_name):
    n_pages = 1024  # without the prefault: a fault per page written, one per few pages read
    seg = create_segment(ring_name, n_pages * PAGE)
    reader = attach_segment(ring_name)
    try:
        assert touch_pages(seg.buf, write=True) < n_pages // 64
        prefault(reader, write=False)  # what a RingReader does once the header checks out
        assert touch_pages(reader.buf, write=False) < n_pages // 64
        assert bytes(reader.buf[:1]) == b"\1"  # the same memory
    finally:
        close_segment(reader)
        destroy_segment(seg)


def test_a_full_shm_is_a_clear_error_at_create_and_leaves_no_segment(ring_name, monkeypatch):
    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(ShmError, match=f"segment {ring_name}: no room in /dev/shm for 65536 bytes"):
        create_segment(ring_name, 65536)
    assert segment_inode(ring_name) is None
