"""Recorded text is untrusted: no command lets it act on the auditor's terminal.

A run whose model answer, model name, decision (reason, candidates, scores), step error,
pipeline name, input and output all hold terminal escape sequences (clear screen, an OSC 0
window title, an OSC 8 hyperlink, an 8-bit CSI), a carriage-return overwrite, a bidi override
and a forged "✔ intact" line. Every command that shows recorded text is run on it in process
(typer's CliRunner), as a real process writing to a pipe, and as a real process writing to a
pseudo-terminal (so that rich believes it talks to a terminal and styles its output): nothing
but rich's own SGR colour codes may reach stdout or stderr, and the text shows, escaped.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orch.cli import app
from traces import DirectoryStore

FORGED = "✔ intact FORGED-LINE"
HOSTILE = (
    "A\x1b[2J\x1b[H"  # clear the screen, cursor home
    "\x1b]0;pwned-title\x07"  # OSC 0: the window title
    "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\"  # OSC 8: a hyperlink
    " safe\rOVERWRITE"  # carriage return: overwrite what came before
    " \u202eevil\u202c"  # bidi override: reverse what follows
    " \x9b31m8bit"  # 8-bit CSI (C1)
    f"\n{FORGED}"  # a line of its own that looks like verify's
)

PIPELINE = f"""
import os

from pydantic import BaseModel

from orch import Context, PipelineBuilder, Selection, agent

H = {HOSTILE!r}


class Q(BaseModel):
    question: str


class A(BaseModel):
    answer: str


class Route(Selection):
    pass


@agent(name="asker", version="1")
async def asker(q: Q, ctx: Context) -> A:
    # HOSTILE_VARIANT changes the request, so that a replay diverges and prints its diff.
    request = {{"model": H, "prompt": q.question + os.environ.get("HOSTILE_VARIANT", "")}}

    async def call() -> dict:
        return {{"text": H}}

    response = await ctx.effect("model", H, request, call)
    return A(answer=response["text"] + " / " + q.question)


@agent(name="router", version="1")
async def router(q: Q, ctx: Context) -> Route:
    ctx.decide(candidates=[H, "plain"], chosen=[H], reason=H, scores={{H: 1.0}})
    return Route(branches=["plain"])


@agent(name="breaker", version="1")
async def breaker(q: Q, ctx: Context) -> A:
    raise ValueError(H)


p = PipelineBuilder(H)
q = p.input("question", str)
r = p.node("route", router, question=q)
p.output("answer", p.node("ask", asker, question=q))
p.node("broken", breaker, question=q, optional=True)
p.node("skipped", breaker, question=q, when=r.selects(H))  # a branch label in the spec
pipeline = p.build()
"""

# Bytes a terminal acts on: C0 controls but newline and tab, DEL, C1 controls, bidi controls,
# line separators.
UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
SGR = re.compile("\x1b\\[[0-9;]*m")  # rich's own colours: the only escapes allowed


def assert_inert(output: str, *, escaped: bool = True) -> None:
    """No control reaches the output but SGR colours; no line is the forged one; and (when
    ``escaped``) the hostile text is there, visibly escaped."""
    plain = SGR.sub("", output)
    found = UNSAFE.search(plain)
    assert found is None, f"raw {found.group(0)!r} in output: {output!r}"
    for line in plain.splitlines():
        assert not line.lstrip(" │├└─┃╭╰┆").startswith(FORGED), output
    if escaped:
        assert "\\x1b[2J" in plain or "\\u001b[2J" in plain, output


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ORCH_STORE", raising=False)
    monkeypatch.delenv("HOSTILE_VARIANT", raising=False)
    (tmp_path / "hostile.py").write_text(PIPELINE)
    return tmp_path


def record(cli: CliRunner, question: str) -> str:
    result = cli.invoke(app, ["run", "hostile.py", "-i", f"question={question}", "--json"])
    assert result.exit_code == 0, result.output
    assert_inert(result.stdout)  # the JSON escapes too
    data = json.loads(result.stdout)
    assert data["outputs"]["answer"]["answer"].startswith(HOSTILE)
    return str(data["run_id"])


@pytest.fixture
def runs(workdir: Path) -> tuple[str, str]:
    cli = CliRunner()
    return record(cli, HOSTILE), record(cli, "other " + HOSTILE)


def tampered(workdir: Path, run_id: str) -> None:
    """Edit an event so that verification quotes attacker-written text in its problem."""
    store = DirectoryStore(workdir / ".orch")
    line = json.loads(store.read_events(run_id)[1])
    line["hash"] = HOSTILE  # verify prints the recorded hash it found
    store._tamper_event(run_id, 1, json.dumps(line).encode())
    store.close()


def commands(first: str, second: str) -> Iterator[tuple[list[str], int]]:
    """Every command that shows recorded text, with its expected exit code."""
    yield ["show", first], 0
    yield ["show", first, "--graph"], 0
    yield ["show", "hostile.py", "--graph"], 0
    yield ["runs"], 0
    yield ["diff", first, second], 1
    yield ["verify", first], 0


def test_show_runs_diff_verify_in_process(runs: tuple[str, str]) -> None:
    cli = CliRunner()
    for args, code in commands(*runs):
        result = cli.invoke(app, args)
        assert result.exit_code == code, (args, result.output)
        assert_inert(result.stdout + result.stderr, escaped=args[0] != "verify")
    shown = cli.invoke(app, ["show", runs[0]]).stdout
    assert f"\\n{FORGED}" in shown  # the fake line is there, on the line of its field
    assert "\\u202eevil" in shown and "\\rOVERWRITE" in shown and "\\x9b31m" in shown


def test_verify_of_a_tampered_run_quotes_it_inertly(workdir: Path, runs: tuple[str, str]) -> None:
    tampered(workdir, runs[0])
    result = CliRunner().invoke(app, ["verify", runs[0]])
    assert result.exit_code == 1, result.output
    assert "TAMPERED" in result.stdout
    assert_inert(result.stdout + result.stderr)


def test_json_output_escapes_every_control(runs: tuple[str, str]) -> None:
    cli = CliRunner()
    for args in (["show", runs[0]], ["runs"], ["diff", *runs], ["verify", runs[0]]):
        result = cli.invoke(app, [*args, "--json"])
        assert result.exit_code in (0, 1), result.output
        assert_inert(result.stdout, escaped=False)
        json.loads(result.stdout)  # still JSON, holding the very same strings
    shown = json.loads(cli.invoke(app, ["show", runs[0], "--json"]).stdout)
    decision = shown["steps"]["route"]["decisions"][0]
    assert decision["reason"] == HOSTILE  # escaped on the wire, exact once decoded


def test_replay_divergence_prints_its_diff_inertly(
    runs: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOSTILE_VARIANT", " changed")
    result = CliRunner().invoke(app, ["replay", runs[0]])
    assert result.exit_code == 1, result.output
    assert "DIVERGED" in result.stdout
    plain = SGR.sub("", result.stdout + result.stderr)
    assert UNSAFE.search(plain.replace("\n", "")) is None, plain
    assert "\\x1b[2J" in plain or "\\u001b[2J" in plain


def test_replay_divergence_cannot_forge_a_line(
    runs: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOSTILE_VARIANT", " changed")
    result = CliRunner().invoke(app, ["replay", runs[0]])
    assert_inert(result.stdout + result.stderr)


def test_report_prints_nothing_of_it(runs: tuple[str, str], workdir: Path) -> None:
    result = CliRunner().invoke(app, ["report", runs[0], "-o", "r.html"])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{workdir / 'r.html'}\n"
    assert result.stderr == ""


EVAL_PIPELINE = f"""
from orch import PipelineBuilder
from routers import baselines

