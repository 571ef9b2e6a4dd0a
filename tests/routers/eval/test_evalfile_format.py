"""The evaluation file's models are declared once, in ``orch`` (which ``orch ui`` reads files
with, leniently); the writer's classes derive from them strictly. What must not change with
that: a field the format does not have is refused at every level, and the keys of a saved file
stand in the documented order (the bytes ``orch eval --save`` writes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import orch
from routers.eval import DatasetError, Sample, Task
from routers.eval import _evalfile as ef
from routers.eval._dataset import Dataset

FILE_KEYS = [
    "format", "title", "dataset", "split", "tasks", "seed", "store", "command",
    "references", "configs", "curves", "tables", "notes",
]  # fmt: skip
RUN_KEYS = [
    "task", "run_id", "root_hash", "ok", "score", "cost_usd", "calls", "answer", "chosen",
    "mode", "sigma", "seconds", "error", "details",
]  # fmt: skip


def saved(tmp_path: Path) -> Path:
    tasks = [
        Task(
            id=f"t{i}",
            question="?",
            gold="A",
            responses={
                "cheap": [Sample(text="AB"[i % 2], score=float(i % 2 == 0), cost_usd=0.001)],
                "dear": [Sample(text="A", score=1.0, cost_usd=0.01)],
            },
        )
        for i in range(4)
    ]
    refs = ef.References.of(Dataset(name="d", tasks=tasks))
    run = ef.RunRecord(task="t0", run_id="r0", ok=True, score=1.0, cost_usd=0.001)
    ev = ef.EvalFile(
        title="t",
        dataset="d",
        split="test",
        tasks=4,
        references=refs,
        configs=[ef.EvalConfig(label="c", router="r", runs=[run])],
        curves=[ef.CurveRecord(label="k", points=[ef.PointRecord(cost=0.002, quality=0.7)])],
        tables=[ef.TableRecord(title="x", columns=["a"], rows=[[1]])],
    )
    return ef.save(ev, tmp_path / "ev.json")


def test_the_writers_classes_are_the_formats_made_strict() -> None:
    pairs = [
        (ef.EvalFile, orch.EvalFileOf),
        (ef.EvalConfig, orch.EvalConfigOf),
        (ef.RunRecord, orch.EvalRun),
        (ef.PointRecord, orch.EvalPoint),
        (ef.CurveRecord, orch.EvalCurveOf),
        (ef.References, orch.EvalReferencesOf),
        (ef.TableRecord, orch.EvalTable),
    ]
    for writer, declared in pairs:
        assert issubclass(writer, declared)
        assert writer.model_config.get("extra") == "forbid"
        assert declared.model_config.get("extra") == "ignore"
        assert list(writer.model_fields) == list(declared.model_fields)
    assert ef.EVAL_FORMAT == orch.EVAL_FORMAT == "orch.eval-report/1"


def test_a_saved_file_keeps_its_keys_in_the_documented_order(tmp_path: Path) -> None:
    raw = json.loads(saved(tmp_path).read_bytes())
    assert list(raw) == FILE_KEYS
    assert list(raw["configs"][0]["runs"][0]) == RUN_KEYS
    assert list(raw["references"]["single_models"][0]) == ["label", "cost", "quality"]
    loaded = ef.load(tmp_path / "ev.json")
    assert isinstance(loaded.configs[0], ef.EvalConfig)  # the writer's classes, nested
    assert isinstance(loaded.configs[0].runs[0], ef.RunRecord)
    assert isinstance(loaded.references, ef.References)
    assert loaded.references.oracle is not None and loaded.references.oracle.point().quality


@pytest.mark.parametrize(
    "where",
    [
        (),
        ("references",),
        ("references", "single_models", 0),
        ("references", "oracle"),
        ("configs", 0),
        ("configs", 0, "runs", 0),
        ("curves", 0),
        ("curves", 0, "points", 0),
        ("tables", 0),
    ],
)
def test_the_writer_refuses_a_field_the_format_does_not_have(
    tmp_path: Path, where: tuple[str | int, ...]
) -> None:
    path = saved(tmp_path)
    raw = json.loads(path.read_bytes())
    node = raw
    for key in where:
        node = node[key]
    node["surprise"] = 1
    path.write_text(json.dumps(raw))
    loc = ".".join(str(k) for k in (*where, "surprise"))
    with pytest.raises(DatasetError, match=f"{loc}: Extra inputs are not permitted"):
        ef.load(path)
