"""Commands from plugins (the ``orch.cli`` entry-point group): listed, loaded only when run,
and a broken one costs only its own command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from orch.cli import app


def test_a_plugin_command_runs_and_is_listed(plugin_site: Path) -> None:
    cli = CliRunner()
    shouted = cli.invoke(app, ["demo-shout", "hello"])
    assert shouted.exit_code == 0, shouted.output
    assert shouted.stdout.strip() == "HELLO!"
    listed = cli.invoke(app, ["--help"])
    assert "demo-shout" in listed.stdout and "broken-cmd" in listed.stdout
    plugins = {p["name"]: p for p in json.loads(cli.invoke(app, ["plugins", "--json"]).stdout)}
    assert plugins["demo-shout"]["group"] == "orch.cli" and plugins["demo-shout"]["ok"]
    assert plugins["broken-cmd"]["group"] == "orch.cli" and not plugins["broken-cmd"]["ok"]


def test_a_broken_plugin_costs_only_its_command(plugin_site: Path) -> None:
    cli = CliRunner()
    broken = cli.invoke(app, ["broken-cmd", "--anything"])
    assert broken.exit_code == 2
    (line,) = broken.stderr.strip().splitlines()
    assert "command 'broken-cmd' of plugin package orch-broken-plugin failed to load" in line
    assert "a_dependency_that_is_not_installed" in line and "Traceback" not in broken.output
    assert cli.invoke(app, ["runs", "--store", "memory:"]).exit_code == 0


def test_an_engine_command_imports_no_plugin(tmp_path: Path) -> None:
    """`orch runs` loads the app, with its plugin groups, but imports neither agents nor
    routers: a plugin's module is imported when its own command runs."""
    code = (
        "import sys\n"
        "from orch.cli import main\n"
        "sys.argv = ['orch', 'runs', '--store', 'memory:']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in {'agents', 'routers'})\n"
        "print(loaded, file=sys.stderr)\n"
        "sys.exit(1 if loaded else 0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert done.returncode == 0, done.stderr


def test_a_command_name_two_packages_offer_is_refused(plugin_site: Path) -> None:
    twin = plugin_site / "orch_twin-1.0.dist-info"
    twin.mkdir()
    (twin / "METADATA").write_text("Metadata-Version: 2.1\nName: orch-twin\nVersion: 1.0\n")
    (twin / "entry_points.txt").write_text("[orch.cli]\ndemo-shout = orch_twin:register\n")
    result = CliRunner().invoke(app, ["demo-shout", "hello"])
    assert result.exit_code == 2 and "HELLO" not in result.stdout
    (line,) = result.stderr.strip().splitlines()
    assert "command 'demo-shout' (orch.cli) is offered by several plugins" in line
    assert (
        "orch-demo-plugin" in line and "orch-twin 1.0" in line and "uninstall all but one" in line
    )
