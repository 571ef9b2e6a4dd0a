"""`orch replay` on a golden record, and `orch run --resume` after SIGKILL of a real process."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from orch.cli import app
from traces import open_store, verify_run

FIXTURES = Path(__file__).parents[1] / "fixtures"
EFFECTS = str(FIXTURES / "effects_pipeline.py")
GOLDEN = FIXTURES / "golden_store"


@pytest.fixture
def golden(tmp_path: Path) -> tuple[Path, str]:
    """A copy of the golden record (replay writes a new run into the store)."""
    store = tmp_path / "golden"
    shutil.copytree(GOLDEN, store)
    (run_id,) = [p.name for p in (store / "runs").iterdir()]
    return store, run_id


def test_golden_record_verifies(golden: tuple[Path, str]) -> None:
    store, run_id = golden
    result = CliRunner().invoke(app, ["verify", run_id, "--store", str(store), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["checked"]["effects"] == 3


def test_golden_record_replays_clean(golden: tuple[Path, str]) -> None:
    store, run_id = golden
    result = CliRunner().invoke(
        app, ["replay", run_id, "--store", str(store), "--pipeline", EFFECTS, "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["clean"] is True
    assert report["root_hash"] == report["expected_root_hash"]
    assert report["first_divergence"] is None


def test_changed_prompt_is_reported_at_step_b(golden: tuple[Path, str]) -> None:
    store, run_id = golden
    args = ["replay", run_id, "--store", str(store), "--pipeline", EFFECTS + ":changed"]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 1, result.output
    first = json.loads(result.stdout)["first_divergence"]
    assert (first["step_id"], first["index"], first["kind"]) == ("b", 0, "request-changed")
    assert first["expected_request"] != first["actual_request"]
    (change,) = first["changes"]
    assert change["path"] == "$.prompt"
    assert change["expected"].startswith("Rephrase: ")
    assert change["actual"].startswith("Rephrase politely: ")
    text = CliRunner().invoke(app, args).stdout
    assert "DIVERGED" in text and "step 'b', effect #0" in text
    assert '$.prompt: "Rephrase: ' in text


def test_replay_of_a_run_without_origin_asks_for_the_pipeline(tmp_path: Path) -> None:
    import anyio

    from orch import arun
    from orch._loader import load_pipeline

    store = open_store(tmp_path / "s")
    result = anyio.run(lambda: arun(load_pipeline(EFFECTS), {"question": "q"}, store=store))
    store.close()
    out = CliRunner().invoke(app, ["replay", result.run_id, "--store", str(tmp_path / "s")])
    assert out.exit_code == 2
    assert "--pipeline FILE.py:NAME" in out.output


def _ended(store_loc: str) -> tuple[str | None, int]:
    store = open_store(store_loc)
    try:
        ids = store.run_ids()
        if not ids:
            return None, 0
        n = 0
        for line in store.read_events(ids[0]):
            with contextlib.suppress(orjson.JSONDecodeError):
                n += orjson.loads(line).get("type") == "step_end"
        return ids[0], n
    finally:
        store.close()


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_root_hash(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    store_loc = str(tmp_path / "store")
    env = dict(os.environ, ORCH_TEST_EFFECT_LOG=str(log), ORCH_TEST_STEP_SECONDS="0.05")
    cmd = [sys.executable, "-m", "orch.cli", "run", EFFECTS + ":long_chain", "-i", "question=hi"]
    proc = subprocess.Popen(
        [*cmd, "--store", store_loc], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    run_id, ended = None, 0
    while time.monotonic() < deadline and ended < 6:
        if Path(store_loc).exists():
            run_id, ended = _ended(store_loc)
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it could be killed: {proc.stderr.read()!r}")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert run_id is not None and ended >= 6
    before = log.read_text().splitlines()

    env["ORCH_TEST_STEP_SECONDS"] = "0"
    resumed = subprocess.run(
        [*cmd[:5], "--resume", run_id, "--store", store_loc, "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    data = json.loads(resumed.stdout)

    fresh = subprocess.run(
        [*cmd, "--store", str(tmp_path / "fresh"), "--json"],
        env=dict(env, ORCH_TEST_EFFECT_LOG=""),
        capture_output=True,
        text=True,
        check=False,
    )
    assert fresh.returncode == 0, fresh.stderr
    assert data["root_hash"] == json.loads(fresh.stdout)["root_hash"]

    # No completed effect was issued twice. The one call in flight at the kill may have
    # reached the "server" without its result being recorded: that one may repeat, once.
    after = log.read_text().splitlines()
    assert len(after) == 30 + sum(c - 1 for c in Counter(after).values())
    repeats = [r for r, c in Counter(after).items() if c > 1]
    assert len(repeats) <= 1
    if repeats:
        assert repeats[0] == before[-1]
    store = open_store(store_loc)
    assert verify_run(store, data["run_id"]).ok
    report = verify_run(store, run_id)  # the killed run still verifies as incomplete
    assert report.ok and not report.complete
    store.close()


def test_diff_names_the_steps_and_outputs_that_differ(golden: tuple[Path, str]) -> None:
    store, run_id = golden
    runner = CliRunner()
    changed = runner.invoke(
        app,
        ["replay", run_id, "--store", str(store), "--pipeline", EFFECTS + ":changed", "--json"],
    )
    replay_id = json.loads(changed.stdout)["replay_run_id"]
    same = runner.invoke(
        app, ["replay", run_id, "--store", str(store), "--pipeline", EFFECTS, "--json"]
    )
    clean_id = json.loads(same.stdout)["replay_run_id"]

    ok = runner.invoke(app, ["diff", run_id, clean_id, "--store", str(store)])
    assert ok.exit_code == 0, ok.output
    assert "identical" in ok.stdout

    result = runner.invoke(app, ["diff", run_id, replay_id, "--store", str(store), "--json"])
    assert result.exit_code == 1
    d = json.loads(result.stdout)
    assert d["identical"] is False
    changes = {s["step_id"]: s for s in d["steps"]}
    assert "a" not in changes  # step a made the same call and got the same answer
    assert changes["b"]["change"] == "changed"
    assert any("status ok -> failed" in x for x in changes["b"]["details"])
    assert changes["c"]["details"][0].startswith("status ok -> cancelled")
    assert any(line.startswith("spec_hash") for line in d["header"])


def test_show_reports_effects_and_cost(golden: tuple[Path, str]) -> None:
    store, run_id = golden
    result = CliRunner().invoke(app, ["show", run_id, "--store", str(store), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["cost_usd"] == pytest.approx(sum(s["cost_usd"] for s in data["steps"].values()))
    assert data["cost_usd"] > 0
    assert data["usage"]["output_tokens"] == 9  # three calls, three tokens each
    assert data["steps"]["b"]["effects"][0]["target"] == "local-reverse"
    text = CliRunner().invoke(app, ["show", run_id, "--store", str(store)]).stdout
    assert "⇄ model local-reverse #0 ok" in text and "cost" in text


def test_a_store_of_the_old_layout_takes_new_runs_in_packs_and_all_verify(
    golden: tuple[Path, str],
) -> None:
    """The golden store has one file per artifact (written before packs); a replay recorded
    into it goes to a pack, and the whole store, old run and new, verifies."""
    store, run_id = golden
    assert not (store / "packs").exists() or not any((store / "packs").iterdir())
    replayed = CliRunner().invoke(
        app, ["replay", run_id, "--store", str(store), "--pipeline", EFFECTS, "--json"]
    )
    assert replayed.exit_code == 0, replayed.output
    assert list((store / "packs").glob("*.pack")), "the replay's artifacts went to a pack"
    checked = CliRunner().invoke(app, ["verify", "--all", "--store", str(store), "--json"])
    assert checked.exit_code == 0, checked.output
    report = json.loads(checked.stdout)
    assert report["ok"] and report["checked"]["runs"] == 2 and report["checked"]["effects"] == 6
