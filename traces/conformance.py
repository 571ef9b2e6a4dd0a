"""The store conformance suite: what every :class:`~traces.store.ArtifactStore` must do.

Third-party backends (a PostgreSQL or S3 store, say) prove themselves by subclassing
:class:`StoreConformance` in their own tests and saying how to make a store::

    from traces.conformance import StoreConformance

    class TestMyStore(StoreConformance):
        def make_store(self, location):          # location: a fresh temporary directory
            return MyStore(dsn_for(location))

        def corrupt(self, store, key, data):     # optional: enables the tamper checks
            ...overwrite the bytes under key with data, bypassing put()...

pytest collects every ``test_*`` method. Without pytest, :func:`check_store` runs the same
checks and returns the names and messages of those that failed.

The checks cover: round trips of any bytes, idempotent puts, key format, verified gets
(corruption raises :class:`~traces.errors.IntegrityError`, never returns bad bytes), missing
keys, listing, event-log order and isolation per run, run heads, run-id validation,
persistence across reopening, writers on several threads at once, and (for a store with
``supports_claims``) compare-and-swap claims, with exactly one winner among racing threads.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .canonical import digest
from .errors import ArtifactNotFoundError, IntegrityError, InvalidKeyError, InvalidRunIdError
from .store import ArtifactStore

__all__ = ["StoreConformance", "check_store"]

_PAYLOADS = [b"", b"x", bytes(range(256)), b"\x00" * 1000, "σ ünïcødé".encode(), b"a" * 2**20]


class StoreConformance:
    """Mixin of conformance checks; subclass it and implement :meth:`make_store`."""

    #: False for stores that forget everything when reopened (the memory store).
    persistent: bool = True

    def make_store(self, location: Path) -> ArtifactStore:
        """Open a store at (or derived from) ``location``; the same location reopens it."""
        raise NotImplementedError("implement make_store(location) -> ArtifactStore")

    def corrupt(self, store: ArtifactStore, key: str, data: bytes) -> None:
        """Overwrite the bytes stored under ``key`` with ``data``, bypassing ``put``."""
        tamper = getattr(store, "_tamper", None)
        if tamper is None:
            raise NotImplementedError("implement corrupt(store, key, data)")
        tamper(key, data)

    # -- helpers -----------------------------------------------------------------------------

    def _with_store(self, check: Callable[[ArtifactStore], None]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            store = self.make_store(Path(tmp))
            try:
                check(store)
            finally:
                store.close()

    # -- artifacts ---------------------------------------------------------------------------

    def test_round_trip_any_bytes(self) -> None:
        def check(store: ArtifactStore) -> None:
            for data in _PAYLOADS:
                key = store.put(data)
                assert key == digest(data), "put() must return sha256:<hex> of the bytes"
                assert store.has(key)
                assert store.get(key) == data, f"get() changed {len(data)} bytes"

        self._with_store(check)

    def test_put_is_idempotent(self) -> None:
        def check(store: ArtifactStore) -> None:
            k1 = store.put(b"same")
            k2 = store.put(b"same")
            assert k1 == k2
            assert list(store.keys()) == [k1], "a repeated put must not add a second entry"

        self._with_store(check)

    def test_values_round_trip(self) -> None:
        def check(store: ArtifactStore) -> None:
            value = {"b": [1, 2.5, None, True], "a": "text"}
            key = store.put_value(value)
            assert store.get_value(key) == value
            assert store.get(key) == b'{"a":"text","b":[1,2.5,null,true]}'

        self._with_store(check)

    def test_missing_key_raises_not_found(self) -> None:
        def check(store: ArtifactStore) -> None:
            key = digest(b"never stored")
            assert not store.has(key)
            try:
                store.get(key)
            except ArtifactNotFoundError as exc:
                assert key in str(exc)
            else:
                raise AssertionError("get() of a missing key must raise ArtifactNotFoundError")

        self._with_store(check)

    def test_malformed_keys_are_refused(self) -> None:
        def check(store: ArtifactStore) -> None:
            for bad in ["", "sha256:xyz", "md5:" + "0" * 32, "sha256:" + "A" * 64, "../etc"]:
                for op in (store.get, store.has):
                    try:
                        op(bad)
                    except InvalidKeyError:
                        continue
                    raise AssertionError(f"{op.__name__}({bad!r}) must raise InvalidKeyError")

        self._with_store(check)

    def test_keys_lists_everything_sorted(self) -> None:
        def check(store: ArtifactStore) -> None:
            keys = {store.put(str(i).encode()) for i in range(50)}
            listed = list(store.keys())
            assert listed == sorted(keys)

        self._with_store(check)

    def test_corruption_is_never_returned(self) -> None:
        def check(store: ArtifactStore) -> None:
            key = store.put(b"original bytes")
            self.corrupt(store, key, b"original bytez")
            try:
                store.get(key)
            except IntegrityError as exc:
                assert exc.key == key
                assert exc.actual == digest(b"original bytez")
            else:
                raise AssertionError("get() returned bytes that do not match their key")
            assert store.read_raw(key) == b"original bytez"

        self._with_store(check)

    # -- event logs and run heads ------------------------------------------------------------

    def test_events_keep_order_and_bytes_per_run(self) -> None:
        def check(store: ArtifactStore) -> None:
            assert store.read_events("run-a") == []
            lines = [b'{"seq":%d,"x":"\xc3\xa9"}' % i for i in range(100)]
            for i, line in enumerate(lines):
                store.append_event("run-a", line)
                if i % 3 == 0:
                    store.append_event("run-b", b'{"b":%d}' % i)
            assert store.read_events("run-a") == lines
            assert store.read_events("run-b") == [b'{"b":%d}' % i for i in range(0, 100, 3)]

        self._with_store(check)

    def test_run_heads_replace_and_list(self) -> None:
        def check(store: ArtifactStore) -> None:
            assert store.read_run_head("r1") is None
            assert store.run_ids() == []
            store.write_run_head("r2", b'{"v":1}')
            store.write_run_head("r1", b'{"v":1}')
            store.write_run_head("r1", b'{"v":2}')
            assert store.read_run_head("r1") == b'{"v":2}'
            assert store.run_ids() == ["r1", "r2"]
            assert store.resolve_run("r2") == "r2"

        self._with_store(check)

    def test_unsafe_run_ids_are_refused(self) -> None:
        def check(store: ArtifactStore) -> None:
            for bad in ["", "../escape", "a/b", ".hidden", "x" * 200, "nul\x00"]:
                for op in (
                    lambda r: store.write_run_head(r, b"{}"),
                    lambda r: store.append_event(r, b"{}"),
                    store.read_events,
                    store.read_run_head,
                ):
                    try:
                        op(bad)
                    except InvalidRunIdError:
                        continue
                    raise AssertionError(f"run id {bad!r} must raise InvalidRunIdError")

        self._with_store(check)

    # -- persistence and concurrency ---------------------------------------------------------

    def test_reopened_store_keeps_everything(self) -> None:
        if not self.persistent:
            return
        with tempfile.TemporaryDirectory() as tmp:
            store = self.make_store(Path(tmp))
            key = store.put(b"kept")
            store.append_event("run-1", b'{"n":0}')
            store.write_run_head("run-1", b'{"h":1}')
            if store.supports_claims:
                assert store.swap_claim("input-1", None, b"held")
            store.close()
            again = self.make_store(Path(tmp))
            try:
                assert again.get(key) == b"kept"
                assert again.read_events("run-1") == [b'{"n":0}']
                again.append_event("run-1", b'{"n":1}')
                assert again.read_events("run-1") == [b'{"n":0}', b'{"n":1}']
                assert again.read_run_head("run-1") == b'{"h":1}'
                assert again.run_ids() == ["run-1"]
                if again.supports_claims:
                    assert again.read_claim("input-1") == b"held"
            finally:
                again.close()

    def test_concurrent_writers_on_threads(self) -> None:
        def check(store: ArtifactStore) -> None:
            errors: list[BaseException] = []

            def writer(n: int) -> None:
                try:
                    for i in range(40):
                        store.put(b"shared %d" % i)  # every thread writes the same keys
                        store.put(b"own %d %d" % (n, i))
                        store.append_event(f"run-{n}", b'{"i":%d}' % i)
                except BaseException as exc:  # re-raised below on the main thread
                    errors.append(exc)

            _on_threads(writer, 4, errors)
            assert len(list(store.keys())) == 40 + 4 * 40
            for n in range(4):
                assert store.read_events(f"run-{n}") == [b'{"i":%d}' % i for i in range(40)]
            for key in store.keys():
                store.get(key)

        self._with_store(check)

    def test_claims_change_only_from_what_they_hold(self) -> None:
        def check(store: ArtifactStore) -> None:
            if not store.supports_claims:
                return
            assert store.read_claim("input-1") is None
            assert store.swap_claim("input-1", None, b"a")
            assert not store.swap_claim("input-1", None, b"b")  # held: no second claim
            assert not store.swap_claim("input-1", b"x", b"b")  # not what it holds
            assert store.read_claim("input-1") == b"a"
            assert store.swap_claim("input-1", b"a", b"b")
            assert store.read_claim("input-1") == b"b"
            assert store.read_claim("input-2") is None  # claims are per name
            assert not store.swap_claim("input-1", b"a", None)
            assert store.swap_claim("input-1", b"b", None)
            assert store.read_claim("input-1") is None
            assert store.swap_claim("input-1", None, None)  # "still unclaimed": true
            assert store.swap_claim("input-1", None, b"c")
            assert store.run_ids() == []  # claims are not runs
            for bad in ("../x", "a/b", ""):
                try:
                    store.swap_claim(bad, None, b"x")
                except InvalidRunIdError:
                    continue
                raise AssertionError(f"claim name {bad!r} was accepted")

        self._with_store(check)

    def test_claims_have_one_winner_among_racing_threads(self) -> None:
        def check(store: ArtifactStore) -> None:
            if not store.supports_claims:
                return
            won: list[tuple[int, int]] = []
            errors: list[BaseException] = []

            def racer(n: int) -> None:
                try:
                    for i in range(20):
                        if store.swap_claim(f"input-{i}", None, b"racer %d" % n):
                            won.append((i, n))
                except BaseException as exc:  # re-raised below on the main thread
                    errors.append(exc)

            _on_threads(racer, 6, errors)
            assert sorted(i for i, _ in won) == list(range(20))
            for i, n in won:
                assert store.read_claim(f"input-{i}") == b"racer %d" % n

        self._with_store(check)


def _on_threads(target: Callable[[int], None], n: int, errors: list[BaseException]) -> None:
    """Run ``target(0)`` ... ``target(n - 1)`` on threads at once; fail with what they caught
    (each target appends its exceptions to ``errors``: a thread cannot raise to this one)."""
    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def check_store(
    make_store: Callable[[Path], ArtifactStore],
    corrupt: Callable[[ArtifactStore, str, bytes], None] | None = None,
    *,
    persistent: bool = True,
) -> dict[str, str]:
    """Run every conformance check without pytest; return ``{check name: failure}``."""
    if not __debug__:
        raise RuntimeError("check_store() relies on assert statements; run Python without -O")
    attrs: dict[str, Any] = {
        "make_store": lambda self, location: make_store(location),
        "persistent": persistent,
    }
    if corrupt is not None:
        attrs["corrupt"] = lambda self, store, key, data: corrupt(store, key, data)
    suite = type("AdHocConformance", (StoreConformance,), attrs)()
    failures: dict[str, str] = {}
    for name in sorted(dir(suite)):
        if name.startswith("test_"):
            try:
                getattr(suite, name)()
            except Exception as exc:
                failures[name] = f"{type(exc).__name__}: {exc}"
    return failures
