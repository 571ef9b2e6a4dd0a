"""``orch eval`` (a command ``routers`` adds to ``orch``): a router over a dataset file, every
task a recorded run with a fixed id, a report; the same command run again finds its runs."""

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


SWEEP = """
from orch import PipelineBuilder
from routers import baselines


def make(model: str = "cheap"):
    p = PipelineBuilder(f"single")
    p.output("answer", p.node("r", baselines.single.with_config(model=model),
                              question=p.input("question", str)))
    return p.build()
"""


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    """A pipeline file whose ``make(model=...)`` a sweep calls."""
    path = tmp_path / "factory.py"
    path.write_text(SWEEP)
    return path


def test_a_sweep_is_one_configuration_per_value_with_their_aiq(
    files: tuple[Path, Path], tmp_path: Path, factory: Path
) -> None:
    data, _ = files
    argv = ["eval", str(data), "--pipeline", f"{factory}:make", "--sweep", "model=cheap,dear"]
    result = CliRunner().invoke(app, [*argv, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [c["label"] for c in report["configs"]] == [
        'single model="cheap"',
        'single model="dear"',
    ]
    assert [c["accuracy"] for c in report["configs"]] == pytest.approx([4 / 6, 1.0])
    assert [c["params"] for c in report["configs"]] == [{"model": "cheap"}, {"model": "dear"}]
    # The two single models are the zero router's hull, so the sweep's AIQ is the zero
    # router's own.
    (curve,) = report["curves"]
    assert curve["aiq"] == pytest.approx(report["reference"]["zero_router_aiq"])
    table = CliRunner().invoke(app, argv)
    assert table.exit_code == 0, table.output
    assert "2 configurations on cli-tiny" in table.stdout and "zero router's there" in table.stdout


def test_several_pipelines_and_a_saved_file_that_resumes(
    files: tuple[Path, Path], tmp_path: Path, factory: Path
) -> None:
    from routers.eval._evalfile import load

    data, pipe = files
    out = tmp_path / "ev.json"
    argv = ["eval", str(data), "--pipeline", str(pipe), "--pipeline", f"{factory}:make"]
    first = CliRunner().invoke(app, [*argv, "--save", str(out)])
    assert first.exit_code == 0, first.output
    ev = load(out)
    assert [c.label for c in ev.configs] == ["single-cheap", "single"]
    assert ev.tasks == 6 and len(ev.configs[0].runs) == 6 and ev.store
    again = CliRunner().invoke(app, [*argv, "--save", str(out), "--json"])
    assert again.exit_code == 0, again.output
    resumed = json.loads(again.stdout)["configs"]
    assert [c["runs"] for c in resumed] == [
        [r.model_dump(include={"task", "run_id", "score", "cost_usd", "error"}) for r in c.runs]
        for c in ev.configs
    ]  # the same runs: nothing ran again
    assert not (tmp_path / "ev.json.journal").exists()  # the run ids do the resuming
    fresh = CliRunner().invoke(app, [*argv, "--fresh", "--json"])
    assert fresh.exit_code == 0, fresh.output
    renewed = json.loads(fresh.stdout)["configs"]
    assert [c["accuracy"] for c in renewed] == [c["accuracy"] for c in resumed]
    assert renewed[0]["runs"][0]["run_id"] == ev.configs[0].runs[0].run_id.replace(
        "-00000", "-f2-00000"
    )


def test_a_rerun_says_what_it_found_in_the_store(files: tuple[Path, Path]) -> None:
    data, pipe = files
    argv = ["eval", str(data), "--pipeline", str(pipe)]
    first = CliRunner().invoke(app, argv)
    assert first.exit_code == 0, first.output
    assert "already finished in the store" not in first.stdout
    again = CliRunner().invoke(app, argv)
    assert again.exit_code == 0, again.output
    assert "already finished in the store" in again.stdout and "│ 6" in again.stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--sweep", "model"], "is not NAME=V1,V2"),
        (["--sweep", "model=cheap", "--sweep", "model=dear"], "names 'model' twice"),
        (["--sweep", "colour=red"], "unexpected keyword argument 'colour'"),
    ],
)
def test_bad_sweeps_exit_2(
    files: tuple[Path, Path], factory: Path, extra: list[str], message: str
) -> None:
    data, _ = files
    result = CliRunner().invoke(app, ["eval", str(data), "--pipeline", f"{factory}:make", *extra])
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_a_sweep_over_a_built_pipeline_is_refused(files: tuple[Path, Path]) -> None:
    data, pipe = files
    result = CliRunner().invoke(
        app, ["eval", str(data), "--pipeline", str(pipe), "--sweep", "model=dear"]
    )
    assert result.exit_code == 2, result.output
    assert "is a pipeline, not a function" in result.stderr


def test_a_sweep_as_batches_finds_its_runs_on_a_rerun(
    files: tuple[Path, Path], tmp_path: Path, factory: Path
) -> None:
    data, _ = files
    argv = ["eval", str(data), "--pipeline", f"{factory}:make", "--sweep", "model=cheap,dear"]
    batch = [*argv, "--executor", "local", "--store", "runs", "--save", "ev.json"]
    inline = json.loads(CliRunner().invoke(app, [*argv, "--json"]).stdout)
    first = CliRunner().invoke(app, [*batch, "--json"])
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert [c["accuracy"] for c in report["configs"]] == [c["accuracy"] for c in inline["configs"]]
    runs = [[r["run_id"] for r in c["runs"]] for c in report["configs"]]
    assert all(r.startswith("eval-") for rs in runs for r in rs)
    assert runs[0][0].rpartition("-")[0] != runs[1][0].rpartition("-")[0]  # a batch each
    # In this process or through an executor: the same evaluation names the same runs.
    assert [[r["run_id"] for r in c["runs"]] for c in inline["configs"]] == runs
    again = CliRunner().invoke(app, [*batch, "--json"])
    assert again.exit_code == 0, again.output
    assert [[r["run_id"] for r in c["runs"]] for c in json.loads(again.stdout)["configs"]] == runs
    one = ["eval", str(data), "--pipeline", f"{factory}:make", "--sweep", "model=dear"]
    table = CliRunner().invoke(app, [*one, "--executor", "local", "--store", "runs"])
    assert table.exit_code == 0, table.output
    assert "already finished in the store" in table.stdout and runs[1][0][:17] in table.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--journal", "j"], "No such option"),  # removed: the run ids do the resuming
        (["--scheduler", "tcp://127.0.0.1:8786"], "--scheduler and --chunk-size are for"),
        (["--executor", "dask"], "--executor dask needs --scheduler"),
        (["--executor", "ray"], "--executor 'ray' is not one of local, dask"),
        (["--executor", "local", "--store", "memory:"], "'memory:' lives inside one process"),
    ],
)
def test_executor_mistakes_exit_2(files: tuple[Path, Path], args: list[str], message: str) -> None:
    data, pipe = files
    result = CliRunner().invoke(app, ["eval", str(data), "--pipeline", str(pipe), *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
