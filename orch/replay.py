"""Replay: run a recorded pipeline again with every effect served from its record.

Nothing reaches the network: each model or tool call is answered by the response recorded at
the same (step id, effect index), and only if the new request is byte-for-byte the recorded
one. A clean replay reproduces the original root hash. When code, prompts, config or plugin
versions changed so that a request differs, the replay stops at that step, and the report
names the run, the first diverging step and effect, both request hashes and a field-level
diff of the two requests.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from traces import ArtifactStore, RunRecord
from traces.runview import load_run_head

from .effects import Divergence, EffectSource
from .errors import OrchError
from .pipeline import Pipeline
from .resume import recorded_inputs
from .runtime import RunResult, _run

__all__ = ["ReplayReport", "areplay", "recorded_origin"]


def recorded_origin(store: ArtifactStore, run_id: str) -> str | None:
    """The ``FILE.py:NAME`` a run's pipeline came from, as its run_start event recorded it
    (runs started by ``orch run``, or with ``origin={"pipeline": ...}``), else None."""
    for line in store.read_events(run_id)[:1]:
        origin = orjson.loads(line).get("data", {}).get("origin", {})
        if "pipeline" in origin:
            return str(origin["pipeline"])
    return None


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
) -> ReplayReport:
    """Replay finished run ``run_id`` of ``pipeline`` from ``store`` with no live effects."""
    run_id = store.resolve_run(run_id)
    head = load_run_head(store, run_id)
    if head.root_hash is None:
        raise OrchError(
            f"run {run_id} did not finish, so it has no complete record to replay; fix: "
            f"resume it with 'orch run FILE --resume {run_id}'"
        )
    record = RunRecord.model_validate(store.get_value(head.root_hash))
    values = recorded_inputs(pipeline, store, record.inputs)
    result = await _run(
        pipeline,
        values,
        store,
        record.seed,
        max_concurrency,
        None,
        None,
        time.time,
        {"replay_of": run_id},
        mode="replay",
        source=EffectSource.from_run(store, run_id),
        services=services,
    )
    return ReplayReport(
        run_id=run_id,
        result=result,
        expected_root=head.root_hash,
        divergences=list(result.divergences),
        spec_changed=pipeline.spec_hash != record.spec_hash,
    )
