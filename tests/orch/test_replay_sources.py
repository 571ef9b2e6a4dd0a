"""`orch replay` imports only the code its record names: recorded source files are hashed and
compared before anything is imported; a changed, missing or unlisted file is refused."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import orjson
import pytest
from typer.testing import CliRunner, Result

from orch import arun
from orch._loader import load_pipeline
from orch._replay import check_recorded_pipeline, replay_store
from orch.cli import app
from orch.errors import PipelineLoadError
from traces import DirectoryStore, MemoryStore, digest, open_store
from traces._overlay import OverlayStore

FIXTURES = Path(__file__).parents[1] / "fixtures"
EFFECTS = str(FIXTURES / "effects_pipeline.py")
GOLDEN = FIXTURES / "golden_store"

FLOW = '''"""A pipeline whose output depends on its neighbour module."""
from pydantic import BaseModel

from orch import Context, PipelineBuilder, agent
from replay_helper import PREFIX


class Text(BaseModel):
    text: str


@agent(name="echo", version="1")
async def echo(t: Text, ctx: Context) -> Text:
    return Text(text=PREFIX + t.text)


def _build() -> PipelineBuilder:
    p = PipelineBuilder("echo")
    e = p.node("e", echo, text=p.input("text", str))
    p.output("out", e.field("text"))
    return p


pipeline = _build()
'''
HELPER = 'PREFIX = "Echo: "\n'
# Appended to a file, this leaves a mark when (and only when) the file is imported.
MARK = '\nimport pathlib\npathlib.Path(__file__).with_name("IMPORTED").write_text(__name__)\n'


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """A pipeline folder: flow.py and its neighbour replay_helper.py."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "flow.py").write_text(FLOW)
    (root / "replay_helper.py").write_text(HELPER)
    yield root
    _forget(root)


def _forget(root: Path) -> None:
    """Drop every module loaded from ``root``, so that the next import really reads the disk
    (the CLI runs in this process here; a real ``orch replay`` is a fresh process)."""
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and Path(file).resolve().is_relative_to(root.resolve()):
            del sys.modules[name]


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def _record(root: Path, store: Path) -> str:
    result = _invoke("run", str(root / "flow.py"), "-i", "text=hi", "--store", str(store), "--json")
    assert result.exit_code == 0, result.output
    _forget(root)
    return str(json.loads(result.stdout)["run_id"])


def _origin(store: Path, run_id: str) -> dict[str, object]:
    with open_store(store) as st:
        origin: dict[str, object] = orjson.loads(st.read_events(run_id)[0])["data"]["origin"]
    return origin


def test_orch_run_records_the_pipeline_file_and_its_neighbour(
    project: Path, tmp_path: Path
) -> None:
    run_id = _record(project, tmp_path / "store")
    origin = _origin(tmp_path / "store", run_id)
    assert origin["pipeline"] == f"{(project / 'flow.py').resolve()}:pipeline"
    files = {
        "flow.py": digest((project / "flow.py").read_bytes()),
        "replay_helper.py": digest(HELPER.encode()),
    }
    assert origin["sources"] == {"root": str(project.resolve()), "files": files}
    with open_store(tmp_path / "store") as st:  # the bytes themselves are in the store
        assert st.get(files["replay_helper.py"]) == HELPER.encode()
    verified = _invoke("verify", run_id, "--store", str(tmp_path / "store"))
    assert verified.exit_code == 0, verified.output


