"""The evaluation file (``orch.eval-report/1``): one evaluation's results, saved as JSON.

What ``orch eval --save FILE`` and the reproduction examples write and ``orch report FILE``
renders. One file holds one dataset split and any number of **configurations** (a router at
one setting), each with its summary and every task's result, so each figure can be traced to
the run ids behind it in the store the file names; plus the reference points (single models,
zero router, oracle), cost-quality **curves** with their AIQ, and free-form **tables** (the
ACAR table, say) exactly as the example printed them.

The fields are declared once, in :mod:`orch` (``orch._evalformat``, which ``orch ui`` reads
files with, leniently); the classes here are the writer's: strict (a field the format does not
have is an error) and with what needs ``routers`` (``References.of``, ``EvalConfig.report``).
The file is written whole, atomically (a temporary file renamed into place), so a reader never
sees half of one; :func:`load` names the file and the field when it is not one.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson
from pydantic import ConfigDict, ValidationError

from orch import (
    EVAL_FORMAT,
    EvalConfigOf,
    EvalCurveOf,
    EvalFileOf,
    EvalPoint,
    EvalReferencesOf,
    EvalRun,
    EvalTable,
)
from routers.errors import DatasetError
from routers.eval._dataset import Dataset
from routers.eval._harness import EvalReport, TaskResult
from routers.eval._metrics import Point, aiq
from routers.eval._reference import oracle, single_models, zero_router

__all__ = [
    "EVAL_FORMAT",
    "CurveRecord",
    "EvalConfig",
    "EvalFile",
    "PointRecord",
    "References",
    "RunRecord",
    "TableRecord",
    "config_of",
    "load",
    "save",
]

_STRICT = ConfigDict(extra="forbid")
"""What the writer holds to: a field the format does not have is an error, never dropped
(the fields are declared once, in :mod:`orch`, which reads unknown ones leniently)."""


class RunRecord(EvalRun):
    """One task's run: its id in the store, its grade and what it did."""

    model_config = _STRICT

    def to_result(self) -> TaskResult:
        return TaskResult(**self.model_dump())


class PointRecord(EvalPoint):
    model_config = _STRICT

    @classmethod
    def of(cls, p: Point) -> PointRecord:
        return cls(label=p.label, cost=p.cost, quality=p.quality)

    def point(self) -> Point:
        return Point(self.cost, self.quality, self.label)


class EvalConfig(EvalConfigOf[RunRecord]):
    """One configuration: a router at one setting, measured on every task of the split."""

    model_config = _STRICT

    def report(self, dataset: str, split: str) -> EvalReport:
        out = EvalReport(dataset=dataset, split=split, router=self.router)
        out.results = [r.to_result() for r in self.runs]
        return out


class CurveRecord(EvalCurveOf[PointRecord]):
    """A router's cost-quality points (one per setting) and its AIQ over ``cost_range``."""

    model_config = _STRICT


class TableRecord(EvalTable):
    """A table as printed: a title, column names and rows of cells (numbers or text)."""

    model_config = _STRICT


class References(EvalReferencesOf[PointRecord]):
    """The points every router is measured against, on the same tasks."""

    model_config = _STRICT

    @classmethod
    def of(cls, dataset: Dataset) -> References:
        """The references of ``dataset``'s tasks: single models, the zero router's hull and
        its AIQ over the single models' cost range, the oracle. When the data cannot give a
        hull (no costs, say), ``note`` says why and only the single models are there."""
        scores = single_models(dataset)
        refs = cls(single_models=[PointRecord.of(m.point) for m in scores])
        try:
            hull = zero_router(dataset, scores)
            costs = [m.cost for m in scores if m.cost is not None]
            refs.cost_range = (hull[0].cost, max(costs))
            refs.zero_router = [PointRecord.of(p) for p in hull]
            refs.zero_router_aiq = aiq(hull, refs.cost_range)
            best = oracle(dataset)
            refs.oracle = PointRecord(label="oracle", cost=best.cost, quality=best.quality)
        except ValueError as exc:
            refs.note = str(exc)
        return refs


class EvalFile(EvalFileOf[References, EvalConfig, CurveRecord, TableRecord]):
    """One evaluation as written: see :mod:`orch._evalformat` for the fields."""

    model_config = _STRICT


def config_of(
    report: EvalReport, label: str | None = None, params: dict[str, Any] | None = None
) -> EvalConfig:
    """An :class:`EvalConfig` from the harness's report."""
    return EvalConfig(
        label=label or report.router,
        router=report.router,
        params=dict(params or {}),
        summary=report.summary(),
        runs=[RunRecord(**asdict(r)) for r in report.results],
    )


def save(ev: EvalFile, path: str | os.PathLike[str]) -> Path:
    """Write ``ev`` to ``path`` atomically; returns the path."""
    labels = [c.label for c in ev.configs]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise ValueError(f"configuration labels must be unique; repeated: {', '.join(dup)}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = orjson.dumps(ev.model_dump(mode="json"), option=orjson.OPT_INDENT_2)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        # mkstemp makes the file private (0600); an evaluation file is shared like any other.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def load(path: str | os.PathLike[str]) -> EvalFile:
    """Read an evaluation file; a clear :class:`DatasetError` when it is not one."""
    p = Path(path)
    try:
        raw = orjson.loads(p.read_bytes())
    except FileNotFoundError:
        raise DatasetError(f"evaluation file {p} does not exist") from None
    except orjson.JSONDecodeError as exc:
        raise DatasetError(f"evaluation file {p} is not JSON: {exc}") from None
    if not isinstance(raw, dict) or raw.get("format") != EVAL_FORMAT:
        got = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
        raise DatasetError(
            f"{p} is not an evaluation file (format {got!r}, expected {EVAL_FORMAT!r}); fix: "
            "pass a file written by 'orch eval --save' or an evaluation example"
        )
    try:
        return EvalFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise DatasetError(f"evaluation file {p}: {where}: {first['msg']}") from None
