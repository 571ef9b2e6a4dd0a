"""The evaluation file's format, ``orch.eval-report/1`` (``docs/eval.md``): its fields, once.

Two sides use it. ``routers.eval`` writes it and reads it back (``orch eval --save``,
``orch report``), strictly: a field it does not know is an error. ``orch ui`` reads it
leniently, so that a file a newer writer made, with fields added, still opens. The UI may not
import ``routers`` (it sits above ``orch``), so the fields are declared here and each side
derives its own thin classes, adding only a configuration and its behaviour.

How one declaration gives both: the models here ignore unknown fields (pydantic's
``extra="ignore"``), and the writer's subclasses set ``extra="forbid"``. A model that holds
other models is generic in them (``EvalConfigOf[RunT]``, ``EvalFileOf[...]``), so that each
side nests its own classes at every level: the writer's file holds the writer's strict
configurations, runs and points, with their methods; the UI's holds its lenient ones.

Declaration only: nothing here reads or writes a file, computes a figure, or knows either
side's classes. Field order is the file's key order (``save`` dumps in declaration order),
so a field is only ever added at the end of its model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "EVAL_FORMAT",
    # the leaves, used as they are by a lenient reader
    "EvalPoint",
    "EvalRun",
    "EvalTable",
    # the models that hold others, generic in what they hold
    "EvalConfigOf",
    "EvalCurveOf",
    "EvalFileOf",
    "EvalReferencesOf",
]

EVAL_FORMAT = "orch.eval-report/1"
_LENIENT = ConfigDict(extra="ignore")
_EMPTY: Callable[[], Any] = dict
"""The default of a field typed by a type parameter: validated (``validate_default``) into
whichever class the parameter is, so that the default is that class's empty instance."""


class EvalRun(BaseModel):
    """One task's run: its id in the store, its grade and what it did."""

    model_config = _LENIENT
    task: str
    run_id: str
    root_hash: str | None = None
    ok: bool
    score: float
    cost_usd: float
    calls: list[tuple[str, int]] = Field(default_factory=list)
    """(model, calls) pairs."""
    answer: str | None = None
    chosen: list[str] = Field(default_factory=list)
    mode: str | None = None
    sigma: float | None = None
    seconds: float = 0.0
    error: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class EvalPoint(BaseModel):
    """A labelled (cost, quality) point."""

    model_config = _LENIENT
    label: str = ""
    cost: float
    """Mean cost per task, USD."""
    quality: float


class EvalTable(BaseModel):
    """A table as printed: a title, column names and rows of cells (numbers or text)."""

    model_config = _LENIENT
    title: str
    columns: list[str]
    rows: list[list[str | float | int | None]]
    note: str | None = None


RunT = TypeVar("RunT", bound=EvalRun)
PointT = TypeVar("PointT", bound=EvalPoint)
TableT = TypeVar("TableT", bound=EvalTable)
ConfigT = TypeVar("ConfigT", bound="EvalConfigOf[Any]")
CurveT = TypeVar("CurveT", bound="EvalCurveOf[Any]")
ReferencesT = TypeVar("ReferencesT", bound="EvalReferencesOf[Any]")


class EvalConfigOf(BaseModel, Generic[RunT]):
    """One configuration: a router at one setting, measured on every task of the split.

    Type Parameters:
        RunT: the class of its runs.
    """

    model_config = _LENIENT
    label: str
    """Unique within the file, e.g. ``knn λ=0.01``."""
    router: str
    """The pipeline's name."""
    params: dict[str, Any] = Field(default_factory=dict)
    summary: dict[str, Any] = Field(default_factory=dict)
    runs: list[RunT] = Field(default_factory=list)


class EvalCurveOf(BaseModel, Generic[PointT]):
    """A router's cost-quality points (one per setting) and its AIQ over ``cost_range``.

    Type Parameters:
        PointT: the class of its points.
    """

    model_config = _LENIENT
    label: str
    points: list[PointT]
    aiq: float | None = None
    cost_range: tuple[float, float] | None = None


class EvalReferencesOf(BaseModel, Generic[PointT]):
    """The points every router is measured against, on the same tasks.

    Type Parameters:
        PointT: the class of its points.
    """

    model_config = _LENIENT
    single_models: list[PointT] = Field(default_factory=list)
    zero_router: list[PointT] = Field(default_factory=list)
    """The zero router's hull, cheapest first."""
    zero_router_aiq: float | None = None
    oracle: PointT | None = None
    cost_range: tuple[float, float] | None = None
    note: str | None = None


class EvalFileOf(BaseModel, Generic[ReferencesT, ConfigT, CurveT, TableT]):
    """One evaluation: one dataset split, its references, configurations, curves, tables.

    Type Parameters:
        ReferencesT: the class of its references.
        ConfigT: the class of its configurations.
        CurveT: the class of its curves.
        TableT: the class of its tables.
    """

    model_config = _LENIENT
    format: str = EVAL_FORMAT
    title: str
    dataset: str
    split: str
    tasks: int
    """Tasks each configuration ran."""
    seed: int = 0
    store: str | None = None
    """Where the runs are recorded (a store location ``orch show`` takes)."""
    command: str | None = None
    """The command that regenerates this file."""
    references: ReferencesT = Field(default_factory=_EMPTY, validate_default=True)
    configs: list[ConfigT] = Field(default_factory=list)
    curves: list[CurveT] = Field(default_factory=list)
    tables: list[TableT] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    def config(self, label: str) -> ConfigT:
        """The configuration labelled ``label``; KeyError naming the labels there are."""
        for c in self.configs:
            if c.label == label:
                return c
        raise KeyError(
            f"no configuration {label!r} in this evaluation (has: "
            f"{', '.join(c.label for c in self.configs) or 'none'})"
        )
