"""The store conformance suite: what every :class:`~traces._store.ArtifactStore` must do.

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
persistence across reopening, writers on several threads at once, (for a store with
``supports_claims``) compare-and-swap claims, with exactly one winner among racing threads, and
(for a store with ``supports_ledger``) the ledger: dense indexes from 0, ranges read back,
compare-and-append, entries refused, racing threads each given a distinct index that holds
their entry, checkpoints written, replaced and listed, all kept across reopening; and (for a
store with a runs index of its own, :meth:`~traces.ArtifactStore.run_index`) that every page,
count and pipeline list it gives is what :class:`~traces._runindex.ScanIndex` gives on the same
store, through heads rewritten, runs ending and the store reopened.

Runs lists. :func:`write_run` writes a run's head and records from a :class:`RunSpec` (real
record types, but a synthesised run: no events, so it does not verify) and
:func:`assert_index_agrees` compares a store's index with the scan; property tests draw
populations of specs (the built-in stores' run in ``tests/traces/test_runindex_conformance.py``).

Test hooks. The built-in stores also carry private hooks that change stored data behind the
API, as a failing disk or an attacker with write access would, for tests of verification (and
of the ledger built on a store): their signatures and meaning are :class:`TamperableStore`,
and :func:`tamper_hooks` gives a store that has them that type. A store that has every hook is
also checked to do what each says.
"""

from __future__ import annotations

import random
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ._canonical import digest
from ._records import AgentRef, Decision, RunHead, RunRecord, StepRecord, steps_root
from ._runindex import RunFilter, RunIndex, ScanIndex
from ._store import LEDGER_ENTRY_LIMIT, ArtifactStore
from .errors import ArtifactNotFoundError, IntegrityError, InvalidKeyError, InvalidRunIdError

__all__ = [
    "RunSpec",
    "StoreConformance",
    "TamperableStore",
    "assert_index_agrees",
    "check_store",
    "sample_filters",
    "sample_specs",
    "tamper_hooks",
    "write_run",
]

_PAYLOADS = [b"", b"x", bytes(range(256)), b"\x00" * 1000, "σ ünïcødé".encode(), b"a" * 2**20]


@runtime_checkable
class TamperableStore(Protocol):
    """The test hooks of the built-in stores (memory, directory, SQLite, PostgreSQL).

    Each changes what is stored without the API's checks, as a disk fault or an attacker would
    (a test then checks that verification notices); none is for use outside tests.
    """

    def _tamper(self, key: str, data: bytes) -> None:
        """Overwrite the bytes stored under ``key`` (the key stays: ``get`` must object)."""

    def _tamper_event(self, run_id: str, index: int, line: bytes) -> None:
        """Replace line ``index`` of the run's event log."""

    def _tamper_set_events(self, run_id: str, lines: list[bytes]) -> None:
        """Replace the run's whole event log by ``lines`` (to drop, reorder or cut lines);
        later appends go on after the last of them."""

    def _tamper_delete_blob(self, key: str) -> None:
        """Remove the artifact under ``key``."""

    def _tamper_delete_head(self, run_id: str) -> None:
        """Remove the run's head document (the run leaves ``run_ids``)."""

    def _tamper_ledger(self, index: int, entry: bytes) -> None:
        """Replace ledger entry ``index`` by ``entry`` (the size stays)."""

    def _tamper_truncate_ledger(self, size: int) -> None:
        """Remove every ledger entry from index ``size`` on; the next append gets ``size``."""

    def _tamper_delete_checkpoint(self, size: int) -> None:
        """Remove the checkpoint note of tree size ``size``."""

    def _tamper_snapshot(self) -> object:
        """A copy of the whole store's state (artifacts, logs, heads, claims, ledger,
        checkpoints), for :meth:`_tamper_restore`."""

    def _tamper_restore(self, snapshot: object) -> None:
        """Put the store back as ``snapshot`` copied it, as restoring an older copy of the
        store would: everything written since is gone. The store stays usable."""


def tamper_hooks(store: ArtifactStore) -> TamperableStore:
    """``store`` typed as having the test hooks, or TypeError naming the ones it lacks."""
    if isinstance(store, TamperableStore):
        return store
    hooks = sorted(name for name in vars(TamperableStore) if name.startswith("_tamper"))
    missing = [name for name in hooks if not hasattr(store, name)]
    raise TypeError(
        f"store {store.location} ({type(store).__name__}) lacks the test hooks "
        f"{', '.join(missing)}; fix: implement them (see traces.conformance.TamperableStore)"
    )


