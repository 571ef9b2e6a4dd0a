"""Adapter of ``routerbench_arc_winogrande_mbpp/``: RouterBench's 0-shot ARC-Challenge,
Winogrande and MBPP, as re-split into train/test by RouterDC, with 11 models' responses, 0/1
grades and per-call USD cost.

Dataset ``routerbench``: one task per question, ``group`` ``arc-challenge`` / ``winogrande``
/ ``mbpp`` and ``split`` from the file name. Each model's sample has ``text`` (the response,
decoded from the CSV's stringified list with :func:`ast.literal_eval`), ``score`` (the 0/1
grade) and ``cost_usd`` (``M|total_cost``); there is no gold answer and no extracted answer
in the source. A model whose grade cell is empty gets no sample (the cells are counted in
:class:`Report`). ``meta`` keeps the source ``sample_id``, the CSV row index(es) and
``oracle_model_to_route_to`` (the cheapest correct model, or ``no_model_correct``).

Two quirks of the source are handled here (see :func:`read_routerbench`):

* 14 ARC ``sample_id`` s have two rows: one where only gpt-3.5 was graded (its prompt is the
  question twice, and it cost twice as much) and one with the other ten models. Rows of one
  file are merged into one task.
  When the two rows are in different files (6 ids), the question is in both train and test:
  both tasks are kept, each marked ``also_in_split``.
* Task ids are ``"{split}/{sample_id}"`` so that those 6 ids stay unique.
* ``oracle_model_to_route_to`` is recomputed with the source's rule (the cheapest model
  graded 1, by ``total_cost``) over the task's samples; it equals the source's value on every
  ordinary row, and where it does not (merged rows, and 3 half rows where the source names
  gpt-3.5 although it was graded 0), the source's values are kept as ``oracle_per_row``.

License: none stated (RouterBench's card states none, RouterDC has no LICENSE), so
``copyable`` is False: read the files at run time, never copy them into a project.
"""

from __future__ import annotations

import ast
import csv
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from routers.eval import Dataset, DatasetError, DataUnavailable, Sample, Split, Task, adapter

__all__ = ["FILES", "LICENSE", "SOURCE", "FileReport", "Report", "read_routerbench"]

log = logging.getLogger(__name__)

SOURCE: Final = (
    "RouterBench 0-shot (Hu et al. 2024, arXiv 2403.12031; HF withmartian/routerbench) as "
    "re-split by RouterDC (github.com/shuhao02/RouterDC @ 0e63989c, datasets/routerbench_zs)"
)
LICENSE: Final = "none stated (RouterBench HF card: none; RouterDC: no LICENSE)"

FILES: Final[dict[str, tuple[str, Split]]] = {
    "arc_challenge_train.csv": ("arc-challenge", "train"),
    "arc_challenge_test.csv": ("arc-challenge", "test"),
    "winograde_train.csv": ("winogrande", "train"),
    "winograde_test.csv": ("winogrande", "test"),
    "mbpp_train.csv": ("mbpp", "train"),
    "mbpp_test.csv": ("mbpp", "test"),
}
"""file -> (group, split). The source spells Winogrande's files ``winograde``."""

NO_MODEL: Final = "no_model_correct"
_RESPONSE: Final = "|model_response"
_COST: Final = "|total_cost"
_FIXED: Final = ("", "sample_id", "prompt", "eval_name", "oracle_model_to_route_to")


@dataclass
class FileReport:
    """What one CSV held."""

    file: str
    group: str
    split: Split
    rows: int = 0
    tasks: int = 0
    missing: dict[str, int] = field(default_factory=dict)
    """model -> rows whose grade cell is empty (no sample from that row)."""
    merged: list[str] = field(default_factory=list)
    """sample ids whose several rows were merged into one task."""


@dataclass
class Report:
    """What the adapter found in the folder, beyond the dataset itself."""

    files: list[FileReport] = field(default_factory=list)
    cross_split: list[str] = field(default_factory=list)
    """sample ids with rows in both the train and the test file."""

    @property
    def missing_cells(self) -> int:
        return sum(n for f in self.files for n in f.missing.values())

    def file(self, name: str) -> FileReport:
        for f in self.files:
            if f.file == name:
                return f
        raise KeyError(name)


def _where(path: Path, line: int, column: str) -> str:
    return f"{path} (data row {line}, column {column!r})"


def _strings(cell: str, path: Path, line: int, column: str) -> list[str]:
    """A stringified Python list of strings, decoded without evaluating code."""
    try:
        value = ast.literal_eval(cell)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        value = None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DatasetError(
            f"{_where(path, line, column)} is not a stringified list of strings "
            f"({cell[:60]!r}); fix: restore the file from the source snapshot"
        )
    return value


def _row_lists(
    row: list[str], cols: list[tuple[int, str]], path: Path, line: int
) -> list[list[str]]:
    """Several stringified-list cells of one row, decoded by one ``literal_eval`` (parsing is
    most of the load time, and its cost is mostly per call); a row the batch cannot decode
    is decoded cell by cell, so an error names the bad cell."""
    try:
        value = ast.literal_eval("[" + ",".join(row[i] for i, _ in cols) + "]")
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        value = None
    if (
        isinstance(value, list)
        and len(value) == len(cols)
        and all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in value)
    ):
        return value
    return [_strings(row[i], path, line, name) for i, name in cols]


def _float(cell: str, path: Path, line: int, column: str) -> float | None:
    if cell == "":
        return None
    try:
        return float(cell)
    except ValueError:
        raise DatasetError(
            f"{_where(path, line, column)} is not a number ({cell[:40]!r}); fix: restore the "
            "file from the source snapshot"
        ) from None