p = PipelineBuilder({HOSTILE!r})
p.output("answer", p.node("r", baselines.single.with_config(model="cheap"),
                          question=p.input("question", str)))
pipeline = p.build()
"""


def test_eval_tables_show_names_inertly(workdir: Path) -> None:
    from routers.eval import Dataset, Sample, Task

    tasks = [
        Task(
            id=f"t{i}",
            question=f"{HOSTILE} {i}?",
            gold="A",
            split="test",
            responses={"cheap": [Sample(text=HOSTILE, score=0.0, cost_usd=0.001)]},
        )
        for i in range(2)
    ]
    data = Dataset(name="tiny" + HOSTILE.replace("\n", " "), tasks=tasks).save(workdir / "d.json")
    (workdir / "router.py").write_text(EVAL_PIPELINE)
    result = CliRunner().invoke(app, ["eval", str(data), "--pipeline", "router.py"])
    assert result.exit_code == 0, result.output
    assert_inert(result.stdout + result.stderr)


# -- real processes: a pipe, and a pseudo-terminal ----------------------------------------------


def process_env(columns: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    env.update(COLUMNS=str(columns), TERM="xterm-256color", PYTHONIOENCODING="utf-8")
    return env


def in_pipe(args: list[str], cwd: Path, columns: int) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "orch.cli", *args],
        cwd=cwd,
        env=process_env(columns),
        capture_output=True,
        check=False,
    )
    return done.returncode, (done.stdout + done.stderr).decode("utf-8")


def in_terminal(args: list[str], cwd: Path, columns: int) -> tuple[int, str]:
    """Run with stdout and stderr on a pseudo-terminal; return the exit code and all it got."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 60, columns, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "orch.cli", *args],
        cwd=cwd,
        env=process_env(columns),
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the process closed its end of the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    code = proc.wait()
    # The terminal driver writes every newline as CR LF (ONLCR): that CR is not the record's.
    return code, b"".join(chunks).decode("utf-8").replace("\r\n", "\n")


@pytest.mark.parametrize("runner", [in_pipe, in_terminal], ids=["pipe", "pty"])
def test_real_processes(runs: tuple[str, str], workdir: Path, runner: object) -> None:
    assert callable(runner)
    for columns in (200, 60):
        for args, code in commands(*runs):
            got, output = runner(args, workdir, columns)
            assert got == code, (args, output)
            # Narrow terminals fold the escaped text across lines: check it only when wide.
            assert_inert(output, escaped=columns == 200 and args[0] != "verify")
    if runner is in_terminal:
        _, output = in_terminal(["show", runs[0]], workdir, 200)
        assert SGR.search(output), "rich did not style its output: not a terminal to it?"
    tampered(workdir, runs[0])
    got, output = runner(["verify", runs[0]], workdir, 200)
    assert got == 1 and "TAMPERED" in output, output
    assert_inert(output)