@dataclass(frozen=True)
class RunSpec:
    """A run to write for a runs-list check: its head's fields and, when it has ended, the
    ``(router, chosen values, reason)`` of each of its decisions (None: still running, no
    record)."""

    run_id: str
    pipeline: str
    status: str
    seed: int
    started_at: float
    decisions: tuple[tuple[str, tuple[str, ...], str], ...] | None = None


def write_run(store: ArtifactStore, spec: RunSpec) -> str | None:
    """Write ``spec``'s records (one step per decision) and head; return its root hash. The
    records are real record types, hashed and stored through the API, but no event log is
    written: a runs list reads heads and records only."""
    root: str | None = None
    if spec.decisions is not None:
        steps: list[tuple[str, str]] = []
        agent = AgentRef(name="conformance", version="1", config_hash=digest(b"{}"))
        for i, (router, chosen, reason) in enumerate(spec.decisions):
            decision = Decision(
                router=router,
                router_version="1",
                candidates=sorted(set(chosen) | {"other"}),
                chosen=list(chosen),
                reason=reason,
            )
            step = StepRecord(
                step_id=f"n{i:04d}",
                node=f"n{i:04d}",
                agent=agent,
                decisions=[store.put_value(decision.model_dump(mode="json"))],
                status="ok",
                logical_time=i,
            )
            steps.append((step.step_id, store.put_value(step.model_dump(mode="json"))))
        record = RunRecord(
            pipeline=spec.pipeline,
            spec_hash=digest(spec.pipeline.encode()),
            inputs={},
            seed=spec.seed,
            steps=steps,
            steps_root=steps_root(steps),
            outputs={},
            status="failed" if spec.status == "failed" else "ok",
        )
        root = store.put_value(record.model_dump(mode="json"))
    head = RunHead(
        run_id=spec.run_id,
        pipeline=spec.pipeline,
        spec_hash=digest(spec.pipeline.encode()),
        seed=spec.seed,
        status=spec.status,
        root_hash=root,
        started_at=spec.started_at,
        finished_at=None if root is None else spec.started_at + 1.0,
    )
    store.write_run_head(spec.run_id, head.to_bytes())
    return root


def _all_pages(index: RunIndex, where: RunFilter, limit: int) -> list[Any]:
    runs: list[Any] = []
    after: str | None = None
    while True:
        page = index.page(where, limit=limit, after=after)
        runs.append(page.runs)
        if page.next is None:
            return runs
        after = page.next


def assert_index_agrees(
    store: ArtifactStore, filters: Iterable[RunFilter], limits: Sequence[int] = (1, 3, 50)
) -> None:
    """Assert that ``store.run_index()`` gives what :class:`ScanIndex` gives on ``store``: the
    same pages (runs and their fields, split at the same places by the same cursors) for each
    filter and page size, the same counts and the same pipelines. A store without an index of
    its own passes."""
    index = store.run_index()
    if index is None:
        return
    scan = ScanIndex(store)
    assert index.pipelines() == scan.pipelines(), (index.pipelines(), scan.pipelines())
    for where in filters:
        assert index.count(where) == scan.count(where), where
        for limit in limits:
            got, want = _all_pages(index, where, limit), _all_pages(scan, where, limit)
            assert got == want, (where, limit, got, want)


