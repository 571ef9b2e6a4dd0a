"""``orch export``, ``orch prove`` and ``orch verify FILE``: evidence checked with no store.

Runs are made with ``orch run`` (so they record their source files), exported and proven
through the CLI, and verified in-process and in a fresh interpreter in an empty folder with no
store, no ``ORCH_STORE`` and a pipeline file that would leave a marker if it were imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orch.cli import app
from orch.cli._audit import verify_evidence
from traces._keys import KeyRing

FIXTURE = str(Path(__file__).parents[1] / "fixtures" / "pipelines.py")
GOLDEN = Path(__file__).parents[1] / "fixtures" / "golden_evidence"

MARKER_PIPELINE = """\
from pathlib import Path

from pydantic import BaseModel

from orch import Context, PipelineBuilder, agent

Path({marker!r}).write_text("imported")  # what verifying must never make happen


class Num(BaseModel):
    x: int


@agent(name="double", version="1")
async def double(n: Num, ctx: Context) -> Num:
    ctx.decide(candidates=["x2"], chosen="x2", reason="the only way")
    return Num(x=n.x * 2)


p = PipelineBuilder("marker")
p.node("double", double, x=p.input("x", int))
pipeline = p
"""


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ORCH_STORE", raising=False)
    monkeypatch.delenv("ORCH_SIGNING_KEY", raising=False)
    monkeypatch.setenv("ORCH_KEYS", str(tmp_path / "keys"))
    KeyRing(tmp_path / "keys").create("test.example/log")
    return CliRunner()


def _run(cli: CliRunner, target: str = FIXTURE) -> str:
    result = cli.invoke(app, ["run", target, "-i", "x=3", "--store", "S", "--json"])
    assert result.exit_code == 0, result.output
    return str(json.loads(result.stdout)["run_id"])


def _ok(cli: CliRunner, *args: str) -> str:
    result = cli.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_export_prove_and_verify_round_trip(cli: CliRunner, tmp_path: Path) -> None:
    run_id = _run(cli)
    said = _ok(
        cli, "export", run_id, "--store", "S", "--key", "test.example/log", "-o", "r.orchpack"
    )
    assert "signed now with key test.example/log and stored in S" in said
    again = _ok(cli, "export", run_id[:12], "--store", "S", "-o", "r2.orchpack")
    assert "stored with the ledger" in again  # no key needed: the stored checkpoint covers it
    assert (tmp_path / "r.orchpack").read_bytes() == (tmp_path / "r2.orchpack").read_bytes()
    proved = json.loads(_ok(cli, "prove", run_id, "--step", "sum", "--store", "S", "--json"))
    assert proved["signed_now_by"] is None and Path(proved["file"]).is_file()
    decided = json.loads(_ok(cli, "prove", run_id, "--decision", "sum#0", "--store", "S", "--json"))
    pub = str(tmp_path / "keys" / "test.example" / "log.pub")
    for file in ("r.orchpack", proved["file"], decided["file"]):
        out = _ok(cli, "verify", file, "--trust", pub)
        assert out.startswith("✔ intact") and "warning" not in out
        report = json.loads(_ok(cli, "verify", file, "--trust", "test.example/log", "--json"))
        assert report["ok"] and report["run_id"] == run_id


def test_verify_in_an_empty_folder_with_no_store_never_imports_the_pipeline(
    cli: CliRunner, tmp_path: Path
) -> None:
    marker = tmp_path / "IMPORTED"
    flow = tmp_path / "flow.py"
    flow.write_text(MARKER_PIPELINE.format(marker=str(marker)))
    run_id = _run(cli, str(flow))
    marker.unlink()  # orch run imported it, as it must; verifying must not
    _ok(cli, "export", run_id, "--store", "S", "--key", "test.example/log", "-o", "m.orchpack")
    _ok(cli, "prove", run_id, "--decision", "double#0", "--store", "S", "-o", "m.orchproof")
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("ORCH_STORE", "ORCH_KEYS")}
    env["ORCH_KEYS"] = str(empty / "no-keyring")
    pub = str(tmp_path / "keys" / "test.example" / "log.pub")
    for name in ("m.orchpack", "m.orchproof"):
        done = subprocess.run(
            [sys.executable, "-m", "orch.cli", "verify", str(tmp_path / name), "--trust", pub],
            cwd=empty,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "✔ intact" in done.stdout
    assert list(empty.iterdir()) == []  # no store was made
    assert not marker.exists()
    from traces._bundle import verify_bundle

    assert verify_bundle((tmp_path / "m.orchpack").read_bytes()).ok
    assert not marker.exists()


def test_a_tampered_bundle_exits_1_naming_the_part(cli: CliRunner, tmp_path: Path) -> None:
    run_id = _run(cli)
    _ok(cli, "export", run_id, "--store", "S", "--key", "test.example/log", "-o", "r.orchpack")
    from traces._bundle import bundle_layout

    data = bytearray((tmp_path / "r.orchpack").read_bytes())
    head = next(p for p in bundle_layout(bytes(data)) if p.name == "member 'head.json' (data)")
    data[head.start + 20] ^= 1
    (tmp_path / "t.orchpack").write_bytes(bytes(data))
    result = cli.invoke(app, ["verify", "t.orchpack"])
    assert result.exit_code == 1
    assert "✘ TAMPERED" in result.stdout and "member 'head.json' (data)" in result.stdout


def test_wrong_trusted_key_is_a_problem_and_none_a_warning(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = _run(cli)
    _ok(cli, "export", run_id, "--store", "S", "--key", "test.example/log", "-o", "r.orchpack")
    KeyRing().create("someone.else/log")
    wrong = cli.invoke(app, ["verify", "r.orchpack", "--trust", "someone.else/log"])
    assert wrong.exit_code == 1
    assert "none of them a key you trust" in wrong.stdout
    monkeypatch.setenv("ORCH_KEYS", str(tmp_path / "no-keyring"))  # an empty keyring
    lenient = cli.invoke(app, ["verify", "r.orchpack"])
    assert lenient.exit_code == 0
    assert "did not say to trust: test.example/log+" in lenient.stdout


def test_since_with_an_older_checkpoint_holds(cli: CliRunner) -> None:
    _run(cli)
    _ok(cli, "checkpoint", "--store", "S", "--key", "test.example/log", "-o", "old.checkpoint")
    run_id = _run(cli)
    args = ["--store", "S", "--key", "test.example/log", "--since", "old.checkpoint"]
    _ok(cli, "export", run_id, *args, "-o", "s.orchpack")
    assert _ok(cli, "verify", "s.orchpack", "--since", "old.checkpoint").startswith("✔ intact")
    report = json.loads(_ok(cli, "verify", "s.orchpack", "--since", "old.checkpoint", "--json"))
    assert report["checked"]["kept checkpoints"] == 1


def test_user_mistakes_exit_2_with_one_line(cli: CliRunner, tmp_path: Path) -> None:
    run_id = _run(cli)
    no_key = cli.invoke(app, ["export", run_id, "--store", "S"])
    assert no_key.exit_code == 2
    assert "orch keys create NAME" in no_key.stderr and len(no_key.stderr.splitlines()) == 1
    both = cli.invoke(app, ["prove", run_id, "--store", "S"])
    assert both.exit_code == 2 and "--step ID or --decision" in both.stderr
    (tmp_path / "x.orchproof").write_text("not a proof")
    assert verify_evidence(tmp_path / "x.orchproof", [], None, False) == 2
    (tmp_path / "x.orchpack").write_bytes(b"\0" * 2048)
    assert verify_evidence(tmp_path / "x.orchpack", [], None, False) == 2
    assert verify_evidence(tmp_path / "missing.orchpack", [], None, False) == 2
    assert verify_evidence(tmp_path / "x.orchpack", ["not-a-key+zz"], None, False) == 2
    assert not (tmp_path / ".orch").exists()


def test_a_run_never_sealed_cannot_be_proven(cli: CliRunner, tmp_path: Path) -> None:
    from traces import DirectoryStore

    run_id = _run(cli)
    store = DirectoryStore(tmp_path / "S")
    store._tamper_truncate_ledger(store.ledger_size() - 1)  # the seal a killed run never wrote
    store.close()
    result = cli.invoke(app, ["prove", run_id, "--step", "sum", "--store", "S"])
    assert result.exit_code == 2
    assert "was never sealed" in result.stderr and len(result.stderr.splitlines()) == 1


def test_golden_evidence_verifies() -> None:
    from traces._bundle import verify_bundle
    from traces._disclose import verify_disclosure
    from traces._keys import parse_trusted

    key = parse_trusted(str(GOLDEN / "signer.pub"))
    kept = (GOLDEN / "kept.checkpoint").read_bytes()
    bundle = verify_bundle((GOLDEN / "run.orchpack").read_bytes(), [key], kept)
    assert bundle.ok and bundle.warnings == [], (bundle.problems, bundle.warnings)
    assert bundle.checked["kept checkpoints"] == 1 and bundle.checked["steps"] == 3
    for name in ("step.orchproof", "decision.orchproof"):
        report = verify_disclosure((GOLDEN / name).read_bytes(), [key], kept)
        assert report.ok and report.root_hash == bundle.root_hash, report.problems
    code = verify_evidence(GOLDEN / "run.orchpack", [str(GOLDEN / "signer.pub")], None, True)
    assert code == 0
