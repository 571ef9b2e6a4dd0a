"""The orch command line: run, runs, show, verify, plugins, and its error handling."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orch.cli import app

FIXTURE = str(Path(__file__).parents[1] / "fixtures" / "pipelines.py")
QUICKSTART = str(Path(__file__).parents[2] / "examples" / "quickstart.py")


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ORCH_STORE", raising=False)
    return CliRunner()


def run_json(cli: CliRunner, *args: str) -> dict:
    result = cli.invoke(app, [*args, "--json"])
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def test_run_json_has_contract_fields(cli: CliRunner, tmp_path: Path) -> None:
    data = run_json(cli, "run", FIXTURE, "--input", "x=4", "--seed", "3")
    assert data["status"] == "ok"
    assert data["outputs"] == {"sum": {"x": 10}}
    assert data["root_hash"].startswith("sha256:")
    assert data["run_id"]
    assert (tmp_path / ".orch").is_dir()  # the embedded default store


def test_run_twice_same_root_hash(cli: CliRunner) -> None:
    a = run_json(cli, "run", FIXTURE + ":pipeline", "-i", "x=1")
    b = run_json(cli, "run", FIXTURE, "-i", "x=1")
    c = run_json(cli, "run", FIXTURE, "-i", "x=2")
    assert a["run_id"] != b["run_id"]
    assert a["root_hash"] == b["root_hash"] != c["root_hash"]


def test_store_option_and_env(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "runs.db"
    data = run_json(cli, "run", FIXTURE, "-i", "x=1", "--store", str(db))
    assert db.exists()
    monkeypatch.setenv("ORCH_STORE", str(tmp_path / "elsewhere"))
    data2 = run_json(cli, "run", FIXTURE, "-i", "x=1")
    assert (tmp_path / "elsewhere").is_dir()
    assert data["root_hash"] == data2["root_hash"]
    listed = json.loads(cli.invoke(app, ["runs", "--json"]).stdout)
    assert [r["run_id"] for r in listed] == [data2["run_id"]]


def test_failed_run_exit_1_with_error(cli: CliRunner) -> None:
    result = cli.invoke(app, ["run", FIXTURE + ":failing", "-i", "x=1", "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["status"] == "failed"
    assert "node 'bad' failed" in data["error"]["message"]
    assert "ValueError" in data["error"]["type"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "nope.py"], "does not exist"),
        (["run", FIXTURE + ":missing"], "has no object named 'missing'"),
        (["run", FIXTURE + ":invalid"], "type-mismatch"),
        (["run", FIXTURE], "missing input 'x'"),
        (["run", FIXTURE, "-i", "x=abc"], "input 'x'"),
        (["run", FIXTURE, "-i", "noequals"], "is not KEY=VALUE"),
        (["show", "no-such-run"], "no run 'no-such-run'"),
        (["verify", "no-such-run"], "no run 'no-such-run'"),
        (["verify"], "give a run id or --all"),
        (["run", FIXTURE, "-i", "x=1", "--store", "postgresql://h/db"], "postgresql"),
    ],
)
def test_user_errors_are_one_clear_line(cli: CliRunner, args: list[str], expected: str) -> None:
    result = cli.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert expected in result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_show_tree_and_graph(cli: CliRunner) -> None:
    data = run_json(cli, "run", FIXTURE, "-i", "x=1")
    shown = cli.invoke(app, ["show", data["run_id"][:18]])
    assert shown.exit_code == 0, shown.output
    for text in (
        "left",
        "right",
        "sum",
        "decision",
        "chose sum",
        "adding is the contract",
        data["root_hash"],
    ):
        assert text in shown.stdout
    graph = cli.invoke(app, ["show", data["run_id"], "--graph"])
    assert graph.stdout.startswith("flowchart TD")
    assert "class n_sum ok" in graph.stdout
    static = cli.invoke(app, ["show", FIXTURE, "--graph"])
    assert "n_left --" in static.stdout
    as_json = json.loads(cli.invoke(app, ["show", data["run_id"], "--json"]).stdout)
    assert set(as_json["steps"]) == {"left", "right", "sum"}
    assert as_json["steps"]["sum"]["decisions"][0]["chosen"] == ["sum"]


def test_verify_ok(cli: CliRunner) -> None:
    data = run_json(cli, "run", FIXTURE, "-i", "x=1")
    result = cli.invoke(app, ["verify", data["run_id"]])
    assert result.exit_code == 0, result.output
    assert "intact" in result.stdout
    report = json.loads(cli.invoke(app, ["verify", data["run_id"], "--json"]).stdout)
    assert report["ok"] is True
    assert report["complete"] is True
    assert report["root_hash"] == data["root_hash"]
    assert cli.invoke(app, ["verify", "--all"]).exit_code == 0


def test_plugins_command(cli: CliRunner, plugin_site: Path) -> None:
    result = cli.invoke(app, ["plugins", "--json"])
    assert result.exit_code == 0
    by_name = {p["name"]: p for p in json.loads(result.stdout)}
    assert by_name["shout"]["ok"] and by_name["shout"]["package"] == "orch-demo-plugin"
    assert not by_name["broken"]["ok"]
    text = cli.invoke(app, ["plugins"])
    assert "orch-broken-plugin" in text.stdout


def test_console_script_runs_quickstart(tmp_path: Path) -> None:
    """The installed `orch` script end to end, on the quickstart, in a scratch directory:
    run one recorded question (its services come from the file), verify, replay."""
    orch_bin = Path(sys.executable).parent / "orch"
    data_file = Path(QUICKSTART).parent / "data" / "routerarena_mmlupro_30.json"
    item = json.loads(data_file.read_text())["items"][0]
    (tmp_path / "q.txt").write_text(item["question"])
    cmd = [str(orch_bin), "run", QUICKSTART, "-i", "question=@q.txt", "--json"]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["outputs"]["answer"]["answer"] == item["answer"]
    assert data["cost_usd"] > 0
    for sub in (["verify", data["run_id"]], ["replay", data["run_id"]]):
        checked = subprocess.run(
            [str(orch_bin), *sub], cwd=tmp_path, capture_output=True, text=True, check=False
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr


MARKUP = """
from pydantic import BaseModel

from orch import Context, PipelineBuilder, agent


class Text(BaseModel):
    text: str


@agent(name="echo", version="1")
async def echo(inp: Text, ctx: Context) -> Text:
    return inp


p = PipelineBuilder("model[cot1]")
p.output("answer", p.node("e", echo, text=p.input("text", str)))
pipeline = p.build()
"""


def test_show_prints_recorded_text_that_looks_like_markup(cli: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "markup.py"
    path.write_text(MARKUP)
    data = run_json(cli, "run", str(path), "-i", "text=gpt-4[greedy_cot1] says [bold]B[/bold]")
    shown = cli.invoke(app, ["show", data["run_id"]])
    assert shown.exit_code == 0, shown.output
    assert "model[cot1]" in shown.stdout
    assert "gpt-4[greedy_cot1] says [bold]B[/bold]" in shown.stdout
    listed = cli.invoke(app, ["runs"])
    assert "model[cot1]" in listed.stdout
