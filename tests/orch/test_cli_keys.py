"""``orch keys``, ``orch checkpoint`` and ``orch verify --all --since``: an auditor keeps a
signed checkpoint, and later finds out whether the store only grew since."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from orch.cli import app
from traces._note import Verifier, open_checkpoint
from traces._tlog import verify_consistency

FIXTURE = str(Path(__file__).parents[1] / "fixtures" / "pipelines.py")


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("ORCH_KEYS", str(tmp_path / "keys"))
    monkeypatch.delenv("ORCH_SIGNING_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def _run(cli: CliRunner, store: Path, x: int) -> str:
    result = cli.invoke(app, ["run", FIXTURE, "-i", f"x={x}", "--store", str(store), "--json"])
    assert result.exit_code == 0, result.output
    return str(json.loads(result.stdout)["run_id"])


def test_keys_are_created_listed_and_shown_without_the_private_key(cli: CliRunner) -> None:
    made = cli.invoke(app, ["keys", "create", "acme.example/audit", "--json"])
    assert made.exit_code == 0, made.output
    info = json.loads(made.stdout)
    assert Verifier.parse(info["verifier_key"]).name == "acme.example/audit"
    listed = json.loads(cli.invoke(app, ["keys", "list", "--json"]).stdout)
    assert [k["verifier_key"] for k in listed] == [info["verifier_key"]]
    shown = cli.invoke(app, ["keys", "show", "acme.example/audit"])
    assert shown.stdout.strip() == info["verifier_key"]
    private = Path(info["path"]).read_text()
    for result in (made, shown, cli.invoke(app, ["keys", "list"])):
        assert "PRIVATE KEY" not in result.output and private not in result.output
    again = cli.invoke(app, ["keys", "create", "acme.example/audit"])
    assert again.exit_code == 2 and "already" in again.stderr and "Traceback" not in again.output


def test_a_kept_checkpoint_proves_the_store_only_grew_and_catches_a_rollback(
    cli: CliRunner, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    assert cli.invoke(app, ["keys", "create", "auditor"]).exit_code == 0
    _run(cli, store, 1)
    first = cli.invoke(app, ["checkpoint", "--key", "auditor", "--store", str(store), "-o", "a"])
    assert first.exit_code == 0, first.output
    older = tmp_path / "older"
    shutil.copytree(store, older)  # the store as it was when the auditor kept checkpoint a
    _run(cli, store, 2)
    second = cli.invoke(
        app,
        [
            "checkpoint",
            "--key",
            "auditor",
            "--store",
            str(store),
            "--since",
            "a",
            "-o",
            "b",
            "--proof",
            "p.json",
            "--json",
        ],
    )
    assert second.exit_code == 0, second.output
    # The consistency proof written for a remote auditor checks with the RFC 9162 algorithm.
    proof = orjson.loads((tmp_path / "p.json").read_bytes())
    verify_consistency(
        proof["old_size"],
        proof["new_size"],
        base64.b64decode(proof["old_root"]),
        base64.b64decode(proof["new_root"]),
        [base64.b64decode(h) for h in proof["proof"]],
    )
    key = Verifier.parse(cli.invoke(app, ["keys", "show", "auditor"]).stdout.strip())
    cp, opened = open_checkpoint((tmp_path / "b").read_bytes(), [key])
    assert opened.verified and cp.size == proof["new_size"]
    # Grown since: intact.
    ok = cli.invoke(app, ["verify", "--all", "--store", str(store), "--since", "a", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["checked"]["checkpoints"] == 3  # two stored, one kept
    # Rolled back to the older copy: the checkpoint kept later (b) is ahead of it.
    rolled = cli.invoke(app, ["verify", "--all", "--store", str(older), "--since", "b"])
    assert rolled.exit_code == 1
    assert "the checkpoint you kept: covers" in rolled.stdout
    assert "rolled back" in rolled.stdout
    # Rolled back, then grown again with other runs (a fork): same size, other root.
    _run(cli, older, 3)
    forked = cli.invoke(app, ["verify", "--all", "--store", str(older), "--since", "b"])
    assert forked.exit_code == 1
    assert "is not the root of the ledger's first" in forked.stdout
    # And checkpoint --since refuses to extend a ledger that is not an extension of it.
    refused = cli.invoke(
        app, ["checkpoint", "--key", "auditor", "--store", str(older), "--since", "b"]
    )
    assert refused.exit_code == 2 and "not an extension" in refused.stderr


def test_checkpoint_mistakes_are_one_line(cli: CliRunner, tmp_path: Path) -> None:
    store = tmp_path / "store"
    _run(cli, store, 1)
    no_key = cli.invoke(app, ["checkpoint", "--store", str(store)])
    assert no_key.exit_code == 2 and "orch keys create NAME" in no_key.stderr
    missing = cli.invoke(app, ["checkpoint", "--key", "nobody", "--store", str(store)])
    assert missing.exit_code == 2 and "Traceback" not in missing.output
    typo = cli.invoke(app, ["checkpoint", "--key", "x", "--store", str(tmp_path / "typo")])
    assert typo.exit_code == 2 and not (tmp_path / "typo").exists()
    assert cli.invoke(app, ["keys", "create", "k"]).exit_code == 0
    since = cli.invoke(app, ["verify", "RUN", "--since", "a", "--store", str(store)])
    assert since.exit_code == 2 and "orch verify --all --since FILE" in since.stderr
