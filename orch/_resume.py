"""Resume: what an interrupted lineage already finished, so that a new run can take it as done.

A run killed mid-way (or failed, or cancelled) leaves in its store every step it finished:
the record, the ``step_end`` event, and an ``effect`` event for every effect completed. So
does every resume of it that was itself interrupted. Resuming reads them all back, for every
run of the lineage (:mod:`orch._lineage`), the first one first: each top-level node that any
of them ended ``ok`` is reused with its whole subtree of child records, and every effect any
of them finished is served from its record, so no completed call is made twice, however many
times the lineage was resumed and from which of its runs. Because records are
content-addressed and the rest of the run is deterministic, the resumed run's root hash
equals that of an uninterrupted run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orch._ask import recorded_answers
from orch._effects import EffectSource
from orch._lineage import lineage_members
from orch._pipeline import Pipeline
from orch._scheduler import ReusedStep
from orch.errors import OrchError
from traces import ArtifactStore, RunHead, StepRecord, chained_events, load_run_head

__all__ = ["ResumePlan", "check_same_pipeline", "prepare_resume"]


@dataclass(frozen=True)
class ResumePlan:
    run_id: str
    """The run resumed."""
    members: tuple[RunHead, ...]
    """Every run of its lineage, the first one first (see :mod:`orch._lineage`)."""
    input_keys: dict[str, str]
    """The recorded inputs' artifact keys (decoded by ``orch._runtime.recorded_inputs``)."""
    seed: int
    reuse: dict[str, ReusedStep]
    effects: EffectSource
    answers: dict[str, str]
    """Question id -> answer key: every answer any run of the lineage was given."""


def check_same_pipeline(pipeline: Pipeline, head: RunHead, what: str = "resume") -> None:
    """Refuse to continue run ``head`` with a pipeline that did not make it, naming both."""
    if head.spec_hash == pipeline.spec_hash:
        return
    if head.pipeline != pipeline.name:
        raise OrchError(
            f"run {head.run_id} was made by pipeline {head.pipeline!r}, not by "
            f"{pipeline.name!r} (spec {head.spec_hash[:19]}..., this one "
            f"{pipeline.spec_hash[:19]}...); fix: {what} it with the file that defines "
            f"{head.pipeline!r} ('orch show {head.run_id}' names it)"
        )
    raise OrchError(
        f"run {head.run_id} was made by another version of pipeline {head.pipeline!r} (spec "
        f"{head.spec_hash[:19]}..., this one {pipeline.spec_hash[:19]}...); fix: {what} with "
        "the pipeline code that started the run, or start a new run"
    )


def _ended(store: ArtifactStore, run_id: str) -> dict[str, tuple[str, str]]:
    """Step id -> (record key, status) of every step the run's intact log says ended."""
    return {
        e["step"]: (e["data"]["record"], e["data"]["status"])
        for e in chained_events(store.read_events(run_id))
        if e.get("type") == "step_end"
    }


def _subtree(
    store: ArtifactStore, run_id: str, ended: Mapping[str, tuple[str, str]], step_id: str
) -> list[tuple[str, str, str]]:
    key, status = ended[step_id]
    rec = StepRecord.model_validate(store.get_value(key))
    out = [(step_id, key, status)]
    for child in rec.children:
        if child not in ended:  # cannot happen for a finished parent; be safe
            raise OrchError(f"run {run_id}: child step {child!r} has no record")
        out.extend(_subtree(store, run_id, ended, child))
    return out


def prepare_resume(
    pipeline: Pipeline,
    store: ArtifactStore,
    run_id: str,
    inputs: Mapping[str, Any] | None,
    seed: int,
) -> ResumePlan:
    """Read what run ``run_id`` and every run of its lineage finished; refuse when it is not
    a run of ``pipeline``, or when its lineage already finished ok. Call it holding the
    lineage's lease, so that what it reads cannot change under it."""
    run_id = store.resolve_run(run_id)
    head = load_run_head(store, run_id)
    check_same_pipeline(pipeline, head)
    first = chained_events(store.read_events(run_id)[:1])
    start = first[0] if first else None
    if start is None or start.get("type") != "run_start":
        raise OrchError(f"run {run_id} has no run_start event; it cannot be resumed")
    if inputs:
        raise OrchError(f"resuming run {run_id} uses its recorded inputs; fix: do not pass inputs")
    if seed not in (0, head.seed):
        raise OrchError(
            f"resuming run {run_id} uses its recorded seed {head.seed}; fix: do not pass a seed"
        )
    members = [m for m in lineage_members(store, run_id) if m.spec_hash == head.spec_hash]
    done = next((m for m in members if m.status == "ok"), None)
    if done is not None:
        already = (
            "finished ok" if done.run_id == run_id else f"was finished ok by run {done.run_id}"
        )
        raise OrchError(
            f"run {run_id} {already}: there is nothing to resume; fix: start a new run, or "
            f"replay it with 'orch replay {done.run_id}'"
        )
    reuse: dict[str, ReusedStep] = {}
    for member in members:
        ended = _ended(store, member.run_id)
        for node_id in pipeline.order:
            if node_id in reuse or ended.get(node_id, ("", ""))[1] != "ok":
                continue
            key = ended[node_id][0]
            rec = StepRecord.model_validate(store.get_value(key))
            if rec.output is None:
                continue
            subtree = _subtree(store, member.run_id, ended, node_id)
            reuse[node_id] = ReusedStep(key, rec.output, tuple(subtree))
    effects = EffectSource.merged(run_id, [EffectSource.from_run(store, m.run_id) for m in members])
    input_keys = dict(start["data"]["inputs"])
    answers: dict[str, str] = {}
    for member in members:
        answers.update(recorded_answers(store, member.run_id))
    return ResumePlan(run_id, tuple(members), input_keys, head.seed, reuse, effects, answers)
