"""Store locations: explicit > $ORCH_STORE > ./.orch, and every accepted form."""

from __future__ import annotations

from pathlib import Path

import pytest

from traces import DirectoryStore, MemoryStore, SQLiteStore, StoreLocationError, open_store
from traces.open import mask_location


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORCH_STORE", raising=False)


def test_default_is_dot_orch_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store()
    assert isinstance(store, DirectoryStore)
    assert (tmp_path / ".orch" / "objects").is_dir()
    store.close()


def test_environment_overrides_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ORCH_STORE", str(tmp_path / "env.db"))
    store = open_store()
    assert isinstance(store, SQLiteStore)
    store.close()
    explicit = open_store(tmp_path / "explicit")  # explicit beats the environment
    assert isinstance(explicit, DirectoryStore)
    explicit.close()


@pytest.mark.parametrize(
    ("location", "kind"),
    [
        ("memory:", MemoryStore),
        ("sqlite:///{tmp}/a.db", SQLiteStore),
        ("sqlite:{tmp}/b.store", SQLiteStore),
        ("{tmp}/c.sqlite3", SQLiteStore),
        ("file://{tmp}/d", DirectoryStore),
        ("{tmp}/e", DirectoryStore),
    ],
)
def test_location_forms(tmp_path: Path, location: str, kind: type) -> None:
    store = open_store(location.format(tmp=tmp_path))
    assert type(store) is kind
    key = store.put(b"x")
    assert store.get(key) == b"x"
    store.close()


def test_unknown_scheme_names_supported_forms_and_hides_password() -> None:
    with pytest.raises(StoreLocationError) as info:
        open_store("mongodb://alice:s3cret@db.example/orch")
    msg = str(info.value)
    assert "no backend for 'mongodb://'" in msg
    assert "sqlite:///path.db" in msg and "orch.stores" in msg
    assert "s3cret" not in msg


def test_file_given_as_directory_store(tmp_path: Path) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("hello")
    with pytest.raises(StoreLocationError, match="is a file, not a directory"):
        open_store(f)


def test_refuses_a_foreign_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "main.py").write_text("print()")
    with pytest.raises(StoreLocationError, match="not an orch store"):
        open_store(tmp_path / "project")
    assert sorted(p.name for p in (tmp_path / "project").iterdir()) == ["main.py"]


def test_unwritable_location(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where a parent directory should be")
    with pytest.raises(StoreLocationError, match="cannot create store directory"):
        open_store(tmp_path / "blocker" / "store")
    with pytest.raises(StoreLocationError, match="cannot open SQLite store"):
        open_store(tmp_path / "blocker" / "store.db")


def test_empty_location() -> None:
    with pytest.raises(StoreLocationError, match="empty store location"):
        open_store("  ")


@pytest.mark.parametrize(
    ("location", "shown"),
    [
        (
            "postgresql://orch:s3cret@db:5432/orch?schema=a",
            "postgresql://orch:***@db:5432/orch?schema=a",
        ),
        ("postgres://db/orch?user=u&password=s3cret", "postgres://db/orch?user=u&password=***"),
        ("s3://key:s3cret@bucket/runs", "s3://***@bucket/runs"),
        ("/srv/orch-store", "/srv/orch-store"),
        ("sqlite:///srv/runs.db", "sqlite:///srv/runs.db"),
    ],
)
def test_mask_location_hides_passwords(location: str, shown: str) -> None:
    assert mask_location(location) == shown
