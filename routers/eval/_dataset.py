"""The evaluation dataset: recorded responses of several models to labelled tasks.

An evaluation runs a router over tasks whose model responses were recorded beforehand, so
that every router sees the same answers and a run costs nothing. One schema holds every
source (``orch.eval-dataset/1``), and users bring their own recordings in it::

    {"format": "orch.eval-dataset/1", "name": "my-set", "source": "...", "license": "...",
     "copyable": false,
     "prices": {"model-a": {"input_per_mtok": 0.15, "output_per_mtok": 0.6}},
     "tasks": [
       {"id": "q1", "question": "the prompt as asked", "gold": "B", "split": "test",
        "group": "arc-challenge", "options": ["A", "B", "C", "D"],
        "responses": {"model-a": [{"text": "... so B", "answer": "B", "score": 1.0,
                                   "input_tokens": 120, "output_tokens": 40,
                                   "cost_usd": 0.00004}]}}]}

A task's ``responses`` map each model to its recorded samples (several when the source
sampled a model more than once, as self-consistency and σ-escalation need). A sample's
``score`` is its correctness in [0, 1] as the source graded it (1/0 for exact answers,
fractional for graded metrics); ``answer`` is the extracted, normalised answer when the
source has one, so routers that compare answers (majority vote, σ) compare the same strings.
``cost_usd`` is the recorded cost of the call; when it is absent, cost comes from the token
counts and ``prices`` (USD per million tokens).

``copyable`` says whether the source's license lets the data be copied into a project
(Apache-2.0, CC BY); data without a stated license is read at run time only, never copied.
This module never fetches anything: adapters read files already on disk.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agents.models import RecordedItem, RecordedSample, RecordedSet
from routers.errors import DatasetError

__all__ = [
    "FORMAT",
    "Dataset",
    "Price",
    "Sample",
    "Split",
    "Task",
    "merge",
]

FORMAT: Final = "orch.eval-dataset/1"
Split = Literal["train", "val", "test"]


class Sample(BaseModel):
    """One recorded response of one model to one task."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    text: str = ""
    """The response as the model wrote it ('' when the source kept only its grade)."""
    answer: str | None = None
    """The extracted, normalised answer, when the source has one."""
    score: float | None = Field(default=None, ge=0.0, le=1.0)
    """Correctness in [0, 1] as the source graded it; None when ungraded."""
    input_tokens: int | None = Field(default=None, ge=0)
    output_tokens: int | None = Field(default=None, ge=0)
    cost_usd: float | None = Field(default=None, ge=0.0)
    """The recorded cost of this call, when the source has it."""

    @property
    def correct(self) -> bool:
        """Fully correct (score 1)."""
        return self.score is not None and self.score >= 1.0


