"""The overlay store: reads see the base, writes stay in memory, the base never changes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from traces import ArtifactStore, DirectoryStore, IntegrityError, MemoryStore, SQLiteStore
from traces._overlay import OverlayStore
from traces.conformance import StoreConformance


class TestOverlayOverMemory(StoreConformance):
    persistent = False  # what is written through the overlay is gone with it

    def make_store(self, location: Path) -> ArtifactStore:
        return OverlayStore(MemoryStore())


class TestOverlayOverDirectory(StoreConformance):
    persistent = False

    def make_store(self, location: Path) -> ArtifactStore:
        return OverlayStore(DirectoryStore(location / "store"))


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _dirs(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_dir())


def _filled(path: Path) -> tuple[DirectoryStore, str]:
    base = DirectoryStore(path)
    key = base.put(b"recorded")
    base.append_event("run-1", b'{"seq":0}')
    base.write_run_head("run-1", b'{"head":1}')
    return base, key


def test_reads_fall_through_and_writes_stay_in_memory(tmp_path: Path) -> None:
    base, key = _filled(tmp_path / "store")
    files, dirs = _tree(tmp_path / "store"), _dirs(tmp_path / "store")
    overlay = OverlayStore(base)
    assert overlay.get(key) == b"recorded"
    assert overlay.read_events("run-1") == [b'{"seq":0}']
    assert overlay.run_ids() == ["run-1"]
    assert not overlay.written

    new = overlay.put(b"replayed")
    overlay.append_event("run-1", b'{"seq":1}')
    overlay.append_event("run-2", b'{"seq":0}')
    overlay.write_run_head("run-1", b'{"head":2}')
    overlay.write_run_head("run-2", b'{"head":1}')
    assert overlay.written
    assert overlay.get(new) == b"replayed" and overlay.has(key) and overlay.has(new)
    assert list(overlay.keys()) == sorted([key, new])
    assert overlay.read_events("run-1") == [b'{"seq":0}', b'{"seq":1}']  # base's, then mine
    assert overlay.read_run_head("run-1") == b'{"head":2}'
    assert overlay.run_ids() == ["run-1", "run-2"]
    assert overlay.resolve_run("run-2") == "run-2"

    # The base saw none of it: not through its API, not on disk.
    assert not base.has(new)
    assert base.read_events("run-1") == [b'{"seq":0}']
    assert base.read_run_head("run-1") == b'{"head":1}'
    assert base.run_ids() == ["run-1"]
    assert _tree(tmp_path / "store") == files and _dirs(tmp_path / "store") == dirs

    overlay.close()  # forgets the layer, leaves the base open
    assert not overlay.written
    assert base.get(key) == b"recorded"
    base.close()


def test_a_read_only_sqlite_store_can_be_replayed_on(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    with SQLiteStore(db) as writer:
        key = writer.put(b"recorded")
        writer.append_event("run-1", b'{"seq":0}')
        writer.write_run_head("run-1", b'{"head":1}')

    def rows() -> list[tuple[str, list[tuple[object, ...]]]]:
        with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True) as conn:
            tables = [
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            ]
            return [(t, sorted(conn.execute(f'SELECT * FROM "{t}"'))) for t in sorted(tables)]

    before = rows()
    base = SQLiteStore(db, read_only=True)
    assert base.read_only
    overlay = OverlayStore(base)
    assert not overlay.read_only  # it takes writes, into memory
    overlay.put(b"replayed")
    overlay.append_event("run-2", b'{"seq":0}')
    overlay.write_run_head("run-2", b'{"head":1}')
    assert overlay.get(key) == b"recorded"
    assert overlay.run_ids() == ["run-1", "run-2"]
    base.close()
    assert rows() == before


def test_corruption_in_the_base_is_still_found(tmp_path: Path) -> None:
    base = MemoryStore()
    key = base.put(b"recorded")
    base._tamper(key, b"recorded, then changed")
    with pytest.raises(IntegrityError):
        OverlayStore(base).get(key)


def test_claims_and_the_ledger_are_not_offered(tmp_path: Path) -> None:
    base = MemoryStore()
    overlay = OverlayStore(base)
    assert base.supports_claims and not overlay.supports_claims
    assert not overlay.supports_ledger
    with pytest.raises(NotImplementedError, match="keeps no claims"):
        overlay.swap_claim("input-1", None, b"held")
    with pytest.raises(NotImplementedError, match="keeps no ledger"):
        overlay.ledger_append(b"entry")
    assert base.read_claim("input-1") is None


def test_an_overlay_is_no_reason_to_warn_of_a_missing_ledger(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a replay writes into an overlay is thrown away by design: anchoring it in a ledger
    # means nothing, and a warning that it is not would only be noise. A store of its own that
    # keeps no ledger is still warned of, once.
    from traces import _ledger

    monkeypatch.setattr(_ledger, "_WARNED", set())

    class Plain(OverlayStore):  # a store of its own that keeps no ledger
        ledger_expected = True

    base = DirectoryStore(tmp_path / "base")
    plain = Plain(base)
    plain.location = "plain"
    with caplog.at_level("WARNING", logger=_ledger.log.name):
        assert not _ledger.Ledger(OverlayStore(base)).supported
        assert not _ledger.Ledger(plain).supported
        assert not _ledger.Ledger(plain).supported
    warned = [r.getMessage() for r in caplog.records if "keeps no ledger" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith("store plain keeps no ledger"), warned
