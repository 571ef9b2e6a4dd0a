"""The example plugin package (examples/plugin, distribution orch-plugin-example), installed
into the test environment: ``orch plugins`` lists its agent and its command as working, a
pipeline uses its agent by name, and its command runs.

Skips when the package is not installed (``pip install -e examples/plugin``), unless
``ORCH_REQUIRE_PLUGIN_EXAMPLE=1`` (CI sets it), which turns the skip into a failure.
"""

from __future__ import annotations

import json
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

import orch
from orch import Context, PipelineBuilder, agent
from orch.cli import app
from orch.testing import assert_replays_clean
from traces import DirectoryStore, MemoryStore

DIST = "orch-plugin-example"


@pytest.fixture(autouse=True)
def plugin_version() -> str:
    try:
        return version(DIST)
    except PackageNotFoundError:
        reason = f"{DIST} is not installed; fix: pip install -e examples/plugin"
        if os.environ.get("ORCH_REQUIRE_PLUGIN_EXAMPLE") == "1":
            pytest.fail(f"{reason} (ORCH_REQUIRE_PLUGIN_EXAMPLE=1)")
        pytest.skip(f"{reason} (ORCH_REQUIRE_PLUGIN_EXAMPLE=1 turns this skip into a failure)")


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ORCH_STORE", raising=False)
    return CliRunner()


def test_orch_plugins_lists_the_agent_and_the_command(cli: CliRunner, plugin_version: str) -> None:
    result = cli.invoke(app, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    mine = {(p["group"], p["name"]): p for p in json.loads(result.stdout) if p["package"] == DIST}
    assert set(mine) == {("orch.agents", "word-count"), ("orch.cli", "run-stats")}
    for info in mine.values():
        assert info["ok"], info["error"]
        assert info["version"] == plugin_version
    assert mine["orch.agents", "word-count"]["agent"] == "word-count@1"
    assert mine["orch.cli", "run-stats"]["target"] == "orch_plugin_example.cli:register"

    table = cli.invoke(app, ["plugins"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    rows = [line for line in table.stdout.splitlines() if DIST in line]
    assert len(rows) == 2
    assert all("ok" in row and "broken" not in row for row in rows)

    usage = cli.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert "run-stats" in usage.stdout


def test_a_pipeline_uses_the_plugin_agent_by_name(plugin_version: str) -> None:
    p = PipelineBuilder("count-words")
    p.output("counted", p.node("count", "word-count", text=p.input("text", str)))
    pipeline = p.build()
    assert pipeline.plugins == {DIST: plugin_version}

    store = MemoryStore()
    result = orch.run(pipeline, {"text": "the cat saw the dog"}, store=store)
    assert result.ok
    assert result.outputs["counted"].model_dump() == {"words": 5, "commonest": "the"}
    assert result.record.plugins == {DIST: plugin_version}  # replay loads the same plugin
    assert_replays_clean(result, store=store, pipeline=pipeline)


class Text(BaseModel):
    text: str


@agent(name="fails", version="1")
async def fails(t: Text, ctx: Context) -> Text:
    raise ValueError("on purpose")


def test_run_stats_counts_a_stores_runs_by_status(cli: CliRunner, tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    with DirectoryStore(store_dir) as store:
        good = PipelineBuilder("good")
        good.output("n", good.node("count", "word-count", text=good.input("text", str)))
        bad = PipelineBuilder("bad")
        bad.output("t", bad.node("fail", fails, text=bad.input("text", str)))
        for pipeline in (good.build(), good.build(), bad.build()):
            orch.run(pipeline, {"text": "a b"}, store=store)

    result = cli.invoke(app, ["run-stats", "--store", str(store_dir), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"failed": 1, "ok": 2}

    table = cli.invoke(app, ["run-stats", "--store", str(store_dir)])
    assert table.exit_code == 0, table.output
    assert "runs by status" in table.stdout
    rows = {
        tuple(cell.strip() for cell in line.split("│")[1:-1])
        for line in table.stdout.splitlines()
        if line.startswith("│")
    }
    assert rows == {("failed", "1"), ("ok", "2"), ("all", "3")}

    empty = tmp_path / "empty"
    DirectoryStore(empty).close()
    assert cli.invoke(app, ["run-stats", "--store", str(empty), "--json"]).stdout.strip() == "{}"
    assert "no runs in" in cli.invoke(app, ["run-stats", "--store", str(empty)]).stdout


def test_run_stats_refuses_a_missing_store(cli: CliRunner, tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    result = cli.invoke(app, ["run-stats", "--store", str(missing)])
    assert result.exit_code == 2
    assert "error: no store at" in result.stderr
    assert not missing.exists()  # reading never creates a store
