"""Store locations: explicit > $ORCH_STORE > ./.orch, and every accepted form."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from traces import DirectoryStore, MemoryStore, SQLiteStore, StoreLocationError, open_store
from traces._open import mask_location, require_writable
from traces.errors import StoreNotFoundError, StoreReadOnlyError


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


# -- reading never creates; a store this process may not write still reads --------------------


@pytest.mark.parametrize(
    "location", ["{tmp}/d", "file://{tmp}/d", "{tmp}/s.db", "sqlite:///{tmp}/sub/s.db"]
)
def test_create_false_makes_nothing(tmp_path: Path, location: str) -> None:
    loc = location.format(tmp=tmp_path)
    with pytest.raises(StoreNotFoundError) as info:
        open_store(loc, create=False)
    assert str(info.value).startswith("no store at ")
    assert "fix: check --store / ORCH_STORE (orch run creates one)" in str(info.value)
    assert isinstance(info.value, StoreLocationError)
    assert list(tmp_path.iterdir()) == []


def test_create_false_refuses_what_is_not_a_store(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreNotFoundError):
        open_store(tmp_path / "empty", create=False)
    assert list((tmp_path / "empty").iterdir()) == []
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE notes (x)").connection.commit()
    with pytest.raises(StoreNotFoundError):
        open_store(other, create=False)
    tables = sqlite3.connect(other).execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == [("notes",)]  # no store tables were added to somebody's database


@pytest.mark.parametrize("name", ["d", "s.db"])
def test_create_false_opens_an_existing_store(tmp_path: Path, name: str) -> None:
    with open_store(tmp_path / name) as made:
        key = made.put(b"x")
        assert not made.read_only
    with open_store(tmp_path / name, create=False) as store:
        assert store.get(key) == b"x" and not store.read_only


def test_memory_is_never_read_only() -> None:
    assert open_store("memory:").read_only is False


def test_sqlite_read_only_option(tmp_path: Path) -> None:
    """Explicitly read-only (testable as root, where no permission check bites): reads work,
    the journal mode and tables are left alone, and a writer's check refuses it."""
    path = tmp_path / "s.db"
    with SQLiteStore(path) as made:
        key = made.put(b"x")
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=DELETE")  # as another tool may leave it
    db.close()
    data = path.read_bytes()
    store = SQLiteStore(path, read_only=True)
    assert store.read_only and store.get(key) == b"x"
    with pytest.raises(StoreReadOnlyError) as info:
        require_writable(store)
    assert str(info.value) == (
        f"store {path} is read-only (opened read-only); fix: run as a user who may write it, "
        "or record into another store with --store / ORCH_STORE"
    )
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        store.put(b"y")
    store.close()
    assert path.read_bytes() == data  # journal mode still DELETE: nothing was changed
    with pytest.raises(StoreNotFoundError):
        SQLiteStore(tmp_path / "missing.db", read_only=True)
    assert not (tmp_path / "missing.db").exists()


def test_writable_store_passes_the_writer_check(tmp_path: Path) -> None:
    with open_store(tmp_path / "d") as store:
        assert require_writable(store) is store


def test_permissions_make_a_store_read_only(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip(
            "running as root: file permissions do not bind root, so a chmod cannot make a store "
            "read-only here (tests/orch/test_cli.py checks it in a process without "
            "CAP_DAC_OVERRIDE, and test_sqlite_read_only_option covers the read-only open)"
        )
    with open_store(tmp_path / "d") as made:
        key = made.put(b"x")
    with open_store(tmp_path / "s.db") as made:
        made.put(b"x")
    for path in [*tmp_path.rglob("*"), tmp_path]:
        path.chmod(path.stat().st_mode & ~0o222)
    try:
        for name in ("d", "s.db"):
            with open_store(tmp_path / name, create=False) as store:
                assert store.read_only and store.get(key) == b"x"
                with pytest.raises(StoreReadOnlyError, match="no write permission"):
                    require_writable(store)
    finally:
        for path in [tmp_path, *tmp_path.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    from pg_server import postgres_server

    with postgres_server() as dsn:
        yield dsn


def test_postgres_create_false_makes_no_schema(pg_dsn: str) -> None:
    import psycopg
    from pg_server import store_url

    location = store_url(pg_dsn, "ro")
    schema = location.rsplit("schema=", 1)[1]

    def schema_exists() -> bool:
        with psycopg.connect(pg_dsn) as conn:
            row = conn.execute("SELECT to_regnamespace(%s) IS NOT NULL", (schema,)).fetchone()
            return bool(row and row[0])

    with pytest.raises(StoreNotFoundError, match=f"no store at .*schema {schema}"):
        open_store(location, create=False)
    assert not schema_exists()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:  # a schema, but no store in it
        conn.execute(f'CREATE SCHEMA "{schema}"')
    with pytest.raises(StoreNotFoundError):
        open_store(location, create=False)
    with open_store(location) as made:
        key = made.put(b"x")
    with open_store(location, create=False) as store:
        assert store.get(key) == b"x"
