"""Tampering with a recorded run is found and named by ``orch verify``.

A real run is written to a directory store; then one byte is flipped in an artifact, a step
record, or the event log, and verification must fail naming that exact thing. A property test
flips a random byte of a random file anywhere in the store.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from orch.cli import app
from traces import DirectoryStore
from traces._open import open_store
from traces._records import RunRecord, StepRecord
from traces._verify import verify_run

FIXTURE = str(Path(__file__).parents[1] / "fixtures" / "pipelines.py")


def _flip_artifact(store_dir: Path, key: str, offset: int) -> None:
    """Flip one bit of artifact ``key`` where the store keeps it (a pack record)."""
    store = DirectoryStore(store_dir)
    data = bytearray(store.read_raw(key) or b"")
    data[offset % len(data)] ^= 0x01
    store._tamper(key, bytes(data))
    store.close()


def _flip(path: Path, offset: int, mask: int = 0x01) -> None:
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= mask
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A pristine finished run: (store dir, run id, root hash)."""
    store_dir = tmp_path_factory.mktemp("pristine") / "store"
    result = CliRunner().invoke(
        app, ["run", FIXTURE, "-i", "x=5", "--store", str(store_dir), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    return store_dir, data["run_id"], data["root_hash"]


@pytest.fixture
def copy(recorded: tuple[Path, str, str], tmp_path: Path) -> tuple[Path, str, RunRecord]:
    src, run_id, root = recorded
    dst = tmp_path / "store"
    shutil.copytree(src, dst)
    store = open_store(str(dst))
    record = RunRecord.model_validate(store.get_value(root))
    store.close()
    return dst, run_id, record


def _verify_cli(store_dir: Path, run_id: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["verify", run_id, "--store", str(store_dir)])
    return result.exit_code, result.stdout


def test_pristine_copy_verifies(copy: tuple[Path, str, RunRecord]) -> None:
    store_dir, run_id, _ = copy
    code, out = _verify_cli(store_dir, run_id)
    assert code == 0, out


def test_flipped_output_artifact_is_named(copy: tuple[Path, str, RunRecord]) -> None:
    store_dir, run_id, record = copy
    store = open_store(str(store_dir))
    step = StepRecord.model_validate(store.get_value(dict(record.steps)["left"]))
    store.close()
    assert step.output is not None
    _flip_artifact(store_dir, step.output, 3)
    code, out = _verify_cli(store_dir, run_id)
    assert code == 1
    assert "TAMPERED" in out
    assert step.output[:15] in out
    assert "left" in out  # which step's output it is


def test_flipped_step_record_is_named(copy: tuple[Path, str, RunRecord]) -> None:
    store_dir, run_id, record = copy
    key = dict(record.steps)["sum"]
    _flip_artifact(store_dir, key, 40)
    code, out = _verify_cli(store_dir, run_id)
    assert code == 1
    assert "step record 'sum'" in out
    assert key[:15] in out


def test_flipped_event_log_line_is_named(copy: tuple[Path, str, RunRecord]) -> None:
    store_dir, run_id, _ = copy
    log = store_dir / "runs" / run_id / "events.jsonl"
    lines = log.read_bytes().split(b"\n")
    # Change the status inside the first step_end event, leaving it valid JSON.
    target = next(i for i, line in enumerate(lines) if b'"status":"ok"' in line)
    lines[target] = lines[target].replace(b'"ok"', b'"ko"', 1)
    log.write_bytes(b"\n".join(lines))
    code, out = _verify_cli(store_dir, run_id)
    assert code == 1
    assert f"event #{target}" in out


def test_verify_json_lists_problem_kinds(copy: tuple[Path, str, RunRecord]) -> None:
    store_dir, run_id, record = copy
    _flip_artifact(store_dir, dict(record.steps)["right"], 10)
    result = CliRunner().invoke(app, ["verify", run_id, "--store", str(store_dir), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert any("right" in p["subject"] for p in report["problems"])


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    file_index=st.integers(min_value=0),
    offset=st.integers(min_value=0),
    mask=st.integers(min_value=1, max_value=255),
)
def test_any_flipped_byte_anywhere_is_found(
    recorded: tuple[Path, str, str],
    tmp_path_factory: pytest.TempPathFactory,
    file_index: int,
    offset: int,
    mask: int,
) -> None:
    src, run_id, _ = recorded
    dst = tmp_path_factory.mktemp("flip") / "store"
    shutil.copytree(src, dst)
    # The run's own files: its objects, head and log. The store's ledger is checked against
    # a checkpoint the auditor kept (tests/traces/test_store_tamper.py): on its own, a flipped
    # bit in another run's entry, or in the store's random id, is just another valid entry.
    # A pack's index (packs/*.idx) is a cache checked against its own hash: damage to it loses
    # nothing (test_a_damaged_pack_index_loses_nothing), so it is not a place to flip.
    files = sorted(
        p
        for sub in ("objects", "packs", "runs")
        for p in (dst / sub).rglob("*")
        if p.is_file() and p.suffix != ".idx"
    )
    victim = files[file_index % len(files)]
    _flip(victim, offset, mask)
    store = open_store(str(dst))
    try:
        report = verify_run(store, run_id)
    finally:
        store.close()
    assert not report.ok, (
        f"flipping byte {offset % victim.stat().st_size} of "
        f"{victim.relative_to(dst)} went unnoticed"
    )


def test_a_damaged_pack_index_loses_nothing(copy: tuple[Path, str, RunRecord]) -> None:
    store_dir, run_id, _ = copy
    indexes = sorted((store_dir / "packs").glob("*.idx"))
    assert indexes, "the run's process sealed its pack"
    for index in indexes:
        for offset in (0, 25, index.stat().st_size // 2, index.stat().st_size - 1):
            _flip(index, offset)
            code, out = _verify_cli(store_dir, run_id)
            assert code == 0, out
            _flip(index, offset)  # back as it was
