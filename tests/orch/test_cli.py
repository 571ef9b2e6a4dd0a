"""The orch command line: run, runs, show, verify, plugins, and its error handling."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
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
        (["show", "no-such-run"], "no store at .orch"),  # reading never makes a store
        (["verify", "no-such-run"], "no store at .orch"),
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


# -- user mistakes: one line naming the thing and the fix, exit 2, nothing created ------------


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root`` with its size and modification time."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


def one_line_error(result: Result, *fragments: str) -> str:
    """The single stderr line of a user mistake: exit 2, 'error: ...; fix: ...', no trace."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("error: ") and "; fix: " in line, line
    for fragment in fragments:
        assert fragment in line, line
    assert "Traceback" not in result.output + result.stderr
    return line


READERS = [
    ["verify", "--all"],
    ["verify", "RUN"],
    ["runs"],
    ["show", "RUN"],
    ["show", "RUN", "--graph"],
    ["diff", "RUN", "RUN"],
    ["report", "RUN"],
    ["replay", "RUN"],
]


@pytest.mark.parametrize("location", ["typo", "typo.db", "sqlite:///{tmp}/x/typo.db", None])
@pytest.mark.parametrize("args", READERS, ids=lambda a: " ".join(a))
def test_reading_commands_never_create_a_store(
    cli: CliRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    location: str | None,
) -> None:
    before = snapshot(tmp_path)
    argv = [a.replace("RUN", "20260101-000000-00000000") for a in args]
    if location is not None:
        loc = location.format(tmp=tmp_path)
        if args == ["runs"]:  # also through the environment
            monkeypatch.setenv("ORCH_STORE", loc)
        else:
            argv += ["--store", loc]
    shown = loc if location is not None else ".orch"
    shown = shown.removeprefix("sqlite://")
    one_line_error(cli.invoke(app, argv), f"no store at {shown}", "fix: check --store / ORCH_STORE")
    assert snapshot(tmp_path) == before  # no directory, no SQLite file


def test_reading_commands_still_read_an_existing_store(cli: CliRunner) -> None:
    run_id = run_json(cli, "run", FIXTURE, "-i", "x=1", "--store", "runs.db")["run_id"]
    for args in (["runs"], ["show", run_id], ["verify", run_id], ["verify", "--all"]):
        result = cli.invoke(app, [*args, "--store", "runs.db"])
        assert result.exit_code == 0, (args, result.output)
    missing = cli.invoke(app, ["show", "no-such-run", "--store", "runs.db"])
    assert missing.exit_code == 2 and "no run 'no-such-run'" in missing.stderr
    report = cli.invoke(app, ["report", "nope", "--store", "runs.db"])
    assert report.exit_code == 2 and "no run 'nope' in store" in report.stderr


