"""``orch replay run.orchpack``: a bundle carries its pipeline's source, so it replays exactly
as recorded on another machine, whatever the code there has become; nothing is written."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orch.cli import app

FIXTURES = Path(__file__).parents[1] / "fixtures"


@pytest.fixture
def bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, str]:
    """A run of a copy of the effects pipeline, exported: (bundle, pipeline copy, run id)."""
    monkeypatch.setenv("ORCH_KEYS", str(tmp_path / "keys"))
    monkeypatch.delenv("ORCH_STORE", raising=False)
    code = tmp_path / "code"
    code.mkdir()
    pipeline = code / "effects_pipeline.py"
    shutil.copy(FIXTURES / "effects_pipeline.py", pipeline)
    cli = CliRunner()
    assert cli.invoke(app, ["keys", "create", "exporter"]).exit_code == 0
    store = str(tmp_path / "store")
    made = cli.invoke(app, ["run", str(pipeline), "-i", "question=hi", "--store", store, "--json"])
    assert made.exit_code == 0, made.output
    run_id = json.loads(made.stdout)["run_id"]
    out = tmp_path / "run.orchpack"
    exported = cli.invoke(
        app, ["export", run_id, "--store", store, "-o", str(out), "--key", "exporter"]
    )
    assert exported.exit_code == 0, exported.output
    return out, pipeline, run_id


def test_a_bundle_replays_with_the_code_it_carries_and_writes_nothing(
    bundle: tuple[Path, Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, pipeline, run_id = bundle
    # The code on this "machine" changed since: the bundle's copy is what replays.
    pipeline.write_text(pipeline.read_text().replace("Rephrase: {q}", "Changed: {q}"))
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    monkeypatch.chdir(empty)
    result = CliRunner().invoke(app, ["replay", str(path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["clean"] is True and report["recorded"] is False
    assert report["run_id"] == run_id
    assert report["sources"]["bundle"] == str(path)
    assert list(empty.iterdir()) == []  # no store made, nothing written
    # With --pipeline naming the changed code, the divergence at step b is found (in a fresh
    # process: this one imported the file before it changed).
    changed = subprocess.run(
        [sys.executable, "-m", "orch.cli", "replay", str(path), "--pipeline", str(pipeline)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert changed.returncode == 1, changed.stderr
    assert "step 'b', effect #0" in changed.stdout


def test_a_tampered_bundle_is_not_replayed(bundle: tuple[Path, Path, str], tmp_path: Path) -> None:
    path, _, _ = bundle
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x20
    bad = tmp_path / "bad.orchpack"
    bad.write_bytes(bytes(data))
    result = CliRunner().invoke(app, ["replay", str(bad)])
    assert result.exit_code == 2
    assert "the bundle does not verify" in result.stderr and "Traceback" not in result.output