def test_unchanged_sources_replay_clean(project: Path, tmp_path: Path) -> None:
    run_id = _record(project, tmp_path / "store")
    result = _invoke("replay", run_id, "--store", str(tmp_path / "store"), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["clean"] is True and report["recorded"] is True
    assert report["sources"] == {"recorded": 2, "enforced": True, "changed": []}
    assert f"will import {(project / 'flow.py').resolve()}, pipeline 'pipeline'" in result.stderr
    assert "lists 2 source file(s)" in result.stderr
    assert "all 2 recorded source file(s) are unchanged" in result.stderr


def test_an_edited_pipeline_file_is_refused_before_it_is_imported(
    project: Path, tmp_path: Path
) -> None:
    store = str(tmp_path / "store")
    run_id = _record(project, tmp_path / "store")
    recorded = digest((project / "flow.py").read_bytes())
    with (project / "flow.py").open("a") as f:
        f.write(MARK)
    now = digest((project / "flow.py").read_bytes())

    result = _invoke("replay", run_id, "--store", store)
    assert result.exit_code == 2, result.output
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert str(project.resolve() / "flow.py") in line
    assert f"recorded {recorded}, now {now}" in line
    assert f"--pipeline {(project / 'flow.py').resolve()}:pipeline" in result.stderr
    assert not (project / "IMPORTED").exists()

    # The mark works: given on purpose, the changed file is imported and runs.
    forced = _invoke("replay", run_id, "--store", store, "--pipeline", str(project / "flow.py"))
    assert forced.exit_code == 0, forced.output
    assert (project / "IMPORTED").exists()
    assert "differing on disk now: flow.py" in forced.stderr


def test_an_edited_neighbour_module_is_refused_the_same_way(project: Path, tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    run_id = _record(project, tmp_path / "store")
    (project / "replay_helper.py").write_text('PREFIX = "Changed: "\n' + MARK)
    now = digest((project / "replay_helper.py").read_bytes())

    result = _invoke("replay", run_id, "--store", store)
    assert result.exit_code == 2, result.output
    assert f"replay_helper.py changed since run {run_id}" in result.stderr
    assert f"recorded {digest(HELPER.encode())}, now {now}" in result.stderr
    assert not (project / "IMPORTED").exists()

    forced = _invoke("replay", run_id, "--store", store, "--pipeline", str(project / "flow.py"))
    assert forced.exit_code == 1, forced.output  # the new prefix changes the output
    assert (project / "IMPORTED").read_text() == "replay_helper"
    assert "differing on disk now: replay_helper.py" in forced.stderr


def test_a_deleted_source_file_is_refused(project: Path, tmp_path: Path) -> None:
    run_id = _record(project, tmp_path / "store")
    (project / "replay_helper.py").unlink()
    result = _invoke("replay", run_id, "--store", str(tmp_path / "store"), "--json")
    assert result.exit_code == 2, result.output
    assert f"recorded {digest(HELPER.encode())}, now missing" in result.stderr
    assert result.stdout == ""


def test_a_record_naming_a_file_outside_its_sources_is_refused(tmp_path: Path) -> None:
    # A store from elsewhere: its sources check out, but it names another file to import.
    good = tmp_path / "good"
    good.mkdir()
    (good / "flow.py").write_text("")
    store = MemoryStore()
    origin = {
        "pipeline": f"{tmp_path / 'evil.py'}:pipeline",
        "sources": {"root": str(good), "files": {"flow.py": digest(b"")}},
    }
    store.append_event("run-1", orjson.dumps({"type": "run_start", "data": {"origin": origin}}))
    with pytest.raises(PipelineLoadError, match="is not among the source files it records"):
        check_recorded_pipeline(store, "run-1")
    origin["pipeline"] = f"{good / 'flow.py'}:pipeline"  # the control: listed, unchanged
    store.append_event("run-2", orjson.dumps({"type": "run_start", "data": {"origin": origin}}))
    found = check_recorded_pipeline(store, "run-2")
    assert found is not None and found.unchanged and found.name == "pipeline"


def test_the_cli_refuses_an_unlisted_pipeline_file(project: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    run_id = _record(project, store)
    # Rewrite the record (as a store from elsewhere could) to name a file it does not list.
    events = store / "runs" / run_id / "events.jsonl"
    lines = events.read_bytes().splitlines()
    evil = tmp_path / "evil.py"
    evil.write_text(MARK)
    first = orjson.loads(lines[0])
    first["data"]["origin"]["pipeline"] = f"{evil}:pipeline"
    events.write_bytes(b"\n".join([orjson.dumps(first), *lines[1:]]) + b"\n")
    result = _invoke("replay", run_id, "--store", str(store))
    assert result.exit_code == 2, result.output
    assert "is not among the source files it records" in result.output
    assert not (tmp_path / "IMPORTED").exists()


def test_a_legacy_run_without_sources_replays_with_a_note(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s")
    origin = {"pipeline": f"{EFFECTS}:pipeline"}  # what orch run recorded before sources
    run = anyio.run(
        lambda: arun(load_pipeline(EFFECTS), {"question": "q"}, store=store, origin=origin)
    )
    store.close()
    result = _invoke("replay", run.run_id, "--store", str(tmp_path / "s"), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sources"] == {
        "recorded": None,
        "enforced": False,
        "changed": [],
    }
    assert "recorded before orch recorded source files" in result.stderr
    assert f"will import {EFFECTS}, pipeline 'pipeline'" in result.stderr


def test_the_golden_record_has_no_sources_and_says_so(tmp_path: Path) -> None:
    store = tmp_path / "golden"
    shutil.copytree(GOLDEN, store)
    (run_id,) = [p.name for p in (store / "runs").iterdir()]
    result = _invoke("replay", run_id, "--store", str(store), "--pipeline", EFFECTS, "--json")
    assert result.exit_code == 0, result.output
    assert f"run {run_id} does not record its source files, so nothing was checked" in (
        result.stderr
    )


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_no_record_writes_nothing_to_the_store(project: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    run_id = _record(project, store)
    before = _snapshot(store)
    result = _invoke("replay", run_id, "--store", str(store), "--no-record", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["clean"] is True and report["recorded"] is False
    assert "not recorded (--no-record)" in result.stderr
    assert _snapshot(store) == before
    text = _invoke("replay", run_id, "--store", str(store), "--no-record")
    assert "replay not recorded (nothing was written to the store)" in text.stdout
    assert _snapshot(store) == before

    recorded = _invoke("replay", run_id, "--store", str(store))  # the control: this one writes
    assert recorded.exit_code == 0, recorded.output
    assert _snapshot(store) != before


def _deny_writes(monkeypatch: pytest.MonkeyPatch, under: Path) -> None:
    """This process may not write under ``under``, as for a store owned by someone else (the
    tests run as root, for whom file modes deny nothing)."""
    real = os.access

    def access(path: object, mode: int, **kwargs: object) -> bool:
        target = Path(os.fspath(path)).resolve()  # type: ignore[call-overload]
        if mode & os.W_OK and target.is_relative_to(under.resolve()):
            return False
        return real(path, mode, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "access", access)


def test_a_read_only_directory_store_replays_without_writing(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    run_id = _record(project, store)
    before = _snapshot(store)
    _deny_writes(monkeypatch, store)
    result = _invoke("replay", run_id, "--store", str(store), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["recorded"] is False
    assert f"not recorded (store {store} is read-only)" in result.stderr
    assert _snapshot(store) == before


def test_a_read_only_sqlite_store_replays_without_writing(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "store.db"
    run_id = _record(project, db)

    def rows() -> list[tuple[str, list[tuple[object, ...]]]]:
        with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True) as conn:
            tables = [
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            ]
            return [(t, sorted(conn.execute(f'SELECT * FROM "{t}"'))) for t in sorted(tables)]

    before = rows()
    _deny_writes(monkeypatch, tmp_path)
    result = _invoke("replay", run_id, "--store", str(db), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["recorded"] is False
    assert rows() == before


def test_a_mistyped_store_is_not_created(tmp_path: Path) -> None:
    result = _invoke("replay", "some-run", "--store", str(tmp_path / "typo"))
    assert result.exit_code == 2
    assert not (tmp_path / "typo").exists()


def test_replay_store_uses_an_overlay_only_when_it_must(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "s")
    assert replay_store(store) is store
    assert isinstance(replay_store(store, record=False), OverlayStore)
    store.read_only = True
    assert isinstance(replay_store(store), OverlayStore)


def _orch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orch.cli", *args], capture_output=True, text=True, check=False
    )


@pytest.mark.slow
def test_real_processes_record_then_refuse_a_changed_neighbour(
    project: Path, tmp_path: Path
) -> None:
    store = str(tmp_path / "store")
    made = _orch("run", str(project / "flow.py"), "-i", "text=hi", "--store", store, "--json")
    assert made.returncode == 0, made.stderr
    run_id = json.loads(made.stdout)["run_id"]

    clean = _orch("replay", run_id, "--store", store, "--json")
    assert clean.returncode == 0, clean.stderr
    assert json.loads(clean.stdout)["clean"] is True

    (project / "replay_helper.py").write_text('PREFIX = "Changed: "\n' + MARK)
    refused = _orch("replay", run_id, "--store", store)
    assert refused.returncode == 2, refused.stderr
    assert "replay_helper.py changed since run" in refused.stderr
    assert not (project / "IMPORTED").exists()