class Price(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    input_per_mtok: float = Field(ge=0.0)
    output_per_mtok: float = Field(ge=0.0)


class Task(BaseModel):
    """A question with its gold answer and every model's recorded responses."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str = Field(min_length=1)
    question: str
    gold: str | None = None
    split: Split = "test"
    group: str = ""
    """The sub-dataset the task belongs to (``date``, ``arc-challenge``, a CLINC domain...)."""
    options: list[str] = Field(default_factory=list)
    responses: dict[str, list[Sample]] = Field(default_factory=dict)
    meta: dict[str, Any] = Field(default_factory=dict)
    """Anything else the source records (the oracle model, an intent's domain...)."""


class Dataset(BaseModel):
    """A named set of tasks, with where it came from and how it may be used."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    format: Literal["orch.eval-dataset/1"] = FORMAT
    name: str = Field(min_length=1)
    source: str = ""
    license: str = ""
    copyable: bool = False
    """Whether the license lets the data be copied into a project (else: read at run time)."""
    prices: dict[str, Price] = Field(default_factory=dict)
    """USD per million tokens, per model, for samples without a recorded cost."""
    tasks: list[Task]

    @field_validator("tasks")
    @classmethod
    def _unique_ids(cls, tasks: list[Task]) -> list[Task]:
        seen: set[str] = set()
        dup: set[str] = set()
        for t in tasks:
            (dup if t.id in seen else seen).add(t.id)
        if dup:
            raise ValueError(f"task ids must be unique; repeated: {sorted(dup)[:5]}")
        return tasks

    # -- views -----------------------------------------------------------------------------

    @property
    def models(self) -> list[str]:
        """Every model with a response to some task, sorted."""
        return sorted({m for t in self.tasks for m in t.responses})

    def split(self, name: Split) -> Dataset:
        """The tasks of one split (train to fit, test to report)."""
        return self.model_copy(update={"tasks": [t for t in self.tasks if t.split == name]})

    def complete(self) -> Dataset:
        """The tasks on which every model has a scored sample (routers compared on the same
        footing: a router that picks a model with no recording would otherwise fail)."""
        models = self.models
        return self.model_copy(
            update={
                "tasks": [
                    t
                    for t in self.tasks
                    if all(any(s.score is not None for s in t.responses.get(m, ())) for m in models)
                ]
            }
        )

    def groups(self) -> list[str]:
        return sorted({t.group for t in self.tasks})

    def select(self, *, group: str | None = None, limit: int | None = None) -> Dataset:
        tasks = [t for t in self.tasks if group is None or t.group == group]
        return self.model_copy(update={"tasks": tasks[:limit] if limit is not None else tasks})

    def __iter__(self) -> Iterator[Task]:  # type: ignore[override]
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)

    def cost(self, model: str, sample: Sample) -> float | None:
        """A sample's cost: as recorded, else from its tokens and the model's price."""
        if sample.cost_usd is not None:
            return sample.cost_usd
        price = self.prices.get(model)
        if price is None or sample.input_tokens is None or sample.output_tokens is None:
            return None
        return (
            sample.input_tokens * price.input_per_mtok
            + sample.output_tokens * price.output_per_mtok
        ) / 1e6

    def to_recorded_set(self) -> RecordedSet:
        """The responses in the form :class:`~agents.models.RecordedClient` serves, so runs
        of the real engine get them as model calls."""
        items = [
            RecordedItem(
                id=t.id,
                question=t.question,
                answer=t.gold,
                options=list(t.options),
                responses={
                    m: [
                        RecordedSample(
                            text=s.text or (s.answer or ""),
                            input_tokens=s.input_tokens or 0,
                            output_tokens=s.output_tokens or 0,
                            cost_usd=self.cost(m, s),
                        )
                        for s in samples
                    ]
                    for m, samples in t.responses.items()
                },
            )
            for t in self.tasks
        ]
        return RecordedSet(source=self.source, license=self.license, items=items)

    # -- files -----------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> Dataset:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise DatasetError(f"cannot read dataset {str(path)!r}: {exc.strerror}") from None
        except ValueError as exc:
            raise DatasetError(f"dataset {str(path)!r} is not JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise DatasetError(
                f"{str(path)!r} is not an evaluation dataset (format {found!r}, expected "
                f"{FORMAT!r}); fix: see docs/eval.md for the schema"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise DatasetError(
                f"dataset {str(path)!r} is malformed at {where}: {first['msg']} "
                f"({exc.error_count()} problem(s)); fix: see docs/eval.md for the schema"
            ) from None

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.model_dump_json(indent=1, exclude_defaults=False) + "\n")
        return path


def merge(name: str, parts: Iterable[Dataset], **fields: Any) -> Dataset:
    """One dataset from several (their tasks, prices and the strictest license flag)."""
    parts = list(parts)
    if not parts:
        raise DatasetError(f"dataset {name!r}: nothing to merge")
    prices: dict[str, Price] = {}
    for p in parts:
        prices.update(p.prices)
    return Dataset(
        name=name,
        source=fields.pop("source", "; ".join(dict.fromkeys(p.source for p in parts))),
        license=fields.pop("license", "; ".join(dict.fromkeys(p.license for p in parts))),
        copyable=all(p.copyable for p in parts),
        prices=prices,
        tasks=[t for p in parts for t in p.tasks],
        **fields,
    )
