"""Replay: run a recorded pipeline again with every effect served from its record.

Nothing reaches the network: each model or tool call is answered by the response recorded at
the same (step id, effect index), and only if the new request is byte-for-byte the recorded
one. A clean replay reproduces the original root hash. When code, prompts, config or plugin
versions changed so that a request differs, the replay stops at that step, and the report
names the run, the first diverging step and effect, both request hashes and a field-level
diff of the two requests.

Without an explicit pipeline, what to import comes from the record: :func:`check_recorded_pipeline`
says which file and which source files the run records, and which of those differ on disk now,
before anything is imported. :func:`replay_store` gives the store a replay writes to: the store
itself, or an :class:`~traces._overlay.OverlayStore` over it when it must not change.

This module must never import a pipeline file; the caller does, after the check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orch._ask import recorded_answers
from orch._effects import Divergence, EffectSource, RunReader
from orch._events import EventSink
from orch._loader import split_target
from orch._pipeline import Pipeline
from orch._runtime import RunOptions, RunResult, _run, recorded_inputs
from orch._sources import (
    RecordedSources,
    SourceChange,
    check_sources,
    is_source_path,
    read_recorded_sources,
)
from orch.errors import OrchError, PipelineLoadError
from traces import ArtifactStore, OverlayStore, run_origin

__all__ = [
    "write_recorded_sources",
    "RecordedPipeline",
    "ReplayReport",
    "areplay",
    "check_recorded_pipeline",
    "recorded_origin",
    "replay_store",
]


def recorded_origin(store: ArtifactStore, run_id: str) -> str | None:
    """The ``FILE.py:NAME`` a run's pipeline came from, as its run_start event recorded it
    (runs started by ``orch run``, or with ``origin={"pipeline": ...}``), else None."""
    pipeline = run_origin(store, run_id).get("pipeline")
    return pipeline if isinstance(pipeline, str) else None


@dataclass(frozen=True)
class RecordedPipeline:
    """What a run records about its pipeline's code, and how the disk compares now."""

    run_id: str
    target: str
    """``/abs/FILE.py:NAME``, as recorded: what a replay without --pipeline imports."""
    sources: RecordedSources | None
    """The source files the run records; None for a run made before orch recorded them."""
    changes: tuple[SourceChange, ...] = ()
    """Recorded source files that differ on disk now (or are missing), sorted by path."""

    @property
    def file(self) -> Path:
        return split_target(self.target)[0]

    @property
    def name(self) -> str:
        return split_target(self.target)[1]

    @property
    def unchanged(self) -> bool:
        """True when the run records its sources and every one is on disk as recorded."""
        return self.sources is not None and not self.changes


def check_recorded_pipeline(store: ArtifactStore, run_id: str) -> RecordedPipeline | None:
    """Which file the run's pipeline came from and, when the run records its source files,
    which of them differ from the disk now (hashed, never imported). None when the run does
    not say where its pipeline came from.

    A record whose pipeline file is not among its own source files, or whose file resolves
    out of the recorded folder, is a :class:`~orch.errors.PipelineLoadError`: what would be
    imported is then not what was checked."""
    origin = run_origin(store, run_id)
    target = origin.get("pipeline")
    if not isinstance(target, str):
        return None
    sources = RecordedSources.from_origin(origin, run_id)
    if sources is None:
        return RecordedPipeline(run_id, target, None)
    file = split_target(target)[0]
    if str(file.parent) != sources.root or file.name not in sources.files:
        raise PipelineLoadError(
            f"run {run_id} names pipeline file {str(file)!r}, which is not among the source "
            f"files it records under {sources.root!r}; fix: replay it with --pipeline "
            "FILE.py[:NAME] naming code you trust, and verify the store (orch verify)"
        )
    # The loader imports the resolved file and puts its folder on sys.path: check there.
    root = Path(sources.root).resolve()
    if file.resolve() != root / file.name:
        raise PipelineLoadError(
            f"pipeline file {str(file)!r} of run {run_id} resolves to {str(file.resolve())!r}, "
            f"out of its recorded folder {sources.root!r}; fix: replay it with --pipeline "
            "FILE.py[:NAME] naming code you trust"
        )
    return RecordedPipeline(run_id, target, sources, tuple(check_sources(sources, root)))


