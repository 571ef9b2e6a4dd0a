"""Directory-store specifics: the on-disk layout, packs, atomic writes, torn event lines and
records, stores written before packs."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from traces import DirectoryStore, IntegrityError, _packs


def _loose(root: Path, data: bytes) -> str:
    """Write ``data`` as a store written before packs did: one file per artifact."""
    key = "sha256:" + hashlib.sha256(data).hexdigest()
    path = root / "objects" / key[7:9] / key[9:]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return key


def test_layout(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    key = store.put(b"payload")
    (pack,) = (tmp_path / "packs").glob("*.pack")
    digest = bytes.fromhex(key.removeprefix("sha256:"))
    record = len(b"payload").to_bytes(8, "big") + digest + b"payload"
    assert pack.read_bytes() == b"orch-pack/1\n" + record
    assert list((tmp_path / "objects").iterdir()) == []
    store.append_event("run-1", b'{"a":1}')
    store.write_run_head("run-1", b"{}")
    store.close()
    assert (tmp_path / "runs" / "run-1" / "events.jsonl").read_bytes() == b'{"a":1}\n'
    assert (tmp_path / "runs" / "run-1" / "head.json").read_bytes() == b"{}"
    assert pack.with_suffix(".idx").is_file()  # sealed by close()
    assert DirectoryStore(tmp_path).get(key) == b"payload"


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

    store.put(b"before")
    real_write = os.write

    def half(fd: int, data: Any) -> int:  # the disk fills up in the middle of a record
        real_write(fd, bytes(data)[:10])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", half)
    with pytest.raises(OSError, match="No space"):
        store.put(b"never whole")
    monkeypatch.undo()
    after = store.put(b"after")
    reopened = DirectoryStore(tmp_path)
    assert sorted(reopened.keys()) == sorted([store.put(b"before"), after])
    assert reopened.get(after) == b"after"
    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="No space"):
        store.write_run_head("r", b"{}")
    monkeypatch.undo()
    assert store.read_run_head("r") is None
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
    key = _loose(tmp_path, b"real")
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
    key = _loose(tmp_path, b"abc")
    (tmp_path / "objects" / key[7:9] / key[9:]).write_bytes(b"abd")
    with pytest.raises(IntegrityError, match="is corrupt"):
        store.get(key)
    packed = store.put(b"xyz")
    store._tamper(packed, b"xyw")
    with pytest.raises(IntegrityError, match="is corrupt"):
        DirectoryStore(tmp_path).get(packed)


def test_a_store_written_before_packs_is_read_and_grows_in_packs(tmp_path: Path) -> None:
    old = [_loose(tmp_path, b"old %d" % i) for i in range(3)]
    (tmp_path / "runs").mkdir()
    store = DirectoryStore(tmp_path)
    assert [store.get(k) for k in old] == [b"old 0", b"old 1", b"old 2"]
    assert store.put(b"old 1") == old[1]  # (a copy in this writer's pack: bytes are bytes)
    new = store.put(b"new")
    assert sorted(store.keys()) == sorted([*old, new])
    assert store.has(old[0]) and store.has(new)


def test_writers_in_other_processes_are_read_as_they_write(tmp_path: Path) -> None:
    code = (
        "import sys; from traces import DirectoryStore\n"
        "s = DirectoryStore(sys.argv[1])\n"
        "print(s.put(b'from the child'), flush=True)\n"
        "sys.stdin.readline()\n"  # stays alive with its pack unsealed until told
        "print(s.put(b'later'), flush=True)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    first = child.stdout.readline().strip()
    store = DirectoryStore(tmp_path)
    assert store.get(first) == b"from the child"  # an unsealed pack of a live writer
    child.stdin.write("go\n")
    child.stdin.flush()
    later = child.stdout.readline().strip()
    assert store.has(later) and store.get(later) == b"later"  # read on from where it was
    child.kill()
    child.wait()


def test_a_torn_last_record_is_left_out_and_nothing_else(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    kept = [store.put(b"kept %d" % i) for i in range(3)]
    (pack,) = (tmp_path / "packs").glob("*.pack")
    digest = hashlib.sha256(b"torn record").digest()
    with open(pack, "ab") as f:  # a process killed in the middle of its last write
        f.write((11).to_bytes(8, "big") + digest + b"torn")
    reader = DirectoryStore(tmp_path)
    assert sorted(reader.keys()) == sorted(kept)
    assert not reader.has("sha256:" + digest.hex())


def test_a_damaged_index_is_ignored_and_the_pack_read_instead(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    keys = [store.put(b"value %d" % i) for i in range(50)]
    store.close()
    (index,) = (tmp_path / "packs").glob("*.idx")
    raw = bytearray(index.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    index.write_bytes(bytes(raw))
    reader = DirectoryStore(tmp_path)
    assert [reader.get(k) for k in keys] == [b"value %d" % i for i in range(50)]


def test_a_pack_is_sealed_and_another_begun_when_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_packs, "PACK_LIMIT", 100)
    store = DirectoryStore(tmp_path)
    keys = [store.put(b"%050d" % i) for i in range(6)]
    assert len(list((tmp_path / "packs").glob("*.pack"))) >= 3
    assert len(list((tmp_path / "packs").glob("*.idx"))) >= 2
    assert [DirectoryStore(tmp_path).get(k) for k in keys] == [b"%050d" % i for i in range(6)]
