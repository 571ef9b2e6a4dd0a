"""The replay assertion: a recorded run, replayed offline, must reproduce its own record.

:func:`assert_replays_clean` (and :func:`aassert_replays_clean` for async tests) replays a run
with every effect served from its record, as ``orch replay`` does, and raises an
:class:`AssertionError` that reads like ``orch replay``'s report when the replay diverges:
the first diverging step and effect with both request hashes and the differing fields, or,
when every effect matched but the root hash did not, the steps whose records differ.

The replay runs on an in-memory overlay of the store, so asserting never writes to it (a
test that counts runs afterwards is not disturbed). This module must never make a live
effect: replay mode serves effects from the record or reports a divergence, it never calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import sniffio

from orch._pipeline import Pipeline
from orch._replay import ReplayReport, areplay, replay_store
from orch._runtime import RunResult
from traces import ArtifactStore, RunRecord

__all__ = ["aassert_replays_clean", "assert_replays_clean", "replay_failure"]


async def aassert_replays_clean(
    run: RunResult | str,
    *,
    store: ArtifactStore,
    pipeline: Pipeline,
    services: Mapping[str, Any] | None = None,
) -> RunResult:
    """Replay ``run`` (a result of :func:`orch.arun`, or a run id or unique prefix in
    ``store``) with ``pipeline`` and no live effect; return the replay's result.

    ``services`` are the ones the run was given (a model hub, a tool broker): agents still
    build their requests through them, but nothing they hold is called. Raises
    :class:`AssertionError` describing the first divergence when the replay does not
    reproduce the recorded root hash.
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not this helper's
    run_id = run.run_id if isinstance(run, RunResult) else run
    report = await areplay(pipeline, run_id, replay_store(store, record=False), services=services)
    failure = replay_failure(report, pipeline, store)
    if failure is not None:
        raise AssertionError(failure)
    return report.result


def assert_replays_clean(
    run: RunResult | str,
    *,
    store: ArtifactStore,
    pipeline: Pipeline,
    services: Mapping[str, Any] | None = None,
) -> RunResult:
    """Synchronous :func:`aassert_replays_clean` (starts an event loop: from async code,
    await :func:`aassert_replays_clean` instead)."""
    __tracebackhide__ = True
    try:
        library = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        library = None
    if library is not None:
        raise RuntimeError(
            f"assert_replays_clean() was called inside a running {library} event loop; fix: "
            "await orch.testing.aassert_replays_clean(...) in async code"
        )

    async def replay() -> RunResult:
        return await aassert_replays_clean(run, store=store, pipeline=pipeline, services=services)

    return anyio.run(replay)


def replay_failure(report: ReplayReport, pipeline: Pipeline, store: ArtifactStore) -> str | None:
    """What is wrong with a replay, as the lines of an assertion message; None when clean."""
    if report.clean:
        return None
    lines = [f"run {report.run_id} of pipeline {pipeline.name!r} does not replay clean:"]
    first = report.first_divergence
    if first is not None:
        lines.append(f"  first divergence: {first.describe()}")
        more = len(report.divergences) - 1
        if more:
            lines.append(f"  ({more} more divergence{'s' * (more > 1)} after it)")
    else:
        lines.append(
            f"  every effect matched, but the root hash is {report.result.root_hash}, not the "
            f"recorded {report.expected_root}"
        )
        changed = _changed_steps(store, report)
        if changed:
            lines.append(f"  steps whose records differ: {', '.join(map(repr, changed))}")
    if report.result.error is not None and first is None:
        lines.append(f"  the replay {report.result.status}: {report.result.error.message}")
    if report.spec_changed:
        lines.append("  note: the pipeline spec changed since the run (code, prompts or config)")
    return "\n".join(lines)


def _changed_steps(store: ArtifactStore, report: ReplayReport) -> list[str]:
    # Step records are compared by key: equal keys are equal records, whatever the order.
    recorded = RunRecord.model_validate(store.get_value(report.expected_root))
    before = dict(recorded.steps)
    after = dict(report.result.record.steps)
    return sorted(sid for sid in before.keys() | after.keys() if before.get(sid) != after.get(sid))
