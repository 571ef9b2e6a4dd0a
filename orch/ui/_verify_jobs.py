"""Verifications of the whole store that an ``orch ui`` server runs in the background.

Verifying a big store takes minutes, too long for one request: the verify page starts a job
here and goes to the job's page (``/verify/jobs/N``), which polls the job's progress
(``/verify/jobs/N.json``: phase, count and total, as :func:`traces.verify_store` tells them)
and, once it ended, shows its report. A job is a thread of the server's process, which is
enough: verification only reads the store, and the server's event loop never waits on it.

One verification of the store at a time per server (asking again while one runs gets the
running one), and at most :data:`MAX_KEPT` jobs kept in memory (the oldest finished ones go
first). A job never shows a traceback: an unexpected failure is one line (its type and
message) on its page, the traceback goes to the server's log.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from traces import ArtifactStore, Verifier, VerifyReport, verify_store

__all__ = ["MAX_KEPT", "QUICK", "VerifyJob", "VerifyJobs"]

log = logging.getLogger("orch.ui")

MAX_KEPT = 8
"""Jobs a server keeps (the running one always; then the newest finished ones)."""
QUICK = 3.0
"""Seconds the request that started a job waits for it to end before it shows the job's
page: a small store's report comes straight away, with no progress page in between."""


class _Stopped(Exception):
    """Raised from the progress hook to end a job whose server shuts down."""


@dataclass
class VerifyJob:
    """One verification of the store and how far it got (updated by its thread, read by
    pages under :class:`VerifyJobs`' lock)."""

    number: int
    state: str = "running"
    """``running``, then ``done`` (a report, intact or not), ``failed`` or ``stopped``."""
    phase: str = "starting"
    """What it checks now: ``artifacts``, ``ledger``, ``runs`` (as verify_store names them),
    then ``done``."""
    counts: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    """Per phase begun, in order: how many of its items are done, of how many (None while
    unknown)."""
    report: VerifyReport | None = None
    line: str = ""
    """Why it failed or stopped (one line)."""

    @property
    def finished(self) -> bool:
        return self.state != "running"

    def to_json(self) -> dict[str, Any]:
        return {
            "job": self.number,
            "state": self.state,
            "finished": self.finished,
            "phase": self.phase,
            "phases": {p: {"done": d, "total": t} for p, (d, t) in self.counts.items()},
            "line": self.line,
            "ok": None if self.report is None else self.report.ok,
            "report": None
            if self.report is None
            else self.report.model_dump(mode="json") | {"ok": self.report.ok},
        }


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class VerifyJobs:
    """The store verifications of one server (thread-safe; see the module docstring)."""

    def __init__(self, *, kept: int = MAX_KEPT, quick: float = QUICK) -> None:
        self.kept = kept
        self.quick = quick
        self._jobs: OrderedDict[int, VerifyJob] = OrderedDict()
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._ended: dict[int, threading.Event] = {}
        self._closed = False

    def get(self, number: int) -> dict[str, Any] | None:
        """Job ``number`` as JSON, read under the lock (a consistent view), or None."""
        with self._lock:
            job = self._jobs.get(number)
            return None if job is None else job.to_json()

    def report(self, number: int) -> VerifyReport | None:
        """The report of job ``number`` once it has one (a report is never changed after)."""
        with self._lock:
            job = self._jobs.get(number)
            return None if job is None else job.report

    def start(self, store: ArtifactStore, trusted: Sequence[Verifier]) -> tuple[int, bool]:
        """Verify ``store`` in the background: (the job's number, whether it is a new one).
        While a job runs, no other starts: its number comes back instead."""
        with self._lock:
            for number, job in self._jobs.items():
                if not job.finished:
                    return number, False
            job = VerifyJob(next(self._numbers))
            if self._closed:
                job.state, job.line = "stopped", "the server is shutting down"
            ended = self._ended[job.number] = threading.Event()
            self._jobs[job.number] = job
            self._trim()
        if job.finished:
            ended.set()
            return job.number, True
        threading.Thread(
            target=self._run,
            args=(job, store, tuple(trusted)),
            name=f"orch-ui-verify-{job.number}",
            daemon=True,
        ).start()
        return job.number, True

    def wait(self, number: int, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for job ``number`` to end; whether it ended."""
        event = self._ended.get(number)
        return event is None or event.wait(timeout)

    def close(self) -> None:
        """Stop the running job at its next progress call and start no other (shutdown)."""
        with self._lock:
            self._closed = True

    def _trim(self) -> None:
        finished = [n for n, j in self._jobs.items() if j.finished]
        while len(self._jobs) > self.kept and finished:
            number = finished.pop(0)
            del self._jobs[number]
            self._ended.pop(number, None)

    def _progress(self, job: VerifyJob, phase: str, done: int, total: int | None) -> None:
        with self._lock:
            if self._closed:
                raise _Stopped
            job.phase = phase
            job.counts[phase] = (done, total)

    def _run(self, job: VerifyJob, store: ArtifactStore, trusted: tuple[Verifier, ...]) -> None:
        report: VerifyReport | None = None
        line = ""
        state = "done"
        try:
            report = verify_store(
                store, trusted=trusted, progress=lambda *a: self._progress(job, *a)
            )
        except _Stopped:
            state, line = "stopped", "the server shut down while it ran"
        except Exception as exc:  # the page gets one line, the log the traceback
            with self._lock:
                closing = self._closed
            if closing:  # the store may be closed under it: no traceback worth a log
                state, line = "stopped", "the server shut down while it ran"
            else:
                log.exception("orch ui: verification job %s failed", job.number)
                state, line = "failed", _one_line(exc)
        with self._lock:
            if report is not None:
                job.phase = "done"
            job.state, job.line, job.report = state, line, report
            event = self._ended.get(job.number)
            self._trim()
        if event is not None:
            event.set()

    def __len__(self) -> int:
        with self._lock:
            return len(self._jobs)