def sample_specs(seed: int, n: int) -> list[RunSpec]:
    """``n`` runs drawn from ``seed``: a few pipelines and statuses, start times with ties,
    decisions whose text repeats across runs (and differs in case)."""
    rng = random.Random(seed)
    words = ["escalated", "ESCALATED", "all agree", "small", "large", "σ 0.5", "Straße"]
    specs = []
    for i in range(n):
        status = rng.choice(["running", "ok", "ok", "failed", "cancelled"])
        decisions = None
        if status != "running":
            decisions = tuple(
                (rng.choice(["acar", "tcar"]), (rng.choice(words[3:5]),), rng.choice(words))
                for _ in range(rng.randrange(3))
            )
        specs.append(
            RunSpec(
                run_id=f"run-{i:03d}",
                pipeline=rng.choice(["alpha", "beta", "gamma"]),
                status=status,
                seed=rng.randrange(3),
                started_at=1_700_000_000.0 + rng.randrange(n // 2 + 1),
                decisions=decisions,
            )
        )
    return specs


def sample_filters() -> list[RunFilter]:
    """Filters over :func:`sample_specs`' populations: each field alone, and some together."""
    return [
        RunFilter(),
        RunFilter(pipeline="alpha"),
        RunFilter(status="running"),
        RunFilter(status="ok", seed=1),
        RunFilter(started_from=1_700_000_003.0, started_before=1_700_000_008.0),
        RunFilter(text="escalated"),
        RunFilter(text="STRASSE"),
        RunFilter(text="tcar: large", pipeline="beta"),
        RunFilter(text="nothing like it"),
    ]


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

    # -- the ledger (for a store with supports_ledger) ----------------------------------------

    def test_ledger_appends_get_dense_indexes_and_read_back(self) -> None:
        def check(store: ArtifactStore) -> None:
            if not store.supports_ledger:
                return
            assert store.ledger_size() == 0
            assert store.ledger_read() == []
            entries = [b'{"entry":%d}' % i for i in range(20)]
            entries[7] = bytes(b for b in range(256) if b != 10)  # every byte but the newline
            entries[8] = b"\r"
            entries[9] = b"x" * LEDGER_ENTRY_LIMIT  # the largest accepted
            for i, entry in enumerate(entries):
                assert store.ledger_append(entry) == i, "indexes must be 0, 1, 2 ..."
            assert store.ledger_size() == 20
            assert store.ledger_read() == entries
            assert store.ledger_read(5) == entries[5:]
            assert store.ledger_read(3, 9) == entries[3:9]
            assert store.ledger_read(19, 20) == [entries[19]]
            assert store.ledger_read(4, 4) == []
            assert store.ledger_read(20) == []
            assert store.ledger_read(15, 1000) == entries[15:], "a range past the end is cut"
            assert store.ledger_read(50, 60) == []
            for start, stop in ((-1, None), (3, 2), (0, -1)):
                try:
                    store.ledger_read(start, stop)
                except ValueError:
                    continue
                raise AssertionError(f"ledger_read({start}, {stop}) must raise ValueError")
            assert store.run_ids() == [] and list(store.keys()) == [], "entries are not runs"

        self._with_store(check)

    def test_ledger_compare_and_append(self) -> None:
        def check(store: ArtifactStore) -> None:
            if not store.supports_ledger:
                return
            assert store.ledger_append(b"late", at=1) is None  # empty: only at=0 appends
            assert store.ledger_size() == 0, "a refused compare-and-append wrote something"
            assert store.ledger_append(b"genesis", at=0) == 0
            assert store.ledger_append(b"genesis again", at=0) is None
            assert store.ledger_append(b"second", at=1) == 1
            assert store.ledger_append(b"gap", at=3) is None
            assert store.ledger_append(b"third") == 2
            assert store.ledger_read() == [b"genesis", b"second", b"third"]

        self._with_store(check)

    def test_ledger_refuses_invalid_entries(self) -> None:
        def check(store: ArtifactStore) -> None:
            if not store.supports_ledger:
                return
            assert store.ledger_append(b"first") == 0
            bad_entries: list[tuple[object, type[Exception]]] = [
                (b"", ValueError),
                (b"two\nlines", ValueError),
                (b"ends with a newline\n", ValueError),
                (b"\n", ValueError),
                (b"x" * (LEDGER_ENTRY_LIMIT + 1), ValueError),
                ("text", TypeError),
                (bytearray(b"mutable"), TypeError),
                (None, TypeError),
            ]
            for entry, error in bad_entries:
                try:
                    store.ledger_append(entry)  # type: ignore[arg-type]
                except error as exc:
                    assert "fix:" in str(exc) or error is TypeError, str(exc)
                    continue
                raise AssertionError(f"ledger entry {entry!r:.40} must raise {error.__name__}")
            for at in (-1, "1", 1.0, True):
                try:
                    store.ledger_append(b"x", at=at)  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    continue
                raise AssertionError(f"at={at!r} must be refused")
            assert store.ledger_read() == [b"first"], "a refused entry was written"

        self._with_store(check)

    def test_ledger_racing_threads_get_distinct_dense_indexes(self) -> None:
        def check(store: ArtifactStore) -> None:
            if not store.supports_ledger:
                return
            given: list[tuple[int | None, bytes]] = []
            errors: list[BaseException] = []

            def appender(n: int) -> None:
                try:
                    for i in range(50):
                        entry = b'{"thread":%d,"i":%d}' % (n, i)
                        given.append((store.ledger_append(entry), entry))
                except BaseException as exc:  # re-raised below on the main thread
                    errors.append(exc)

            _on_threads(appender, 6, errors)
            assert sorted(i for i, _ in given if i is not None) == list(range(300))
            entries = store.ledger_read()
            assert len(entries) == 300 == store.ledger_size()
            for index, entry in given:
                assert index is not None and entries[index] == entry, "an entry is misplaced"

        self._with_store(check)

    def test_ledger_compare_and_append_races_lose_nothing(self) -> None:
        def check(store: ArtifactStore) -> None:
            if not store.supports_ledger:
                return
            won: list[tuple[int, bytes]] = []
            errors: list[BaseException] = []

            def racer(n: int) -> None:
                try:
                    for i in range(30):
                        size = store.ledger_size()
                        entry = b'{"racer":%d,"try":%d}' % (n, i)
                        index = store.ledger_append(entry, at=size)
                        if index is not None:
                            assert index == size, f"appended at {index}, not at {size}"
                            won.append((index, entry))
                except BaseException as exc:  # re-raised below on the main thread
                    errors.append(exc)

            _on_threads(racer, 6, errors)
            assert won, "no compare-and-append succeeded"
            # Exactly the entries whose writers were told they won, each at its index.
            assert store.ledger_read() == [entry for _, entry in sorted(won)]

        self._with_store(check)

    def test_checkpoints_write_replace_read_and_list(self) -> None:
        def check(store: ArtifactStore) -> None:
            if not store.supports_ledger:
                return
            assert store.checkpoint_sizes() == []
            assert store.read_checkpoint(0) is None
            # A checkpoint note is several lines (a signed note), any bytes.
            note = b"example.org/log\n3\nq83vZ+0Q1h1DxLdxUfmkrLzPj=\n\n\xe2\x80\x94 k AAEC\n"
            store.write_checkpoint(3, note)
            for size in (10, 0, 2, 2**40):
                store.write_checkpoint(size, b"note %d" % size)
            assert store.read_checkpoint(3) == note
            store.write_checkpoint(3, b"replaced")
            assert store.read_checkpoint(3) == b"replaced"
            assert store.read_checkpoint(2**40) == b"note %d" % 2**40
            assert store.read_checkpoint(4) is None
            assert store.checkpoint_sizes() == [0, 2, 3, 10, 2**40]
            bad: list[tuple[object, object]] = [(-1, b"n"), ("3", b"n"), (3, b""), (3, "n")]
            bad.append((3, b"x" * (LEDGER_ENTRY_LIMIT + 1)))
            for bad_size, bad_note in bad:
                try:
                    store.write_checkpoint(bad_size, bad_note)  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    continue
                raise AssertionError(f"write_checkpoint({bad_size!r}, {bad_note!r:.20}) worked")
            assert store.read_checkpoint(3) == b"replaced"
            assert store.ledger_size() == 0, "checkpoints are not entries"

        self._with_store(check)

    def test_reopened_store_keeps_the_ledger(self) -> None:
        if not self.persistent:
            return
        with tempfile.TemporaryDirectory() as tmp:
            store = self.make_store(Path(tmp))
            if not store.supports_ledger:
                store.close()
                return
            for i in range(3):
                store.ledger_append(b"entry %d" % i)
            store.write_checkpoint(3, b"three")
            store.close()
            again = self.make_store(Path(tmp))
            try:
                assert again.ledger_size() == 3
                assert again.ledger_read() == [b"entry 0", b"entry 1", b"entry 2"]
                assert again.ledger_append(b"entry 3", at=2) is None
                assert again.ledger_append(b"entry 3") == 3
                assert again.ledger_read(3) == [b"entry 3"]
                assert again.checkpoint_sizes() == [3]
                assert again.read_checkpoint(3) == b"three"
            finally:
                again.close()

    # -- the test hooks (for a store that has them all) --------------------------------------

    def test_tamper_hooks_change_what_they_say(self) -> None:
        def check(store: ArtifactStore) -> None:
            if not isinstance(store, TamperableStore):
                return
            hooks = tamper_hooks(store)
            key, other = store.put(b"blob"), store.put(b"other")
            store.write_run_head("r1", b"h1")
            store.write_run_head("r2", b"h2")
            lines = [b'{"i":%d}' % i for i in range(3)]
            for line in lines:
                store.append_event("r1", line)
            entries = [b"entry %d" % i for i in range(4)]
            if store.supports_ledger:
                for entry in entries:
                    store.ledger_append(entry)
                store.write_checkpoint(2, b"two")
                store.write_checkpoint(4, b"four")
            if store.supports_claims:
                store.swap_claim("input-1", None, b"held")
            snapshot = hooks._tamper_snapshot()

            hooks._tamper_delete_blob(key)
            assert not store.has(key) and store.has(other)
            hooks._tamper_delete_head("r1")
            assert store.read_run_head("r1") is None and store.run_ids() == ["r2"]
            hooks._tamper_set_events("r1", [lines[2], lines[0]])
            assert store.read_events("r1") == [lines[2], lines[0]]
            store.append_event("r1", b"next")  # appends go on after the new last line
            assert store.read_events("r1") == [lines[2], lines[0], b"next"]
            hooks._tamper_set_events("r1", [])
            assert store.read_events("r1") == []
            store.put(b"written after the snapshot")
            store.write_run_head("r3", b"h3")
            if store.supports_ledger:
                hooks._tamper_ledger(1, b"forged")
                assert store.ledger_read() == [entries[0], b"forged", *entries[2:]]
                hooks._tamper_truncate_ledger(2)
                assert store.ledger_read() == [entries[0], b"forged"]
                assert store.ledger_size() == 2
                assert store.ledger_append(b"after the cut") == 2
                hooks._tamper_delete_checkpoint(2)
                assert store.checkpoint_sizes() == [4]
                store.write_checkpoint(9, b"nine")
            if store.supports_claims:
                assert store.swap_claim("input-1", b"held", b"changed")

            hooks._tamper_restore(snapshot)
            assert list(store.keys()) == sorted([key, other])
            assert store.get(key) == b"blob"
            assert store.run_ids() == ["r1", "r2"] and store.read_run_head("r1") == b"h1"
            assert store.read_events("r1") == lines
            store.append_event("r1", b'{"i":3}')  # the restored log goes on from its end
            assert store.read_events("r1") == [*lines, b'{"i":3}']
            if store.supports_ledger:
                assert store.ledger_read() == entries and store.ledger_size() == 4
                assert store.checkpoint_sizes() == [2, 4]
                assert store.read_checkpoint(2) == b"two"
                assert store.ledger_append(b"entry 4") == 4
            if store.supports_claims:
                assert store.read_claim("input-1") == b"held"
            assert store.get(store.put(b"after the restore")) == b"after the restore"

        self._with_store(check)

    # -- the runs index (for a store that keeps one) ------------------------------------------

    def test_run_index_agrees_with_the_scan(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            store = self.make_store(Path(tmp))
            try:
                if store.run_index() is None:
                    return
                specs = sample_specs(7, 40)
                for spec in specs[:30]:
                    write_run(store, spec)
                assert_index_agrees(store, sample_filters())
                # More runs, running ones ending, a head that is no head, one rewritten with
                # the same record and another status: each seen by the next query.
                for spec in specs[30:]:
                    write_run(store, spec)
                for spec in specs[:30]:
                    if spec.decisions is None:
                        ended = ((spec.pipeline, ("large",), "escalated at the end"),)
                        write_run(store, replace(spec, status="ok", decisions=ended))
                store.write_run_head(specs[1].run_id, b"not a head")
                done = next(s for s in specs[2:] if s.decisions is not None)
                write_run(store, replace(done, status="superseded"))
                assert_index_agrees(store, sample_filters())
                store.flush()
                if self.persistent:
                    store.close()
                    store = self.make_store(Path(tmp))
                    assert_index_agrees(store, sample_filters(), limits=(7,))
            finally:
                store.close()


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
