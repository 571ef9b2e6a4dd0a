"""``orch batch``: a pipeline over a JSONL file of inputs, through the local executor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orch.cli import app
from traces import DirectoryStore, verify_run

FIXTURES = Path(__file__).parents[1] / "fixtures"
BATCH = str(FIXTURES / "batch_pipelines.py")
FAILING = str(FIXTURES / "pipelines.py") + ":failing"


@pytest.fixture
def inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ORCH_STORE", raising=False)
    path = tmp_path / "tasks.jsonl"
    lines = [json.dumps({"question": f"What is {i} squared?"}) for i in range(5)]
    path.write_text("\n".join([*lines[:2], "", *lines[2:]]) + "\n")  # a blank line is skipped
    return path


def test_batch_runs_every_line_and_a_rerun_finds_them(inputs: Path, tmp_path: Path) -> None:
    args = ["batch", BATCH, "--inputs", str(inputs), "--store", "runs", "--json"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["executor"] == "local" and report["store"] == str(tmp_path / "runs")
    assert report["summary"] | {"seconds": 0} == {
        "runs": 5,
        "ok": 5,
        "failed": 0,
        "error": 0,
        "retried": [],
        "from_store": 0,
        "failed_runs": [],
        "store_reconnects": None,
        "notices": [],
        "seconds": 0,
    }
    assert report["lines"] == [1, 2, 4, 5, 6]
    runs = report["runs"]
    assert [r["run_id"] for r in runs] == [f"{report['batch_id']}-{i:05d}" for i in range(5)]
    store = DirectoryStore(tmp_path / "runs")
    assert all(verify_run(store, r["run_id"]).ok for r in runs)
    assert set(runs[0]["outputs"]["graded"]) == {"model", "text", "score"}

    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    rerun = json.loads(again.stdout)
    assert rerun["summary"]["from_store"] == 5
    assert [r["root_hash"] for r in rerun["runs"]] == [r["root_hash"] for r in runs]

    text = CliRunner().invoke(app, ["batch", BATCH, "--inputs", str(inputs), "--store", "runs"])
    assert text.exit_code == 0, text.output
    assert f"batch {report['batch_id']}: 5 runs of {BATCH}:pipeline on this process" in text.stdout
    assert "ok 5, failed 0, error 0; already finished in the store 5" in text.stdout
    assert f"orch show {runs[0]['run_id']}" in text.stdout


def test_a_new_seed_or_batch_id_makes_new_runs(inputs: Path) -> None:
    base = ["batch", BATCH, "--inputs", str(inputs), "--store", "runs", "--json"]
    one = json.loads(CliRunner().invoke(app, base).stdout)
    seeded = json.loads(CliRunner().invoke(app, [*base, "--seed", "3"]).stdout)
    named = json.loads(CliRunner().invoke(app, [*base, "--batch-id", "audit-1"]).stdout)
    assert seeded["batch_id"] != one["batch_id"] and seeded["summary"]["from_store"] == 0
    assert named["runs"][0]["run_id"] == "audit-1-00000"
    assert [r["root_hash"] for r in named["runs"]] == [r["root_hash"] for r in one["runs"]]


def test_failed_runs_are_listed_and_exit_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.jsonl").write_text('{"x": 1}\n{"x": 2}\n')
    result = CliRunner().invoke(app, ["batch", FAILING, "--inputs", "x.jsonl", "--store", "s"])
    assert result.exit_code == 1, result.output
    assert "ok 0, failed 2, error 0" in result.stdout
    assert "not ok (2)" in result.stdout and "cannot handle 1" in result.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"question": "a"}\n{"question": \n', "line 2 is not valid JSON"),
        ('{"question": "a"}\n\n["question", "b"]\n', "line 3 is a JSON list, not an object"),
        ('{"question": "a"}\n{"questoin": "b"}\n', "line 2: pipeline 'batch-demo': unknown input"),
        ('{"question": 5}\n', "line 1: pipeline 'batch-demo': input 'question'"),
        ("\n\n", "holds no inputs"),
    ],
)
def test_a_bad_line_is_named_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.jsonl").write_text(content)
    result = CliRunner().invoke(app, ["batch", BATCH, "--inputs", "bad.jsonl", "--store", "s"])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and ("fix:" in result.stderr or "hint:" in result.stderr)
    assert "Traceback" not in result.output
    assert not (tmp_path / "s").exists()  # refused before anything ran


def test_a_missing_inputs_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["batch", BATCH, "--inputs", "nope.jsonl"])
    assert result.exit_code == 2
    assert "cannot read --inputs 'nope.jsonl'" in result.stderr


def test_unknown_executor_and_dask_without_scheduler(inputs: Path) -> None:
    base = ["batch", BATCH, "--inputs", str(inputs), "--store", "runs"]
    ray = CliRunner().invoke(app, [*base, "--executor", "ray"])
    assert ray.exit_code == 2
    assert "--executor 'ray' is not one of local, dask" in ray.stderr
    dask = CliRunner().invoke(app, [*base, "--executor", "dask"])
    assert dask.exit_code == 2
    assert "--executor dask needs --scheduler tcp://HOST:PORT" in dask.stderr
    assert "; fix: give the address 'dask scheduler' prints" in dask.stderr
    stray = CliRunner().invoke(app, [*base, "--scheduler", "tcp://127.0.0.1:8786"])
    assert stray.exit_code == 2 and "are for --executor dask" in stray.stderr
    bad = CliRunner().invoke(app, [*base, "--executor", "dask", "--scheduler", "10.0.0.5"])
    assert bad.exit_code == 2 and "is not of the form tcp://HOST:PORT" in bad.stderr
    assert not Path("runs").exists()


def test_dask_refuses_a_memory_store(inputs: Path) -> None:
    pytest.importorskip("distributed")
    args = ["batch", BATCH, "--inputs", str(inputs), "--store", "memory:"]
    result = CliRunner().invoke(app, [*args, "--executor", "dask", "--scheduler", "tcp://h:1"])
    assert result.exit_code == 2
    assert "store 'memory:' lives inside one process" in result.stderr
