"""``orch report``: a run id or an evaluation file in, a self-contained HTML file out, and one
clear line (no traceback) for a run or a file that is not there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orch.cli import app
from routers.eval import _evalfile as ef

FIXTURE = str(Path(__file__).parents[1] / "fixtures" / "pipelines.py")


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ORCH_STORE", raising=False)
    return CliRunner()


def recorded_run(cli: CliRunner, *store: str) -> str:
    result = cli.invoke(app, ["run", FIXTURE, "-i", "x=4", *store, "--json"])
    assert result.exit_code == 0, result.output
    return str(json.loads(result.stdout)["run_id"])


def test_run_report_goes_to_the_working_directory_by_default(
    cli: CliRunner, tmp_path: Path
) -> None:
    run_id = recorded_run(cli)
    result = cli.invoke(app, ["report", run_id[:20]])
    assert result.exit_code == 0, result.output
    written = tmp_path / f"report-{run_id}.html"
    assert result.stdout == f"{written}\n"
    page = written.read_text()
    assert f"<h1>Run {run_id}</h1>" in page and 'id="dag-svg"' in page


def test_output_option_and_store_from_the_environment(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = recorded_run(cli, "--store", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("ORCH_STORE", str(tmp_path / "elsewhere"))
    out = tmp_path / "out" / "mine.html"
    out.parent.mkdir()
    result = cli.invoke(app, ["report", run_id, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out) and out.read_text().startswith("<!DOCTYPE html>")
    again = cli.invoke(app, ["report", run_id, "--output", str(tmp_path / "again.html")])
    assert again.exit_code == 0
    assert (tmp_path / "again.html").read_bytes() == out.read_bytes()  # same run, same bytes


def test_evaluation_file_report_is_named_after_the_file(cli: CliRunner, tmp_path: Path) -> None:
    ev = ef.EvalFile(
        title="hand made",
        dataset="d",
        split="test",
        tasks=1,
        references=ef.References(single_models=[ef.PointRecord(label="m", cost=0.01, quality=0.5)]),
        configs=[
            ef.EvalConfig(
                label="only",
                router="r",
                runs=[ef.RunRecord(task="t0", run_id="run-abc", ok=True, score=1.0, cost_usd=0.01)],
            )
        ],
    )
    source = ef.save(ev, tmp_path / "data" / "results.json")
    result = cli.invoke(app, ["report", str(source)])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "results.html").read_text()
    assert result.stdout.strip() == str(tmp_path / "results.html")
    assert "<h1>hand made</h1>" in page and "run-abc" in page
    assert 'id="cost-quality-plot"' in page  # matplotlib comes with the dev extra


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (None, ["nope"], "no store at .orch; fix: check --store"),  # reading makes no store
        (None, ["missing.json"], "cannot read missing.json: No such file or directory"),
        ("dataset", ["data.json"], "no installed package renders data.json's format 'orch.eval"),
        ("text", ["notes.txt"], "notes.txt is not a JSON report file"),
        ("run", ["RUN", "-o", "no/such/dir/x.html"], "cannot write the report to no/such/dir"),
    ],
)
def test_user_errors_are_one_clear_line(
    cli: CliRunner, tmp_path: Path, make: str | None, args: list[str], message: str
) -> None:
    if make == "dataset":
        (tmp_path / "data.json").write_text('{"format": "orch.eval-dataset/1", "tasks": []}')
    elif make == "text":
        (tmp_path / "notes.txt").write_text("not a report\n")
    elif make == "run":
        args = [recorded_run(cli) if a == "RUN" else a for a in args]
    result = cli.invoke(app, ["report", *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert result.stderr.count("error:") == 1


def test_ambiguous_prefix_says_so(cli: CliRunner) -> None:
    recorded_run(cli)
    recorded_run(cli)
    result = cli.invoke(app, ["report", "2"])
    assert result.exit_code == 2
    assert "ambiguous" in result.stderr
