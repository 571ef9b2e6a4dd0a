"""Directory-store specifics: the on-disk layout, packs, atomic writes, torn event lines and
records, stores written before packs, many keys read together."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from traces import ArtifactNotFoundError, DirectoryStore, IntegrityError, InvalidKeyError, _packs


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


# -- get_many: many keys read together, exactly as get() reads each -------------------------

GOLDEN = Path(__file__).parent.parent / "fixtures" / "golden_store"
MISSING = "sha256:" + "0" * 64


Outcome = list[bytes] | tuple[type[Exception], str]


def _outcome(read: Callable[[], list[bytes]]) -> Outcome:
    """What ``read`` returns, or the type and message of what it raises."""
    try:
        return read()
    except Exception as exc:
        return (type(exc), str(exc))


def _same_as_get(root: Path, asked: list[str], warm: bool) -> Outcome:
    """get_many(asked) of one reader against get() of each key by another, each opened on
    ``root`` alike (``warm``: after it has read every pack); returns what both gave."""
    by_get, by_many = DirectoryStore(root), DirectoryStore(root)
    if warm:  # has() of a key in no pack reads every pack
        assert not by_get.has(MISSING) and not by_many.has(MISSING)
    expected = _outcome(lambda: [by_get.get(k) for k in asked])
    assert _outcome(lambda: by_many.get_many(asked)) == expected
    by_get.close()
    by_many.close()
    return expected


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    writers=st.lists(
        st.tuples(st.lists(st.binary(max_size=300), max_size=12), st.booleans()),
        min_size=1,
        max_size=4,
    ),
    loose=st.lists(st.binary(max_size=40), max_size=4),
    pack_limit=st.sampled_from([100, 1000, _packs.PACK_LIMIT]),
    limits=st.sampled_from([(0, 1), (0, 1 << 20), (200, 700), (16 << 10, 8 << 20)]),
    data=st.data(),
)
def test_get_many_is_get_of_each_key_across_writers_packs_and_loose_files(
    writers: list[tuple[list[bytes], bool]],
    loose: list[bytes],
    pack_limit: int,
    limits: tuple[int, int],
    data: st.DataObject,
) -> None:
    """Writers that sealed their packs and writers still open (read record by record), packs
    begun when one is full, single files of the old layout, a key in several of them: any
    keys asked in any order, repeated, with a missing one or not, give what get() gives, with
    pread ranges from one per record to every neighbour at once."""
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        root = Path(tmp)
        stack.enter_context(patch.object(_packs, "PACK_LIMIT", pack_limit))
        stack.enter_context(patch.object(_packs, "_GAP", limits[0]))
        stack.enter_context(patch.object(_packs, "_SPAN", limits[1]))
        keys = [_loose(root, blob) for blob in loose]
        for blobs, seal in writers:
            writer = DirectoryStore(root)
            keys += [writer.put(blob) for blob in blobs]
            if seal:
                writer.close()
            else:
                stack.callback(writer.close)  # still appending: its pack has no index yet
        if not keys:
            keys.append(_loose(root, b"one"))
        asked = data.draw(st.lists(st.sampled_from(keys), max_size=40))
        if data.draw(st.booleans()):
            asked.insert(data.draw(st.integers(0, len(asked))), MISSING)
        for warm in (False, True):
            got = _same_as_get(root, asked, warm)
            assert (MISSING in asked) == isinstance(got, tuple)


def test_get_many_reads_a_packs_neighbouring_records_in_one_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DirectoryStore(tmp_path)
    keys = [store.put(b"record %04d " % i * 20) for i in range(300)]
    store.close()
    reader = DirectoryStore(tmp_path)
    assert reader.has(keys[0])  # reads the pack's index
    reads: list[int] = []
    real_pread = os.pread

    def pread(fd: int, size: int, offset: int) -> bytes:
        reads.append(size)
        return real_pread(fd, size, offset)

    monkeypatch.setattr(os, "pread", pread)
    asked = [*keys[::-3], *keys[:10], keys[0]]
    assert reader.get_many(asked) == [b"record %04d " % keys.index(k) * 20 for k in asked]
    assert len(reads) == 1
    reads.clear()
    monkeypatch.setattr(_packs, "_GAP", 0)  # records two apart: not neighbours any more
    assert reader.get_many(keys[::2]) == [reader.get(k) for k in keys[::2]]
    assert len(reads) == 150 * 2
    reads.clear()
    monkeypatch.setattr(_packs, "_GAP", 1 << 20)
    monkeypatch.setattr(_packs, "_SPAN", 3000)  # ~12 records a read at most
    assert reader.get_many(keys) == [reader.get(k) for k in keys]
    assert max(reads[:-300]) <= 3000 and 300 / 12 <= len(reads) - 300 <= 300 / 10


def test_get_many_leaves_a_read_that_fails_to_get(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DirectoryStore(tmp_path)
    keys = [store.put(b"%d" % i) for i in range(20)]
    store.close()
    reader = DirectoryStore(tmp_path)
    assert reader.has(keys[0])
    real_pread = os.pread

    def failing(fd: int, size: int, offset: int) -> bytes:
        if size > 100 or not flaky:  # a disk that fails reads of more than one record
            raise OSError(5, "Input/output error")
        return real_pread(fd, size, offset)

    monkeypatch.setattr(os, "pread", failing)
    flaky = True
    assert reader.get_many(keys[::-1]) == [b"%d" % i for i in range(20)][::-1]
    flaky = False
    with pytest.raises(OSError, match="Input/output error"):
        reader.get_many(keys)


def test_get_many_raises_what_get_raises_for_the_first_key_at_fault(tmp_path: Path) -> None:
    old = _loose(tmp_path, b"a single file")
    bad_old = _loose(tmp_path, b"a damaged single file")
    both = _loose(tmp_path, b"a damaged single file, and a copy in a pack")
    store = DirectoryStore(tmp_path)
    keys = [store.put(b"value %d" % i) for i in range(8)]
    assert store.put(b"a damaged single file, and a copy in a pack") == both
    store.close()
    for key in (bad_old, both):
        (tmp_path / "objects" / key[7:9] / key[9:]).write_bytes(b"damaged")
    store = DirectoryStore(tmp_path)
    store._tamper(keys[2], b"value X")  # same length: the records after it stay where they were
    store._tamper_delete_blob(keys[5])
    store.close()
    # What get() of each key in turn raises first, by a reader that has read no pack yet and
    # by one that has (get() looks for a key it knows in a pack before a single file).
    cases: dict[tuple[str, ...], tuple[type[Exception] | None, type[Exception] | None]] = {
        (keys[0], keys[2], MISSING): (IntegrityError, IntegrityError),
        (keys[0], MISSING, keys[2]): (ArtifactNotFoundError, ArtifactNotFoundError),
        (keys[5], keys[2]): (ArtifactNotFoundError, ArtifactNotFoundError),
        (old, keys[1], "sha256:nothex", keys[2]): (InvalidKeyError, InvalidKeyError),
        (keys[3], old, bad_old, keys[4]): (IntegrityError, IntegrityError),
        (keys[7], keys[2], keys[7], keys[0]): (IntegrityError, IntegrityError),
        (keys[7], old, keys[6], keys[3], old, keys[7]): (None, None),
        (both, keys[0]): (IntegrityError, None),  # cold: the damaged file is read first
        (keys[0], both, old): (None, None),  # the first key read every pack: both is in one
    }
    for asked, errors in cases.items():
        for warm, error in zip((False, True), errors, strict=True):
            got = _same_as_get(tmp_path, list(asked), warm)
            assert got[0] is error if error else isinstance(got, list), (asked, warm, got)


def test_get_many_refuses_records_changed_under_a_reader_as_get_does(tmp_path: Path) -> None:
    """A reader that read the index before a pack was changed on disk (bytes flipped in
    place, a header overwritten, the file cut short, a record removed) reports each record
    as get() does: corrupt, or missing, never another record's bytes."""
    store = DirectoryStore(tmp_path)
    keys = [store.put(b"record %d" % i * 7) for i in range(10)]
    store.close()
    (pack,) = (tmp_path / "packs").glob("*.pack")
    raw = bytearray(pack.read_bytes())
    by_get, by_many = DirectoryStore(tmp_path), DirectoryStore(tmp_path)
    assert by_get.has(keys[0]) and by_many.has(keys[0])

    def at(i: int) -> int:
        where = by_get._packs.located(bytes.fromhex(keys[i][7:]))
        assert where is not None
        return where[1]

    raw[at(2) + 3] ^= 0x01  # a data byte: the record is corrupt
    raw[at(4) - 5] ^= 0x01  # its header's digest: no record of that key there
    raw[at(6) - 40 : at(6) - 32] = (10**6).to_bytes(8, "big")  # its length: not that record
    pack.write_bytes(bytes(raw[: at(9) + 5]))  # cut inside the last record

    def one_by_one(asked: list[str]) -> Outcome:
        return _outcome(lambda: [by_get.get(k) for k in asked])

    def together(asked: list[str]) -> Outcome:
        return _outcome(lambda: by_many.get_many(asked))

    outcomes: dict[int, object] = {}
    for i, key in enumerate(keys):
        expected = one_by_one([key])
        outcomes[i] = expected if isinstance(expected, list) else expected[0]
        assert together([key]) == expected
    assert outcomes[2] is IntegrityError
    assert outcomes[4] is outcomes[6] is outcomes[9] is ArtifactNotFoundError
    for first in range(10):
        asked = keys[first:] + keys[:first]
        assert together(asked) == one_by_one(asked)
    assert by_many.get_many([keys[k] for k in (8, 0, 7, 1)]) == [
        b"record %d" % k * 7 for k in (8, 0, 7, 1)
    ]


def test_get_many_reads_a_store_of_the_old_layout(tmp_path: Path) -> None:
    """The golden store was written before packs (a file per artifact): get_many falls back
    to get() for each key, and a key later packed (a replay's copy) is found either way."""
    root = tmp_path / "golden"
    shutil.copytree(GOLDEN, root)
    keys = sorted(DirectoryStore(root).keys())
    assert keys and not list((root / "packs").glob("*.pack"))
    asked = keys[::-1] + keys[::2]
    assert _same_as_get(root, asked, warm=False) == [DirectoryStore(root).get(k) for k in asked]
    writer = DirectoryStore(root)
    packed = [writer.put(b"new %d" % i) for i in range(3)] + [writer.put(writer.get(keys[1]))]
    writer.close()
    mixed = [packed[0], keys[0], packed[3], keys[1], packed[2], keys[0]]
    for warm in (False, True):
        assert isinstance(_same_as_get(root, mixed, warm), list)
