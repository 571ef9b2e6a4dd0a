"""One replay for ``orch ui``, in a process of its own: ``python -m orch.ui._replay_worker``.

The server starts this module per replay (:mod:`orch.ui._replay_jobs`) and reads what it
says. A process of its own because a replay imports the pipeline file the run records, and
an import happens once per process (:func:`orch._loader.import_file`): a long-running server
would replay an edited file with the code it imported first, while the source check read the
disk. Here every replay imports what is on disk now, the check and the import agree, and the
pipeline's own code runs outside the server.

It replays the way ``orch replay`` does, with the engine's own pieces: the recorded pipeline
file, imported only once every source file the run records is on disk as recorded
(:func:`orch._replay.check_recorded_pipeline`; with ``accept_changed`` the file is imported
as it is now, as ``orch replay RUN --pipeline RECORDED-TARGET`` would), the file's services
(and ``$ORCH_MODELS``) as :func:`orch._services.command_services` builds them, and
:func:`orch._replay.areplay` on the store itself when asked to record, else on an overlay
(:func:`orch._replay.replay_store`), so that nothing is written.

Protocol: one JSON request on stdin (``store`` location, ``run_id``, ``record``,
``accept_changed``); JSON lines on stdout, each with an ``event``: ``plan`` (the target and
``total`` steps), ``progress`` (``done`` steps), then one of ``report`` (the replay report,
as ``orch replay --json`` gives it), ``refused`` (changed source files, nothing imported) or
``error`` (one line). What the pipeline prints goes to stderr, never into the protocol, and
a traceback only to stderr (the server's log).

The server starts it in a process group of its own and stops that group (time limit,
shutdown). A server killed outright (SIGKILL) cannot: then this process notices that its
parent is gone and stops its own group, so that no replay outlives its server for long.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from functools import partial
from typing import Any

import anyio
import orjson

from orch._events import RunEvent
from orch._loader import load_pipeline
from orch._replay import areplay, check_recorded_pipeline, replay_store
from orch._services import command_services, with_services
from orch.errors import OrchError
from traces import TraceError, open_store

__all__ = ["main", "replay"]

Say = Callable[..., None]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def replay(request: dict[str, Any], say: Say) -> None:
    """Run the replay ``request`` asks for, telling ``say`` how it goes (module docstring)."""
    store = open_store(str(request["store"]), create=False)
    try:
        run_id = store.resolve_run(str(request["run_id"]))
        found = check_recorded_pipeline(store, run_id)
        if found is None:
            say(
                event="error",
                line=f"run {run_id} does not record which file its pipeline came from (it was "
                f"not started by 'orch run'); fix: replay it from a shell: orch replay {run_id} "
                "--pipeline FILE.py:NAME",
            )
            return
        if found.changes and not request.get("accept_changed"):
            say(
                event="refused",
                target=found.target,
                changes=[c.to_json() for c in found.changes],
                line=f"{len(found.changes)} source file(s) of run {run_id} changed since it ran; "
                "nothing was imported; fix: replay with the code as it is now (tick the box), "
                "or restore the recorded files",
            )
            return
        head = store.read_run_head(run_id)
        record_key = orjson.loads(head or b"{}").get("root_hash")
        total = len(store.get_value(record_key)["steps"]) if record_key else None
        say(
            event="plan",
            target=found.target,
            total=total,
            sources=None if found.sources is None else len(found.sources.files),
            changed=[c.to_json() for c in found.changes],
        )
        target = store if request.get("record") else replay_store(store, record=False)
        pipeline = load_pipeline(found.target)
        services = command_services(found.target, None)
        done = 0

        def heard(event: RunEvent) -> None:
            nonlocal done
            if event.kind == "step_end":
                done += 1
                say(event="progress", done=done)

        report = anyio.run(
            with_services,
            services,
            partial(areplay, pipeline, run_id, target, services=services, on_event=heard),
        )
        say(event="report", report=report.to_json(), done=done)
    finally:
        store.close()


_ORPHAN_CHECK = 1.0  # seconds between two looks at whether the server is still there


def _watch_parent() -> None:
    """Stop this process's group once its parent (the server) is gone: re-parented, the
    process's parent id changes."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_ORPHAN_CHECK)
        if os.getpgrp() == os.getpid():  # the group is the replay's own (as the server starts it)
            os.killpg(os.getpgrp(), signal.SIGKILL)
        os._exit(1)

    if sys.platform != "win32":
        threading.Thread(target=watch, name="orch-replay-orphan-watch", daemon=True).start()


def main() -> int:
    _watch_parent()
    # The protocol gets stdout's descriptor to itself; anything the pipeline prints (print,
    # a library's banner) goes to stderr instead of into a line the server parses.
    protocol = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def say(**message: Any) -> None:
        protocol.write(orjson.dumps(message) + b"\n")

    try:
        request = orjson.loads(sys.stdin.buffer.read())
        replay(request if isinstance(request, dict) else {}, say)
    except (OrchError, TraceError) as exc:  # they name the thing and the fix in one line
        say(event="error", line=str(exc).strip().splitlines()[0] if str(exc).strip() else "")
        return 1
    except Exception as exc:  # one line for the page; the traceback for the server's log
        traceback.print_exc()
        say(event="error", line=_first_line(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
