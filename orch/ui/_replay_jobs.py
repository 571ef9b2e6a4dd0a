"""The replays an ``orch ui`` server has started: one job per replay, run in the background.

A job runs :mod:`orch.ui._replay_worker` as a child process, watched by a worker thread that
reads its progress lines into the job, so the server's event loop never waits on it; the
replay page polls the job (``/runs/RUN/replay.json``). One replay per run at a time (asking
again while one runs is refused), at most :data:`MAX_RUNNING` at once, and at most
:data:`MAX_KEPT` jobs kept in memory (the oldest finished ones go first).

A replay process runs in a session (and process group) of its own, so that stopping it stops
whatever its pipeline started too: one that runs longer than the server's replay time limit
(``orch ui --replay-timeout``) is stopped and its job fails saying so, and when the server
shuts down (:meth:`ReplayJobs.close`) every replay process is stopped before it exits.

What a job shows is what the worker said, never its traceback: an unexpected failure is one
line on the page, and the worker's stderr goes to the server's log.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import signal
import subprocess
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from orch.ui._errors import UiError

__all__ = [
    "MAX_KEPT",
    "MAX_RUNNING",
    "ReplayJob",
    "ReplayJobs",
    "ReplayRequest",
    "run_worker",
    "stop_group",
    "timed_out",
]

log = logging.getLogger("orch.ui")

MAX_KEPT = 32
"""Jobs a server keeps (running ones always; then the newest finished ones)."""
MAX_RUNNING = 2
"""Replays running at once (each is a process importing a pipeline)."""
_MAX_LINE = 1 << 20  # one protocol line; a longer one is cut and dropped, never buffered whole
_STDERR_KEPT = 4000  # characters of a failed worker's stderr sent to the log
_GRACE = 3.0  # seconds a stopped replay process has to end on SIGTERM before SIGKILL


@dataclass(frozen=True)
class ReplayRequest:
    """What a job replays: a run of the store at ``store`` (a location the worker opens)."""

    store: str
    run_id: str
    record: bool = False
    accept_changed: bool = False


@dataclass
class ReplayJob:
    """One replay and how far it got (updated by the worker thread, read by pages)."""

    number: int
    request: ReplayRequest
    state: str = "running"
    """``running``, then ``clean``, ``diverged``, ``refused`` (changed sources) or ``failed``."""
    done: int = 0
    total: int | None = None
    target: str | None = None
    line: str = ""
    """Why it was refused or failed (one line)."""
    changes: list[dict[str, Any]] = field(default_factory=list)
    """Changed source files: why it was refused, or what a replay with them ran with."""
    report: dict[str, Any] | None = None
    """The replay report (``orch replay --json``) once it ended."""
    timeout: float | None = None
    """Seconds its replay process may run (None: no limit)."""
    _stopper: Callable[[str], None] | None = field(default=None, repr=False, compare=False)
    _stop_asked: str | None = field(default=None, repr=False, compare=False)
    _stop_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        return self.state != "running"

    def hear(self, message: dict[str, Any]) -> None:
        """Take one line the worker said (unknown or malformed ones change nothing)."""
        event = message.get("event")
        if event == "plan":
            total = message.get("total")
            self.total = total if isinstance(total, int) else None
            self.target = str(message.get("target"))
            self.changes = _changes(message.get("changed"))
        elif event == "progress" and isinstance(message.get("done"), int):
            self.done = message["done"]
        elif event == "report" and isinstance(message.get("report"), dict):
            self.report = message["report"]
            if isinstance(message.get("done"), int):
                self.done = message["done"]
            self.state = "clean" if self.report.get("clean") is True else "diverged"
        elif event == "refused":
            self.state, self.line = "refused", str(message.get("line", ""))
            self.target = str(message.get("target"))
            self.changes = _changes(message.get("changes"))
        elif event == "error":
            self.state, self.line = "failed", str(message.get("line", "the replay failed"))

    def on_stop(self, stopper: Callable[[str], None] | None) -> None:
        """The runner's way to stop its replay (None once its process ended); called at once
        when the job was asked to stop before the runner could say how."""
        with self._stop_lock:
            self._stopper = stopper
            asked = self._stop_asked
        if stopper is not None and asked is not None:
            stopper(asked)

    def stop(self, why: str) -> None:
        """Stop the replay (``timeout`` or ``shutdown``); returns once its process ended."""
        with self._stop_lock:
            self._stop_asked = self._stop_asked or why
            stopper = self._stopper
        if stopper is not None:
            stopper(why)

    def to_json(self) -> dict[str, Any]:
        return {
            "job": self.number,
            "run_id": self.request.run_id,
            "record": self.request.record,
            "accept_changed": self.request.accept_changed,
            "state": self.state,
            "finished": self.finished,
            "done": self.done,
            "total": self.total,
            "target": self.target,
            "line": self.line,
            "changes": self.changes,
            "report": self.report,
        }


def _changes(raw: object) -> list[dict[str, Any]]:
    return [c for c in raw if isinstance(c, dict)] if isinstance(raw, list) else []


Runner = Callable[[ReplayJob, Callable[[dict[str, Any]], None]], None]
"""Runs a job's replay, giving each message to the callback (the worker process by default;
tests pass their own)."""


def run_worker(job: ReplayJob, hear: Callable[[dict[str, Any]], None]) -> None:
    """Run :mod:`orch.ui._replay_worker` for ``job`` and pass on each line it says; stop it
    (its whole process group) when it runs longer than ``job.timeout`` or is asked to."""
    request = job.request
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "orch.ui._replay_worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        # A group of its own: stopping it stops what the pipeline started, and a Ctrl-C
        # meant for the server reaches the server, which then stops it (close()).
        start_new_session=True,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    errors: list[bytes] = []
    drain = threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)  # type: ignore[union-attr]
    drain.start()
    stopped: list[str] = []  # why it was stopped, first reason first

    def stop(why: str) -> None:
        stopped.append(why)
        stop_group(proc)

    job.on_stop(stop)
    timer = None
    if job.timeout is not None:
        timer = threading.Timer(job.timeout, job.stop, args=("timeout",))
        timer.daemon = True
        timer.start()
    try:
        # The location goes on stdin, not the command line: a PostgreSQL URL may hold a
        # password. A process stopped already has closed its end: nothing more to say.
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(
                orjson.dumps(
                    {
                        "store": request.store,
                        "run_id": request.run_id,
                        "record": request.record,
                        "accept_changed": request.accept_changed,
                    }
                )
            )
            proc.stdin.close()
        for raw in iter(lambda: proc.stdout.readline(_MAX_LINE), b""):  # type: ignore[union-attr]
            try:
                message = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue  # a cut line: the report that follows (or the exit code) tells
            if isinstance(message, dict):
                hear(message)
        code = proc.wait()
    finally:
        if timer is not None:
            timer.cancel()
        job.on_stop(None)
    drain.join(_GRACE)  # a process its pipeline moved out of the group may hold the pipe
    if stopped and not job.finished:
        if stopped[0] == "timeout":
            log.warning(
                "orch ui: replay of run %s ran longer than %g s and was stopped",
                request.run_id,
                job.timeout,
            )
            hear({"event": "error", "line": timed_out(job)})
        else:
            hear({"event": "error", "line": "the server shut down while the replay ran"})
        return
    if code != 0 or not job.finished:
        tail = b"".join(errors).decode("utf-8", "replace")[-_STDERR_KEPT:]
        log.warning("orch ui: replay of run %s: worker exit %s: %s", request.run_id, code, tail)
    if not job.finished:
        hear({"event": "error", "line": f"the replay process ended (exit {code}) without a report"})


def timed_out(job: ReplayJob) -> str:
    """The line of a replay stopped at the time limit: what happened and the two fixes."""
    run_id = job.request.run_id
    shell = f"orch replay {run_id}" + ("" if job.request.record else " --no-record")
    return (
        f"the replay took longer than {job.timeout:g} s and was stopped; fix: replay it from "
        f"a shell, where it has no time limit ({shell}), or start orch ui with a larger "
        "--replay-timeout"
    )


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop ``proc`` and its process group: SIGTERM, then SIGKILL after :data:`_GRACE`
    seconds (to the group in any case: what the pipeline started may outlive its leader)."""
    if sys.platform == "win32":  # no process groups to signal
        proc.kill()
        proc.wait()
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return  # the group is gone already
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(_GRACE)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


