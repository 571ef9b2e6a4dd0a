"""Open a store from a location string: the one place that maps ``--store`` to a backend.

Resolution order: the explicit location, else ``$ORCH_STORE``, else ``.orch`` under the
working directory. Accepted forms:

* ``memory:`` — an in-process :class:`~traces._store.MemoryStore` (gone at exit);
* ``sqlite:///path/to/file.db`` or ``sqlite:relative.db``, or any path ending in ``.db``,
  ``.sqlite`` or ``.sqlite3`` — a :class:`~traces._sqlitestore.SQLiteStore`;
* ``file:///path`` or any other path — a :class:`~traces._dirstore.DirectoryStore`;
* ``postgresql://user:password@host:port/database[?schema=NAME]`` (or ``postgres://``) — a
  :class:`~traces.pgstore.PostgresStore` (needs the ``postgres`` extra: psycopg);
* ``<scheme>://...`` for a scheme registered by an installed package under the entry-point
  group ``orch.stores`` (the value is a callable taking the location string).

Commands that only read pass ``create=False``: a mistyped location is then a
:class:`~traces.errors.StoreNotFoundError`, never a new empty store reported as intact. A store
this process may not write opens for reading (``read_only`` True); :func:`require_writable`
is what a writer calls first, so that it fails with one line instead of an OS error halfway.
"""

from __future__ import annotations

import os
import re
from importlib.metadata import entry_points
from pathlib import Path

from ._dirstore import DirectoryStore
from ._sqlitestore import SQLiteStore
from ._store import ArtifactStore, MemoryStore
from .errors import StoreLocationError, StoreReadOnlyError

__all__ = [
    "DEFAULT_STORE",
    "STORE_ENV",
    "default_store_location",
    "mask_location",
    "open_store",
    "require_writable",
]

STORE_ENV = "ORCH_STORE"
DEFAULT_STORE = ".orch"
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_POSTGRES_SCHEMES = ("postgresql", "postgres")
_SUPPORTED = (
    "a directory path, 'memory:', 'sqlite:///path.db' (or a path ending in .db), "
    "'postgresql://user:password@host/database', "
    "or a URL whose scheme an installed package registers under 'orch.stores'"
)


def default_store_location() -> str:
    """``$ORCH_STORE`` when set and not empty, else ``.orch`` (relative to the working dir)."""
    return os.environ.get(STORE_ENV) or DEFAULT_STORE


def mask_location(location: str) -> str:
    """``location`` as it may be printed or logged: a PostgreSQL URL with its password masked
    as the store's own ``location`` shows it, any other URL's user info replaced by ``***``;
    a path as it is."""
    match = _SCHEME_RE.match(location)
    if match is None:
        return location
    if match.group(1).lower() in _POSTGRES_SCHEMES:
        try:
            from .pgstore import mask_dsn
        except ImportError:  # psycopg is missing: mask the user too, as below
            pass
        else:
            return mask_dsn(location)
    return re.sub(r"://[^/@]*@", "://***@", location)


def open_store(
    location: str | os.PathLike[str] | None = None, *, create: bool = True
) -> ArtifactStore:
    """Open the store at ``location``; see the module docstring. A missing store is created,
    unless ``create`` is False: then it is a :class:`~traces.errors.StoreNotFoundError` and
    nothing is made (``memory:`` is always new; a plugin store decides for itself)."""
    loc = default_store_location() if location is None else os.fspath(location)
    if not loc.strip():
        raise StoreLocationError(f"empty store location; fix: give {_SUPPORTED}")
    if loc in ("memory:", "memory://"):
        return MemoryStore()
    if loc.startswith("sqlite:"):
        path = loc.removeprefix("sqlite:")
        # sqlite:///abs/path -> /abs/path ; sqlite://rel -> rel ; sqlite:rel -> rel
        path = path[2:] if path.startswith("//") else path
        if not path:
            raise StoreLocationError(
                f"store location {loc!r} names no file; fix: write sqlite:///path/to/store.db"
            )
        return SQLiteStore(path, create=create)
    if loc.startswith("file://"):
        return DirectoryStore(loc.removeprefix("file://"), create=create)
    match = _SCHEME_RE.match(loc)
    if match and match.group(1).lower() in _POSTGRES_SCHEMES:
        return _open_postgres_store(loc, create)
    if match:
        return _open_plugin_store(match.group(1).lower(), loc)
    if Path(loc).suffix.lower() in _SQLITE_SUFFIXES:
        return SQLiteStore(loc, create=create)
    return DirectoryStore(loc, create=create)


def require_writable(store: ArtifactStore) -> ArtifactStore:
    """``store`` itself, or :class:`~traces.errors.StoreReadOnlyError` (naming why) when this
    process may only read it. Call it before a run writes anything."""
    if not store.read_only:
        return store
    root = getattr(store, "root", None)
    path = getattr(store, "path", None)
    if isinstance(root, Path):  # a directory store: the first folder a writer needs
        folders = ("objects", "packs", "runs", "tmp")
        dirs = [d if d.is_dir() else root for d in (root / s for s in folders)]
        blocked = [d for d in dirs if not os.access(d, os.W_OK)]
        reason = f"no write permission on {blocked[0] if blocked else root}"
    elif isinstance(path, Path) and not (
        os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)
    ):
        folder = "the file" if not os.access(path, os.W_OK) else "its folder"
        reason = f"no write permission on {folder}"
    else:
        reason = "opened read-only"
    raise StoreReadOnlyError(store.location, reason)


def _open_postgres_store(loc: str, create: bool) -> ArtifactStore:
    # Imported here: psycopg is an optional extra, and most stores never need it.
    try:
        from .pgstore import PostgresStore
    except ImportError as exc:
        if exc.name is None or exc.name.split(".")[0] != "psycopg":
            raise
        raise StoreLocationError(
            f"the PostgreSQL store {mask_location(loc)!r} needs psycopg, which is not installed; "
            "fix: pip install 'orch[postgres]'"
        ) from None
    return PostgresStore(loc, create=create)


def _open_plugin_store(scheme: str, loc: str) -> ArtifactStore:
    for ep in entry_points(group="orch.stores"):
        if ep.name.lower() != scheme:
            continue
        package = ep.dist.name if ep.dist is not None else ep.value
        try:
            factory = ep.load()
            store = factory(loc)
        except StoreLocationError:
            raise
        except Exception as exc:
            raise StoreLocationError(
                f"the {scheme}:// store from package {package!r} failed to open {loc!r}: "
                f"{type(exc).__name__}: {exc}; fix: check the location, or reinstall {package}"
            ) from exc
        if not isinstance(store, ArtifactStore):
            raise StoreLocationError(
                f"the {scheme}:// store from package {package!r} returned "
                f"{type(store).__name__}, not an ArtifactStore; fix: report it to {package}"
            )
        return store
    raise StoreLocationError(
        f"unsupported store location {mask_location(loc)!r}: no backend for '{scheme}://'; "
        f"fix: give {_SUPPORTED}"
    )
