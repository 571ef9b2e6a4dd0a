"""Resume: what an interrupted run already finished, so that a new run can take it as done.

A run killed mid-way (or failed) leaves in its store every step it finished: the record, the
``step_end`` event, and an ``effect`` event for every effect completed. Resuming reads those
back: each top-level node that ended ``ok`` is reused with its whole subtree of child
records, and the effects of steps that did not finish are served from the record, so no
completed call is made twice. Because records are content-addressed and the rest of the run
is deterministic, the resumed run's root hash equals that of an uninterrupted run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import TypeAdapter

from traces import ArtifactStore, StepRecord
from traces.runview import load_run_head

from .effects import EffectSource
from .errors import OrchError
from .pipeline import Pipeline
from .runtime import ReusedStep

__all__ = ["ResumePlan", "prepare_resume", "recorded_inputs"]


@dataclass(frozen=True)
class ResumePlan:
    inputs: dict[str, Any]
    seed: int
    reuse: dict[str, ReusedStep]
    effects: EffectSource


def _events(store: ArtifactStore, run_id: str) -> list[dict[str, Any]]:
    events = []
    for line in store.read_events(run_id):
        try:
            events.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            break  # the torn tail of a crash
    return events


def recorded_inputs(
    pipeline: Pipeline, store: ArtifactStore, input_keys: Mapping[str, str]
) -> dict[str, Any]:
    """Decode a recorded run's input artifacts into values of the pipeline's input types."""
    values = {}
    for name, key in input_keys.items():
        if name not in pipeline.inputs:
            raise OrchError(
                f"the recorded run has input {name!r}, which pipeline {pipeline.name!r} no "
                "longer declares; fix: run the pipeline version that made the record"
            )
        values[name] = TypeAdapter(pipeline.inputs[name]).validate_python(store.get_value(key))
    return values


def prepare_resume(
    pipeline: Pipeline,
    store: ArtifactStore,
    run_id: str,
    inputs: Mapping[str, Any] | None,
    seed: int,
) -> ResumePlan:
    """Read what run ``run_id`` finished; refuse when it is not a run of ``pipeline``."""
    run_id = store.resolve_run(run_id)
    head = load_run_head(store, run_id)
    if head.spec_hash != pipeline.spec_hash:
        raise OrchError(
            f"run {run_id} was made by another version of pipeline {head.pipeline!r} (spec "
            f"{head.spec_hash[:19]}..., this one {pipeline.spec_hash[:19]}...); fix: resume "
            "with the pipeline code that started the run, or start a new run"
        )
    events = _events(store, run_id)
    start = next((e for e in events if e.get("type") == "run_start"), None)
    if start is None:
        raise OrchError(f"run {run_id} has no run_start event; it cannot be resumed")
    if inputs:
        raise OrchError(f"resuming run {run_id} uses its recorded inputs; fix: do not pass inputs")
    if seed not in (0, head.seed):
        raise OrchError(
            f"resuming run {run_id} uses its recorded seed {head.seed}; fix: do not pass a seed"
        )
    values = recorded_inputs(pipeline, store, start["data"]["inputs"])
    ended: dict[str, tuple[str, str]] = {}
    for e in events:
        if e.get("type") == "step_end":
            ended[e["step"]] = (e["data"]["record"], e["data"]["status"])

    def subtree(step_id: str, key: str, status: str) -> list[tuple[str, str, str]]:
        rec = StepRecord.model_validate(store.get_value(key))
        out = [(step_id, key, status)]
        for child in rec.children:
            if child not in ended:  # cannot happen for a finished parent; be safe
                raise OrchError(f"run {run_id}: child step {child!r} has no record")
            out.extend(subtree(child, *ended[child]))
        return out

    reuse: dict[str, ReusedStep] = {}
    for node_id in pipeline.order:
        if node_id in ended and ended[node_id][1] == "ok":
            key = ended[node_id][0]
            rec = StepRecord.model_validate(store.get_value(key))
            if rec.output is None:
                continue
            reuse[node_id] = ReusedStep(key, rec.output, tuple(subtree(node_id, key, "ok")))
    return ResumePlan(values, head.seed, reuse, EffectSource.from_run(store, run_id))
