"""Differences between two recorded runs: which steps, decisions and outputs differ; and the
field-level diff of two JSON values that both this and replay's divergence reports use.

Works on what the store holds (finished or not), so it can compare a run with its replay, a
run with a resumed one, or two runs of different pipeline versions. Values are compared by
their keys first (equal keys mean equal bytes) and decoded only to describe a difference.
This module only reads; it must never write to a store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, Field

from ._records import StepRecord
from ._runview import RunView, load_run_view
from ._store import ArtifactStore

__all__ = [
    "ABSENT",
    "FieldChange",
    "RunDiff",
    "StepDiff",
    "diff_runs",
    "field_diff",
    "value_changes",
]


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()
"""The value at a path that one side of a diff does not have."""


@dataclass(frozen=True)
class FieldChange:
    """One difference between two JSON values, at a JSON path (``$.messages[0].content``)."""

    path: str
    expected: Any
    """The value on the first side (the record, in a replay), or :data:`ABSENT`."""
    actual: Any
    """The value on the second side (the new request, in a replay), or :data:`ABSENT`."""

    def describe(self) -> str:
        """``path: old -> new`` with both values as JSON text, each cut to 120 characters."""

        def show(v: Any) -> str:
            if v is ABSENT:
                return "(absent)"
            text = orjson.dumps(v).decode()
            return text if len(text) <= 120 else text[:117] + "..."

        return f"{self.path}: {show(self.expected)} -> {show(self.actual)}"

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "expected": None if self.expected is ABSENT else self.expected,
            "actual": None if self.actual is ABSENT else self.actual,
            "expected_absent": self.expected is ABSENT,
            "actual_absent": self.actual is ABSENT,
        }


def field_diff(expected: Any, actual: Any, path: str = "$") -> list[FieldChange]:
    """Field-level differences between two JSON values, in path order: objects key by key,
    lists of equal length item by item, anything else as a whole (``1`` and ``1.0`` differ)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        out: list[FieldChange] = []
        for key in sorted(set(expected) | set(actual)):
            out.extend(
                field_diff(expected.get(key, ABSENT), actual.get(key, ABSENT), f"{path}.{key}")
            )
        return out
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        out = []
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            out.extend(field_diff(e, a, f"{path}[{i}]"))
        return out
    if expected == actual and type(expected) is type(actual):
        return []
    return [FieldChange(path, expected, actual)]


def value_changes(a: Any, b: Any, path: str = "$") -> list[str]:
    """Human-readable field-level changes from ``a`` to ``b`` (JSON values), values shown as
    Python text cut to 100 characters (``orch diff``)."""

    def show(v: Any) -> str:
        if v is ABSENT:
            return "(absent)"
        text = repr(v)
        return text if len(text) <= 100 else text[:97] + "..."

    return [f"{c.path}: {show(c.expected)} -> {show(c.actual)}" for c in field_diff(a, b, path)]


class StepDiff(BaseModel):
    step_id: str
    change: str
    """``only-in-a``, ``only-in-b`` or ``changed``."""
    details: list[str] = Field(default_factory=list)


class RunDiff(BaseModel):
    run_a: str
    run_b: str
    same_root: bool
    header: list[str] = Field(default_factory=list)
    """Differences in pipeline, spec, seed, inputs, status."""
    steps: list[StepDiff] = Field(default_factory=list)
    outputs: list[str] = Field(default_factory=list)

    @property
    def identical(self) -> bool:
        return self.same_root and not (self.header or self.steps or self.outputs)


def _step_details(store: ArtifactStore, a: StepRecord, b: StepRecord, va: RunView) -> list[str]:
    out: list[str] = []
    if a.agent != b.agent:
        out.append(
            f"agent {a.agent.name}@{a.agent.version} -> {b.agent.name}@{b.agent.version}"
            + (" (config changed)" if a.agent.config_hash != b.agent.config_hash else "")
        )
    if a.status != b.status:
        out.append(f"status {a.status} -> {b.status}" + (f" ({b.reason})" if b.reason else ""))
    for name in ("input", "output"):
        ka, kb = getattr(a, name), getattr(b, name)
        if ka != kb:
            if ka is None or kb is None:
                out.append(
                    f"{name}: {'none' if ka is None else 'present'} -> "
                    f"{'none' if kb is None else 'present'}"
                )
            else:
                out.extend(
                    f"{name} {c}" for c in value_changes(store.get_value(ka), store.get_value(kb))
                )
    if a.decisions != b.decisions:
        da = [store.get_value(k) for k in a.decisions]
        db = [store.get_value(k) for k in b.decisions]
        for i in range(max(len(da), len(db))):
            x = da[i] if i < len(da) else None
            y = db[i] if i < len(db) else None
            if x is None or y is None:
                out.append(f"decision #{i} {'added' if x is None else 'removed'}")
                continue
            if x.get("chosen") != y.get("chosen"):
                out.append(f"decision #{i} chose {x.get('chosen')} -> {y.get('chosen')}")
            out.extend(
                f"decision #{i} {c}"
                for c in value_changes(
                    {k: v for k, v in x.items() if k != "chosen"},
                    {k: v for k, v in y.items() if k != "chosen"},
                )
            )
    if a.effects != b.effects:
        out.append(f"effects: {len(a.effects)} -> {len(b.effects)}, contents differ")
    if a.children != b.children:
        out.append(f"children {a.children} -> {b.children}")
    if a.error != b.error:
        out.append(f"error {a.error} -> {b.error}")
    return out or ["record differs"]


def diff_runs(store: ArtifactStore, run_a: str, run_b: str) -> RunDiff:
    """Compare runs ``run_a`` and ``run_b`` (exact ids) of ``store``."""
    va, vb = load_run_view(store, run_a), load_run_view(store, run_b)
    ha, hb = va.head, vb.head
    diff = RunDiff(
        run_a=run_a,
        run_b=run_b,
        same_root=ha.root_hash is not None and ha.root_hash == hb.root_hash,
    )
    for name in ("pipeline", "spec_hash", "seed", "status"):
        if getattr(ha, name) != getattr(hb, name):
            diff.header.append(f"{name}: {getattr(ha, name)!r} -> {getattr(hb, name)!r}")
    if va.record is not None and vb.record is not None:
        ia, ib = va.record.inputs, vb.record.inputs
        for name in sorted(set(ia) | set(ib)):
            if ia.get(name) != ib.get(name):
                a_val = store.get_value(ia[name]) if name in ia else ABSENT
                b_val = store.get_value(ib[name]) if name in ib else ABSENT
                diff.header.extend(f"input {name} {c}" for c in value_changes(a_val, b_val))
        oa, ob = va.record.outputs, vb.record.outputs
        for name in sorted(set(oa) | set(ob)):
            if oa.get(name) != ob.get(name):
                a_val = store.get_value(oa[name]) if name in oa else ABSENT
                b_val = store.get_value(ob[name]) if name in ob else ABSENT
                diff.outputs.extend(f"{name} {c}" for c in value_changes(a_val, b_val))
    for step_id in sorted(set(va.steps) | set(vb.steps)):
        sa, sb = va.steps.get(step_id), vb.steps.get(step_id)
        if sa is None:
            diff.steps.append(StepDiff(step_id=step_id, change="only-in-b"))
        elif sb is None:
            diff.steps.append(StepDiff(step_id=step_id, change="only-in-a"))
        elif sa.key != sb.key:
            diff.steps.append(
                StepDiff(
                    step_id=step_id,
                    change="changed",
                    details=_step_details(store, sa.record, sb.record, va),
                )
            )
    return diff
