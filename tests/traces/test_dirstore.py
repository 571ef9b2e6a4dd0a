"""Directory-store specifics: the on-disk layout, atomic writes, torn event lines."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from traces import DirectoryStore, IntegrityError


def test_layout(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    key = store.put(b"payload")
    hexd = key.removeprefix("sha256:")
    assert (tmp_path / "objects" / hexd[:2] / hexd[2:]).read_bytes() == b"payload"
    store.append_event("run-1", b'{"a":1}')
    store.write_run_head("run-1", b"{}")
    store.close()
    assert (tmp_path / "runs" / "run-1" / "events.jsonl").read_bytes() == b'{"a":1}\n'
    assert (tmp_path / "runs" / "run-1" / "head.json").read_bytes() == b"{}"


def test_no_temporary_files_are_left(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    for i in range(20):
        store.put(b"%d" % i)
        store.write_run_head("r", b"%d" % i)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_failed_write_leaves_nothing_under_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DirectoryStore(tmp_path)

    def refuse(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="No space"):
        store.put(b"never whole")
    monkeypatch.undo()
    assert list(store.keys()) == []
    assert list((tmp_path / "tmp").iterdir()) == []


def test_torn_last_line_is_returned_as_is(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    store.append_event("r", b'{"seq":0}')
    store.close()
    with open(tmp_path / "runs" / "r" / "events.jsonl", "ab") as f:
        f.write(b'{"seq":1,"ty')
    assert DirectoryStore(tmp_path).read_events("r") == [b'{"seq":0}', b'{"seq":1,"ty']


def test_stray_files_are_not_keys(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    key = store.put(b"real")
    (tmp_path / "objects" / "zz").mkdir()
    (tmp_path / "objects" / "zz" / "junk").write_text("x")
    (tmp_path / "objects" / key[7:9] / "README").write_text("x")
    assert list(store.keys()) == [key]


def test_many_runs_do_not_exhaust_file_descriptors(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    for i in range(300):
        store.append_event(f"run-{i}", b"{}")
    assert len(store._logs) <= 64
    store.append_event("run-0", b'{"again":1}')
    assert store.read_events("run-0") == [b"{}", b'{"again":1}']


def test_corrupt_file_is_refused_on_read(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    key = store.put(b"abc")
    (tmp_path / "objects" / key[7:9] / key[9:]).write_bytes(b"abd")
    with pytest.raises(IntegrityError, match="is corrupt"):
        store.get(key)
