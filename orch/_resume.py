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

from orch._ask import logged_answers
from orch._effects import EffectSource, RunReader
from orch._lineage import lineage_members
from orch._pipeline import Pipeline
from orch._scheduler import ReusedStep
from orch.errors import OrchError
from traces import ArtifactStore, RunHead

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
    logs: dict[str, list[dict[str, Any]]]
    """Run id -> the chained events of each member's log, as read for the plan."""


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


def _ended(reader: RunReader, member: RunHead) -> dict[str, tuple[str, str]]:
    """Step id -> (record key, status) of every step run ``member`` ended: as its run record
    lists them when it has one (read by its key, so its log need not be read and checked),
    else as its intact log says (a run killed before its end)."""
    if member.root_hash is not None:
        steps = reader.run_record(member.root_hash).steps
        records = reader.steps([key for _, key in steps])  # in one pass
        pairs = zip(steps, records, strict=True)
        return {step_id: (key, rec.status) for (step_id, key), rec in pairs}
    return {
        e["step"]: (e["data"]["record"], e["data"]["status"])
        for e in reader.log(member.run_id)
        if e.get("type") == "step_end"
    }


def _subtree(
    reader: RunReader, run_id: str, ended: Mapping[str, tuple[str, str]], step_id: str
) -> list[tuple[str, str, str]]:
    key, status = ended[step_id]
    rec = reader.step(key)
    out = [(step_id, key, status)]
    for child in rec.children:
        if child not in ended:  # cannot happen for a finished parent; be safe
            raise OrchError(f"run {run_id}: child step {child!r} has no record")
        out.extend(_subtree(reader, run_id, ended, child))
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
    reader = RunReader(store)  # each log and record read and checked once, for every use
    head = reader.head(run_id)
    check_same_pipeline(pipeline, head)
    start = reader.start(run_id)
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
        ended = _ended(reader, member)
        # The records of the nodes it finished, read in one pass.
        reader.steps([ended[n][0] for n in pipeline.order if ended.get(n, ("", ""))[1] == "ok"])
        for node_id in pipeline.order:
            if node_id in reuse or ended.get(node_id, ("", ""))[1] != "ok":
                continue
            key = ended[node_id][0]
            rec = reader.step(key)
            if rec.output is None:
                continue
            subtree = _subtree(reader, member.run_id, ended, node_id)
            reuse[node_id] = ReusedStep(key, rec.output, tuple(subtree))
    sources = [EffectSource.from_run(store, m.run_id, reader=reader) for m in members]
    # The effects of the steps that will run are read now (a damaged record stops the resume
    # before it starts); those of the steps taken from the record are never needed.
    taken = {step_id for r in reuse.values() for step_id, _, _ in r.subtree}
    effects = EffectSource.merged(run_id, sources).load(skip=taken)
    input_keys = dict(start["data"]["inputs"])
    answers: dict[str, str] = {}
    for member in members:
        member_start = reader.start(member.run_id)
        answers.update(logged_answers([member_start] if member_start else []))
    # The logs of the runs killed mid-way, which the resume anchors as found.
    logs = {m.run_id: reader.log(m.run_id) for m in members if m.status == "running"}
    return ResumePlan(run_id, tuple(members), input_keys, head.seed, reuse, effects, answers, logs)
