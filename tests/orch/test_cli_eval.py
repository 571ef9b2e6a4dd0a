"""``orch eval``: a router over a dataset file, every task a recorded run, a report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orch.cli import app
from routers.eval import Dataset, Sample, Task

PIPELINE = """
from orch import PipelineBuilder
from routers import baselines

p = PipelineBuilder("single-cheap")
p.output("answer", p.node("r", baselines.single.with_config(model="cheap"),
                          question=p.input("question", str)))
pipeline = p.build()
"""


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ORCH_STORE", raising=False)
    tasks = [
        Task(
            id=f"t{i}",
            question=f"Question {i}?",
            gold="A",
            split="test" if i < 6 else "train",
            responses={
                "cheap": [
                    Sample(text="A" if i % 3 else "B", score=float(i % 3 != 0), cost_usd=0.001)
                ],
                "dear": [Sample(text="A", score=1.0, cost_usd=0.01)],
            },
        )
        for i in range(8)
    ]
    data = Dataset(name="cli-tiny", tasks=tasks).save(tmp_path / "tiny.json")
    pipe = tmp_path / "router.py"
    pipe.write_text(PIPELINE)
    return data, pipe


def test_eval_reports_accuracy_cost_and_references(files: tuple[Path, Path]) -> None:
    data, pipe = files
    result = CliRunner().invoke(app, ["eval", str(data), "--pipeline", str(pipe), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["tasks"], report["split"], report["failed"]) == (6, "test", 0)
    assert report["accuracy"] == pytest.approx(4 / 6)  # t0 and t3 are wrong for cheap
    assert report["cost_usd"] == pytest.approx(0.006)
    assert report["reference"]["oracle"]["accuracy"] == 1.0
    runs = [r["run_id"] for r in report["runs"]]
    assert len(runs) == 6
    verified = CliRunner().invoke(app, ["verify", runs[0]])
    assert verified.exit_code == 0, verified.output


def test_eval_prints_a_table(files: tuple[Path, Path]) -> None:
    data, pipe = files
    result = CliRunner().invoke(
        app, ["eval", str(data), "--pipeline", str(pipe), "--split", "train"]
    )
    assert result.exit_code == 0, result.output
    assert "single-cheap on cli-tiny (train, 2 tasks)" in result.stdout
    assert "accuracy" in result.stdout and "zero router AIQ" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no-such-dataset"], "no dataset named 'no-such-dataset'"),
        (["DATA", "--split", "dev"], "is not train, val, test or all"),
    ],
)
def test_eval_user_mistakes_exit_2(files: tuple[Path, Path], args: list[str], message: str) -> None:
    data, pipe = files
    argv = ["eval", *[str(data) if a == "DATA" else a for a in args], "--pipeline", str(pipe)]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
