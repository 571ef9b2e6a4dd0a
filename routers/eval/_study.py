"""A study: router configurations evaluated on one split of one dataset, and its evaluation
file, as ``orch eval`` makes them.

* :func:`parse_sweeps` turns ``NAME=V1,V2`` sweeps into every combination of keyword
  arguments; :func:`configurations` loads each pipeline target at each combination, one
  :class:`Configuration` each, with a unique label (``knn k=20 lam=0.01``);
* :class:`Study` is what is evaluated (the dataset, the configurations, split, limit, seed,
  graded output): :meth:`Study.measure` evaluates one configuration with
  :func:`~routers.eval._harness.evaluate`, and :meth:`Study.file` gathers the reports into
  the evaluation file (``orch.eval-report/1``): the references of the evaluated tasks, every
  configuration's runs, and with several configurations the AIQ curve of their points
  against the zero router (:func:`~routers.eval._curves.aiq_curve`).

The command only parses its options, calls these, and renders; a script calls the same. This
module never prints, and runs nothing but :func:`~routers.eval._harness.evaluate`.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orch import Pipeline, load_pipeline
from orch.batch import Executor, Progress
from routers.eval._curves import aiq_curve
from routers.eval._dataset import Dataset
from routers.eval._evalfile import EvalFile, References, config_of
from routers.eval._harness import EvalReport, evaluate
from routers.eval._metrics import Point
from routers.eval.eval_services import eval_data, eval_tasks
from traces import ArtifactStore

__all__ = ["SPLITS", "Configuration", "Study", "config_label", "configurations", "parse_sweeps"]

SPLITS = ("train", "val", "test", "all")
"""The splits an evaluation may run (``all``: every task)."""


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text  # a bare word: a string parameter


def parse_sweeps(sweeps: Sequence[str]) -> list[dict[str, Any]]:
    """``["k=5,20", "lam=0,0.01"]`` -> every combination as keyword arguments, in order
    (values read as JSON, else as text); ``[{}]`` for no sweep. A ValueError with the fix
    for a sweep that is not ``NAME=V1,V2,...`` or names a parameter twice."""
    axes: list[tuple[str, list[Any]]] = []
    for s in sweeps:
        name, sep, values = s.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier() or not values.strip():
            raise ValueError(
                f"--sweep {s!r} is not NAME=V1,V2,...; fix: e.g. --sweep lam=0,0.001,0.01"
            )
        if name in dict(axes):
            raise ValueError(f"--sweep names {name!r} twice; fix: give each parameter once")
        axes.append((name, [_value(v.strip()) for v in values.split(",")]))
    names = [n for n, _ in axes]
    return [
        dict(zip(names, combo, strict=True)) for combo in itertools.product(*(v for _, v in axes))
    ]


def config_label(name: str, params: Mapping[str, Any]) -> str:
    """``NAME k=20 lam=0.01``: a pipeline's name and its parameters as JSON."""
    return " ".join([name, *(f"{k}={json.dumps(v)}" for k, v in params.items())])


@dataclass(frozen=True)
class Configuration:
    """A router at one setting: a pipeline target called with ``params``."""

    label: str
    """Unique within a study."""
    target: str
    """``FILE.py[:NAME]``, as every process that runs it imports it."""
    params: dict[str, Any]
    pipeline: Pipeline
    """The pipeline the target gives with ``params``, loaded here."""


def configurations(targets: Sequence[str], sweeps: Sequence[str] = ()) -> list[Configuration]:
    """Every target at every combination of the sweeps' values (target by target), labelled
    :func:`config_label`; labels that come out equal are numbered (``#1``, ``#2``...)."""
    grid = parse_sweeps(sweeps)
    made = []
    for target in targets:
        for params in grid:
            pipe = load_pipeline(target, params or None)
            made.append(Configuration(config_label(pipe.name, params), target, params, pipe))
    labels = [c.label for c in made]
    if len(set(labels)) < len(labels):
        made = [
            Configuration(f"{c.label} #{i + 1}", c.target, c.params, c.pipeline)
            for i, c in enumerate(made)
        ]
    return made


@dataclass(frozen=True)
class Study:
    """Configurations of routers evaluated on the first ``limit`` tasks of one split."""

    dataset: str
    """A dataset name (read from ``data``, default the data root) or an
    ``orch.eval-dataset`` file: what every process that runs a task can load."""
    configurations: Sequence[Configuration]
    split: str = "test"
    limit: int | None = None
    seed: int = 0
    output: str | None = None
    """The pipeline output to grade (default: each pipeline's only one)."""
    data: str | Path | None = None

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(
                f"split {self.split!r} is not train, val, test or all; fix: give one of them"
            )
        if not self.configurations:
            raise ValueError("a study needs a configuration; fix: give a pipeline to evaluate")

    def tasks(self) -> Dataset:
        """The evaluated tasks, as a dataset (read once per process); a ValueError naming
        the splits there are when the split has none."""
        source = eval_data(self.dataset, self.data, self.split, self.limit)
        chosen = eval_tasks(source.dataset, self.split, self.limit)
        return source.dataset.model_copy(update={"tasks": chosen})

    async def measure(
        self,
        config: Configuration,
        store: ArtifactStore | str | None,
        *,
        executor: Executor | None = None,
        parallel: int = 4,
        fresh: bool = False,
        progress: Progress | None = None,
    ) -> EvalReport:
        """Evaluate ``config`` (see :func:`~routers.eval._harness.evaluate`: ``store`` an open
        store without an executor, a location with one)."""
        return await evaluate(
            config.target,
            self.dataset,
            store,
            executor=executor,
            params=config.params or None,
            data=self.data,
            output=self.output,
            split=self.split,
            limit=self.limit,
            seed=self.seed,
            parallel=parallel,
            progress=progress,
            fresh=fresh,
        )

    def file(self, reports: Sequence[EvalReport], store: str | None = None) -> EvalFile:
        """The evaluation file of ``reports`` (one per configuration, in order), whose runs
        are in the store at ``store``."""
        if len(reports) != len(self.configurations):
            raise ValueError(
                f"{len(reports)} reports for {len(self.configurations)} configurations; fix: "
                "measure every configuration, in order"
            )
        tasks = self.tasks()
        references = References.of(tasks)
        pairs = list(zip(self.configurations, reports, strict=True))
        curves = []
        if len(pairs) > 1:
            points = [Point(r.cost_per_task, r.accuracy, c.label) for c, r in pairs]
            curve = aiq_curve("all configurations", points, references)
            curves = [curve] if curve is not None else []
        routers = dict.fromkeys(c.pipeline.name for c in self.configurations)
        return EvalFile(
            title=f"{', '.join(routers)} on {tasks.name}",
            dataset=tasks.name,
            split=self.split,
            tasks=len(tasks),
            seed=self.seed,
            store=store,
            references=references,
            configs=[config_of(r, c.label, c.params) for c, r in pairs],
            curves=curves,
        )