def test_an_empty_directory_is_not_a_store_to_read(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    one_line_error(cli.invoke(app, ["runs", "--store", "empty"]), "no store at empty")
    assert list((tmp_path / "empty").iterdir()) == []


def test_input_file_that_is_not_utf8(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "q.txt").write_bytes("naïve ".encode() + b"caf\xe9 au lait")
    (tmp_path / "markup.py").write_text(MARKUP)
    before = snapshot(tmp_path)
    result = cli.invoke(app, ["run", "markup.py", "-i", "text=@q.txt"])
    one_line_error(result, "--input text", "'q.txt' is not UTF-8", "byte 0xe9 at offset 10")
    assert snapshot(tmp_path) == before


def test_argument_that_is_not_utf8(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "markup.py").write_text(MARKUP)
    before = snapshot(tmp_path)
    # What Python makes of the bytes b"text=ab\xff" on a UTF-8 command line.
    result = cli.invoke(app, ["run", "markup.py", "-i", "text=ab\udcff"])
    line = one_line_error(result, "--input 'text' is not UTF-8", "byte 0xff at byte offset 7")
    assert "64 bits" not in line
    assert snapshot(tmp_path) == before


def test_argument_that_is_not_utf8_in_a_real_process(tmp_path: Path) -> None:
    (tmp_path / "markup.py").write_text(MARKUP)
    done = subprocess.run(
        [sys.executable, "-m", "orch.cli", "run", "markup.py", "-i", b"text=caf\xe9"],
        cwd=tmp_path,
        capture_output=True,
        check=False,
        env={**os.environ, "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8"},
    )
    assert done.returncode == 2, done.stderr
    err = done.stderr.decode()
    assert err.count("\n") == 1 and "byte 0xe9 at byte offset 8" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["markup.py"]


@pytest.mark.parametrize("seed", ["999999999999999999999999999", str(2**63), "-1"])
def test_seed_out_of_range(cli: CliRunner, tmp_path: Path, seed: str) -> None:
    before = snapshot(tmp_path)
    result = cli.invoke(app, ["run", FIXTURE, "-i", "x=1", "--seed", seed])
    line = one_line_error(result, f"--seed {seed} is out of range", "from 0 to 2**63-1")
    assert "string" not in line
    assert snapshot(tmp_path) == before


def test_largest_seed_runs(cli: CliRunner) -> None:
    assert run_json(cli, "run", FIXTURE, "-i", "x=1", "--seed", str(2**63 - 1))["seed"] == 2**63 - 1


def test_show_of_a_malformed_version(cli: CliRunner) -> None:
    run_json(cli, "run", FIXTURE, "-i", "x=1")
    result = cli.invoke(app, ["show", "sha256:zz"])
    line = one_line_error(result, "'sha256:zz' is not a run id")
    assert "orch state sha256:zz" in line and "put()" not in line
    result = cli.invoke(app, ["state", "sha256:zz"])
    line = one_line_error(result, "'sha256:zz' is not a state version")
    assert "sha256: + 64 hex digits" in line


@pytest.mark.parametrize(
    ("given", "recorded"),
    [
        ('"hello"', "hello"),  # a JSON string literal is decoded
        ('"\\"hi\\""', '"hi"'),  # ...so literal quotes are written as JSON
        ('say "hi"', 'say "hi"'),  # other text is taken as it is
        ('"unclosed', '"unclosed'),
        ("42", "42"),  # a str input never becomes a number
    ],
)
def test_str_input_json_string_literal(
    cli: CliRunner, tmp_path: Path, given: str, recorded: str
) -> None:
    (tmp_path / "markup.py").write_text(MARKUP)
    data = run_json(cli, "run", "markup.py", "-i", f"text={given}")
    assert data["outputs"]["answer"]["text"] == recorded


def test_str_input_from_a_file_is_taken_as_it_is(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "markup.py").write_text(MARKUP)
    (tmp_path / "q.txt").write_text('"quoted"')
    data = run_json(cli, "run", "markup.py", "-i", "text=@q.txt")
    assert data["outputs"]["answer"]["text"] == '"quoted"'


def readme_example() -> str:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## A pipeline in thirty lines", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_readme_example_runs_once(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "demo.py").write_text(readme_example())
    data = run_json(cli, "run", "demo.py", "-i", "question=2+2?")
    assert data["status"] == "ok"
    listed = json.loads(cli.invoke(app, ["runs", "--json"]).stdout)
    assert [r["run_id"] for r in listed] == [data["run_id"]]


def test_a_file_that_runs_at_import_is_refused(cli: CliRunner, tmp_path: Path) -> None:
    source = readme_example()
    guard = source.index('if __name__ == "__main__":')
    unguarded = source[:guard] + "\n".join(line.strip() for line in source[guard:].splitlines()[1:])
    assert "\norch.run(" not in source and "result = orch.run(" in unguarded
    (tmp_path / "demo.py").write_text(unguarded)
    before = snapshot(tmp_path)
    result = cli.invoke(app, ["run", "demo.py", "-i", "question=2+2?"])
    one_line_error(
        result, "'demo.py' calls orch.run at import", "guard it with if __name__ == '__main__':"
    )
    assert snapshot(tmp_path) == before  # the file's own run did not start either


def test_read_only_store_simulated(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As root no permission check bites, so write permission is denied by a stand-in for
    os.access: reading works, orch run stops at once with one line and writes nothing."""
    first = run_json(cli, "run", FIXTURE, "-i", "x=1", "--store", "st")["run_id"]
    run_json(cli, "run", FIXTURE, "-i", "x=1", "--store", "st.db")
    real_access = os.access
    store_paths = (str(tmp_path / "st"), str(tmp_path / "st.db"))

    def access(path: Any, mode: int, **kwargs: Any) -> bool:
        if mode & os.W_OK and str(Path(path).absolute()).startswith(store_paths):
            return False
        return real_access(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    for store in ("st", "st.db"):
        before = snapshot(tmp_path / "st") if store == "st" else (tmp_path / "st.db").read_bytes()
        assert cli.invoke(app, ["runs", "--store", store]).exit_code == 0
        assert cli.invoke(app, ["verify", "--all", "--store", store]).exit_code == 0
        result = cli.invoke(app, ["run", FIXTURE, "-i", "x=1", "--store", store])
        one_line_error(result, f"store {store} is read-only", "fix: ")
        after = snapshot(tmp_path / "st") if store == "st" else (tmp_path / "st.db").read_bytes()
        assert after == before
    assert cli.invoke(app, ["show", first, "--store", "st"]).exit_code == 0


NO_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def test_read_only_store_for_real(tmp_path: Path) -> None:
    """The same with real permissions: a process without the capability to override them (as
    root: setpriv drops CAP_DAC_OVERRIDE, so the owner's missing write bit bites)."""
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("running as root, where no permission check bites, and without setpriv")
    orch_cli = [sys.executable, "-m", "orch.cli"]
    prefix = NO_DAC if os.geteuid() == 0 else []

    def orch(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*prefix, *orch_cli, *args], cwd=tmp_path, capture_output=True, text=True, check=False
        )

    for store in ("st", "st.db"):
        made = orch("run", FIXTURE, "-i", "x=1", "--store", store, "--json")
        assert made.returncode == 0, made.stderr
    for path in [tmp_path / "st", *(tmp_path / "st").rglob("*"), tmp_path / "st.db"]:
        path.chmod(path.stat().st_mode & ~0o222)
    tmp_path.chmod(0o555)  # no -wal/-shm files beside the database either
    try:
        before = snapshot(tmp_path)
        for store in ("st", "st.db"):
            listed = orch("runs", "--store", store, "--json")
            assert listed.returncode == 0, listed.stderr
            assert len(json.loads(listed.stdout)) == 1
            assert orch("verify", "--all", "--store", store).returncode == 0
            refused = orch("run", FIXTURE, "-i", "x=1", "--store", store)
            assert refused.returncode == 2, refused.stderr
            assert refused.stderr.count("\n") == 1, refused.stderr
            assert f"store {store} is read-only (no write permission" in refused.stderr
            assert "; fix: " in refused.stderr and "Traceback" not in refused.stderr
        assert snapshot(tmp_path) == before
    finally:
        tmp_path.chmod(0o755)
        for path in [tmp_path / "st", *(tmp_path / "st").rglob("*"), tmp_path / "st.db"]:
            path.chmod(path.stat().st_mode | 0o200)