class ReplayJobs:
    """The jobs of one server (thread-safe; see the module docstring)."""

    def __init__(
        self,
        runner: Runner = run_worker,
        *,
        kept: int = MAX_KEPT,
        running: int = MAX_RUNNING,
        timeout: float | None = None,
    ) -> None:
        self.runner = runner
        self.kept = kept
        self.running = running
        self.timeout = timeout
        """Seconds a replay may run before it is stopped (None: no limit)."""
        self._closed = False
        self._jobs: OrderedDict[int, ReplayJob] = OrderedDict()
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    def latest(self, run_id: str) -> ReplayJob | None:
        """The newest job of ``run_id`` still kept, or None."""
        with self._lock:
            found = [j for j in self._jobs.values() if j.request.run_id == run_id]
            return found[-1] if found else None

    def snapshot(self, run_id: str) -> dict[str, Any] | None:
        """The newest job of ``run_id`` as JSON, read under the lock (a consistent view)."""
        with self._lock:
            found = [j for j in self._jobs.values() if j.request.run_id == run_id]
            return found[-1].to_json() if found else None

    def start(self, request: ReplayRequest) -> ReplayJob:
        """Start replaying ``request``; UiError 409 while that run replays, 429 when
        :attr:`running` replays already run."""
        with self._lock:
            if self._closed:
                raise UiError(503, "this server is shutting down; fix: start orch ui again")
            busy = [j for j in self._jobs.values() if not j.finished]
            if any(j.request.run_id == request.run_id for j in busy):
                raise UiError(
                    409,
                    f"a replay of run {request.run_id} is already running; fix: wait for it "
                    "to end (its page shows how far it got)",
                )
            if len(busy) >= self.running:
                raise UiError(
                    429,
                    f"{len(busy)} replays are running, the most this server runs at once; "
                    "fix: wait for one to end",
                )
            job = ReplayJob(next(self._numbers), request, timeout=self.timeout)
            self._jobs[job.number] = job
            self._trim()
        threading.Thread(
            target=self._run, args=(job,), name=f"orch-ui-replay-{job.number}", daemon=True
        ).start()
        return job

    def close(self) -> None:
        """Stop every running replay (its process group) and start no other: the server
        shuts down. Returns once their processes ended."""
        with self._lock:
            self._closed = True
            busy = [j for j in self._jobs.values() if not j.finished]
        stoppers = [threading.Thread(target=j.stop, args=("shutdown",), daemon=True) for j in busy]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join()

    def _trim(self) -> None:
        finished = [n for n, j in self._jobs.items() if j.finished]
        while len(self._jobs) > self.kept and finished:
            del self._jobs[finished.pop(0)]

    def _hear(self, job: ReplayJob, message: dict[str, Any]) -> None:
        with self._lock:
            if not job.finished:  # the first ending counts; nothing after it
                job.hear(message)

    def _run(self, job: ReplayJob) -> None:
        try:
            self.runner(job, lambda message: self._hear(job, message))
        except Exception as exc:  # the page gets one line, the log the traceback
            log.exception("orch ui: replay job %s failed", job.number)
            self._hear(job, {"event": "error", "line": f"the replay failed ({type(exc).__name__})"})
        finally:
            if not job.finished:
                self._hear(job, {"event": "error", "line": "the replay ended without a report"})
            with self._lock:
                self._trim()

    def __len__(self) -> int:
        with self._lock:
            return len(self._jobs)