def _prompt(parts: list[str]) -> str:
    """The question: the prompt list's one text (some rows repeat it twice)."""
    if parts and all(p == parts[0] for p in parts):
        return parts[0]
    return "\n\n".join(parts)


def _oracle(samples: dict[str, Sample]) -> str:
    """The source's rule: the cheapest model graded correct, else ``no_model_correct``."""
    right = [
        (s.cost_usd if s.cost_usd is not None else float("inf"), m)
        for m, s in samples.items()
        if s.correct
    ]
    return min(right)[1] if right else NO_MODEL


def _models(header: list[str], path: Path) -> list[str]:
    models = [c for c in header if c not in _FIXED and "|" not in c]
    missing = [
        col
        for col in (
            "sample_id",
            "prompt",
            "oracle_model_to_route_to",
            *(m + sfx for m in models for sfx in (_RESPONSE, _COST)),
        )
        if col not in header
    ]
    if not models or missing:
        raise DatasetError(
            f"{path} lacks RouterBench columns ({', '.join(missing) or 'no model columns'}); "
            "fix: restore the file from the source snapshot (RouterDC datasets/routerbench_zs)"
        )
    return models


def _read_file(path: Path, group: str, split: Split, report: FileReport) -> list[Task]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise DatasetError(f"{path} is empty; fix: restore it from the source") from None
        models = _models(header, path)
        col = {name: i for i, name in enumerate(header)}
        rows = list(reader)
    report.rows = len(rows)
    by_id: dict[str, list[tuple[int, list[str]]]] = {}
    for line, row in enumerate(rows, 1):
        if len(row) != len(header):
            raise DatasetError(
                f"{path} data row {line} has {len(row)} cells, the header {len(header)}; "
                "fix: restore the file from the source snapshot"
            )
        by_id.setdefault(row[col["sample_id"]], []).append((line, row))

    idx = col.get("", 0)
    lists = [(col["prompt"], "prompt")] + [(col[m + _RESPONSE], m + _RESPONSE) for m in models]
    tasks: list[Task] = []
    for sample_id, group_rows in by_id.items():
        decoded = [_row_lists(row, lists, path, line) for line, row in group_rows]
        questions = {_prompt(d[0]) for d in decoded}
        if len(questions) > 1:
            raise DatasetError(
                f"{path} has {len(group_rows)} rows with sample_id {sample_id!r} but different "
                "prompts; fix: give them distinct sample ids"
            )
        samples: dict[str, Sample] = {}
        for (line, row), texts in zip(group_rows, decoded, strict=True):
            for k, m in enumerate(models, 1):
                score = _float(row[col[m]], path, line, m)
                if score is None:
                    report.missing[m] = report.missing.get(m, 0) + 1
                    continue
                if m in samples:
                    continue
                samples[m] = Sample(
                    text="\n".join(texts[k]),
                    score=score,
                    cost_usd=_float(row[col[m + _COST]], path, line, m + _COST),
                )
        meta: dict[str, Any] = {
            "sample_id": sample_id,
            "rows": [int(row[idx]) if row[idx].isdigit() else row[idx] for _, row in group_rows],
            "unscored": [m for m in models if m not in samples],
        }
        oracles = [row[col["oracle_model_to_route_to"]] for _, row in group_rows]
        meta["oracle_model_to_route_to"] = _oracle(samples)
        if len(group_rows) > 1:
            report.merged.append(sample_id)
        if oracles != [meta["oracle_model_to_route_to"]]:
            meta["oracle_per_row"] = oracles
        tasks.append(
            Task(
                id=f"{split}/{sample_id}",
                question=questions.pop(),
                split=split,
                group=group,
                responses={m: [samples[m]] for m in sorted(samples)},
                meta=meta,
            )
        )
    report.tasks = len(tasks)
    return tasks


def read_routerbench(folder: Path) -> tuple[Dataset, Report]:
    """The ``routerbench`` dataset of ``folder``, and a :class:`Report` of what was in it."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    report = Report()
    tasks: list[Task] = []
    for name, (group, split) in FILES.items():
        path = folder / name
        if not path.is_file():
            raise DataUnavailable(
                f"{path} is missing; fix: copy {name} from RouterDC datasets/routerbench_zs "
                f"(commit 0e63989c) into {folder}"
            )
        fr = FileReport(file=name, group=group, split=split)
        tasks.extend(_read_file(path, group, split, fr))
        report.files.append(fr)

    splits: dict[str, set[str]] = {}
    for t in tasks:
        splits.setdefault(t.meta["sample_id"], set()).add(t.split)
    report.cross_split = sorted(s for s, where in splits.items() if len(where) > 1)
    crossing = set(report.cross_split)
    tasks = [
        t.model_copy(
            update={
                "meta": {
                    **t.meta,
                    "also_in_split": sorted(splits[t.meta["sample_id"]] - {t.split}),
                }
            }
        )
        if t.meta["sample_id"] in crossing
        else t
        for t in tasks
    ]
    dataset = Dataset(
        name="routerbench", source=SOURCE, license=LICENSE, copyable=False, tasks=tasks
    )
    return dataset, report


@adapter("routerbench", "routerbench_arc_winogrande_mbpp")
def routerbench(folder: Path) -> Dataset:
    """Dataset ``routerbench`` (ARC-Challenge, Winogrande, MBPP; 11 models) from ``folder``."""
    dataset, report = read_routerbench(folder)
    log.info(
        "routerbench: %d tasks from %d rows; %d empty grade cells; merged %d duplicate ids; "
        "%d ids in both train and test",
        len(dataset),
        sum(f.rows for f in report.files),
        report.missing_cells,
        sum(len(f.merged) for f in report.files),
        len(report.cross_split),
    )
    return dataset
