"""``orch ui`` as a command: it never creates a store, refuses what it cannot serve safely in
one line (exit 2), and as a real process prints the address to open, with a token it made
when bound off loopback, which every request must then carry."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import orch_ui
from typer.testing import CliRunner

from orch.cli import app

pytestmark = pytest.mark.slow


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_missing_store_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    done = CliRunner().invoke(app, ["ui", "--store", str(missing)])
    assert done.exit_code == 2
    assert done.stderr.count("\n") == 1 and "no store at" in done.stderr
    assert not missing.exists()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--token", "short"], "shorter than 16"),
        (["--port", "0"], "--port 0 is out of range"),
        (["--port", "70000"], "out of range"),
        (["--evals", "/nonexistent/evals"], "--evals /nonexistent/evals is not a folder"),
    ],
)
def test_bad_options_are_one_line(quick_store: Path, args: list[str], says: str) -> None:
    done = CliRunner().invoke(app, ["ui", "--store", str(quick_store), *args])
    assert done.exit_code == 2 and says in done.stderr and done.stderr.count("\n") == 1


def test_a_port_in_use_is_one_line(quick_store: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = CliRunner().invoke(app, ["ui", "--store", str(quick_store), "--port", str(port)])
    assert done.exit_code == 2 and "cannot listen on 127.0.0.1" in done.stderr


def test_on_loopback_it_serves_without_a_token(quick_store: Path) -> None:
    with orch_ui(quick_store) as (url, port):
        assert url == f"http://127.0.0.1:{port}/"
        assert status_of(url) == 200
        assert status_of(f"http://127.0.0.1:{port}/static/ui.css") == 200


def test_off_loopback_it_makes_a_token_and_requires_it(quick_store: Path) -> None:
    with orch_ui(quick_store, "--host", "0.0.0.0") as (url, port):
        assert url.startswith(f"http://0.0.0.0:{port}/?token=")
        token = url.split("token=", 1)[1]
        assert len(token) >= 32
        base = f"http://127.0.0.1:{port}"
        assert status_of(f"{base}/") == 401
        assert status_of(f"{base}/runs.json?token=wrong-{token}") == 401
        request = urllib.request.Request(f"{base}/runs.json", headers={"X-Orch-Token": token})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200


def test_a_given_token_is_required_on_loopback_too(quick_store: Path) -> None:
    token = "a-given-token-of-some-length"
    with orch_ui(quick_store, "--token", token) as (url, port):
        assert url == f"http://127.0.0.1:{port}/?token={token}"
        assert status_of(f"http://127.0.0.1:{port}/") == 401
        assert status_of(url) == 401  # the redirect's cookie is dropped by a cookieless client
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        with browser.open(url, timeout=30) as response:  # as a browser: keeps the cookie
            assert response.status == 200 and response.url == f"http://127.0.0.1:{port}/"