def write_recorded_sources(store: ArtifactStore, run_id: str, folder: Path) -> str:
    """Write the source files run ``run_id`` recorded (each verified against its key) into
    ``folder``, under their recorded paths, and return the ``FILE.py:NAME`` to replay with:
    the recorded code itself, whatever the disk holds (a bundle replayed on another machine).
    A run that records no sources is a :class:`~orch.errors.PipelineLoadError`."""
    origin = run_origin(store, run_id)
    target = origin.get("pipeline")
    recorded = RecordedSources.from_origin(origin, run_id)
    if not isinstance(target, str) or recorded is None:
        raise PipelineLoadError(
            f"run {run_id} does not record its pipeline's source files, so they cannot be "
            "written out; fix: replay it with --pipeline FILE.py[:NAME]"
        )
    file, name = split_target(target)
    if str(file.parent) != recorded.root or file.name not in recorded.files:
        raise PipelineLoadError(
            f"run {run_id} names pipeline file {str(file)!r}, which is not among the source "
            f"files it records; fix: replay it with --pipeline FILE.py[:NAME]"
        )
    for rel, data in read_recorded_sources(store, recorded).files.items():
        if not is_source_path(rel):  # from_origin refuses these; never write outside folder
            raise PipelineLoadError(f"run {run_id} records a source path {rel!r} outside its root")
        path = folder.joinpath(*rel.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return f"{folder / file.name}:{name}"


def replay_store(store: ArtifactStore, *, record: bool = True) -> ArtifactStore:
    """The store a replay writes its run to: ``store`` itself, or an
    :class:`~traces._overlay.OverlayStore` over it (reads from it, writes kept in memory) when
    ``record`` is False or the store is read-only."""
    if record and not store.read_only:
        return store
    return OverlayStore(store)


@dataclass
class ReplayReport:
    """How a replay went."""

    run_id: str
    """The recorded run."""
    result: RunResult
    """The replay, itself recorded as a new run."""
    expected_root: str
    divergences: list[Divergence] = field(default_factory=list)
    spec_changed: bool = False
    """The pipeline's spec hash differs from the record's (code or config changed)."""
    recorded: bool = True
    """False when the replay ran on an overlay (read-only store, or asked not to record):
    ``result.run_id`` then names a run that is not in the store."""

    @property
    def clean(self) -> bool:
        return not self.divergences and self.result.root_hash == self.expected_root

    @property
    def first_divergence(self) -> Divergence | None:
        # Steps are ordered by causal depth, then id, then effect index: the same answer
        # whichever diverging step the scheduler happened to reach first.
        if not self.divergences:
            return None
        return min(self.divergences, key=lambda d: (d.step_id.count("/"), d.step_id, d.index))

    def to_json(self) -> dict[str, Any]:
        first = self.first_divergence
        return {
            "run_id": self.run_id,
            "replay_run_id": self.result.run_id,
            "clean": self.clean,
            "expected_root_hash": self.expected_root,
            "root_hash": self.result.root_hash,
            "status": self.result.status,
            "spec_changed": self.spec_changed,
            "recorded": self.recorded,
            "first_divergence": first.to_json() if first else None,
            "divergences": [d.to_json() for d in self.divergences],
        }


async def areplay(
    pipeline: Pipeline,
    run_id: str,
    store: ArtifactStore,
    *,
    max_concurrency: int = 64,
    services: Mapping[str, Any] | None = None,
    on_event: EventSink | None = None,
) -> ReplayReport:
    """Replay finished run ``run_id`` of ``pipeline`` from ``store`` with no live effects;
    ``on_event`` hears the replay's events as they happen, as a run's (:mod:`orch._events`)."""
    run_id = store.resolve_run(run_id)
    reader = RunReader(store)  # the recorded run's records, each read and checked once
    head = reader.head(run_id)
    if head.root_hash is None:
        raise OrchError(
            f"run {run_id} did not finish, so it has no complete record to replay; fix: "
            f"resume it with 'orch run FILE --resume {run_id}'"
        )
    record = reader.run_record(head.root_hash)
    # Every effect record is read now, in one pass: a missing or damaged one stops the
    # replay before it writes anything.
    reader.steps([key for _, key in record.steps])
    source = EffectSource.from_run(store, run_id, reader=reader).load()
    values = recorded_inputs(pipeline, store, record.inputs)
    result = await _run(
        pipeline,
        values,
        store,
        record.seed,
        None,
        RunOptions(max_concurrency=max_concurrency, services=services, on_event=on_event),
        {"replay_of": run_id},
        mode="replay",
        source=source,
        answers=recorded_answers(store, run_id),
    )
    return ReplayReport(
        run_id=run_id,
        result=result,
        expected_root=head.root_hash,
        divergences=list(result.divergences),
        spec_changed=pipeline.spec_hash != record.spec_hash,
        recorded=not isinstance(store, OverlayStore),
    )
