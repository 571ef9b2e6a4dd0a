"""The example service: orch embedded in a chat web app (Starlette, SSE via sse-starlette).

Endpoints (JSON in; a run's events out as server-sent events)::

    POST /sessions/{sid}/messages   {"text": ...}            -> SSE: the turn's events
    POST /runs/{run_id}/answer      {"by": ..., "values": {...}, "question": null}
                                                             -> SSE: the resumed run's events
                                                                (422 + one line: refused)
    GET  /runs/{run_id}             status, root hash, reply, questions, verification
    GET  /sessions/{sid}            the thread's turns and its messages

Each session is a conversation thread (thread id = session id): a message starts the thread's
next turn, one turn at a time per session, and the pipeline's ``state`` carries the messages.
Every request that runs something is one recorded run in one store. An SSE event is a
:class:`orch.RunEvent` as JSON (``kind``, ``run_id``, ``step``, ``seq``, ``hash``, ``t``,
``data``) under the event name of its kind: ``run_start``, ``step_start``, ``decision``,
``effect_start``, ``token``, ``effect``, ``ask``, ``step_end``, ``run_end``; then the service's
own ``result`` (run id, status, root hash, reply, the questions of a waiting run) or ``error``
(a run that could not start). A client that disconnects before the end cancels its run, which
is recorded as ``cancelled`` with that reason (and can be resumed like any run).

This module must never reach into orch's, traces' or agents' private modules, and never
answer a question itself: answers come from a person, through ``/runs/{id}/answer``.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import orch
from traces import (
    ArtifactStore,
    default_store_location,
    load_run_view,
    open_store,
    require_writable,
    verify_run,
)
from traces.errors import InvalidRunIdError, RunNotFoundError, TraceError

from . import pipeline as chat

__all__ = ["DISCONNECTED", "ChatService", "Settings", "create_app"]

M = TypeVar("M", bound=BaseModel)

DISCONNECTED = "the client disconnected from the event stream"
"""The reason a run is recorded cancelled with when its client goes away."""
_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""A session id is its thread's id: what orch accepts as one, at most 64 characters."""
_ORIGIN = {"pipeline": f"{Path(chat.__file__).resolve()}:pipeline"}
"""Recorded with each run, so that ``orch replay RUN`` finds the pipeline and its services."""


@dataclass(frozen=True)
class Settings:
    """Where the service records and which model it talks to (``python -m examples.service
    --help`` sets them from the command line and the environment)."""

    store: str = field(default_factory=default_store_location)
    """The store every run is recorded in: ``$ORCH_STORE``, else ``.orch`` (a directory)."""
    base_url: str | None = None
    """An OpenAI-compatible server (``$ORCH_SERVICE_BASE_URL``); see :func:`chat.model_hub`."""
    model: str | None = None
    """The server's model name (``$ORCH_SERVICE_MODEL``)."""
    models_file: str | None = None
    """A model registry file defining ``assistant`` (``$ORCH_MODELS``), instead of a URL."""
    notes: str | None = None
    """The note book's file (``$ORCH_SERVICE_NOTES``)."""
    max_buffer: int = 256
    """Events a slow client may leave unread before the run's next steps wait for it."""


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=20_000)


class AnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    by: str
    """Who answers (recorded with the answer)."""
    values: dict[str, Any]
    question: str | None = None
    """The question's id, when the run waits on several."""


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _body(request: Request, model: type[M]) -> M | JSONResponse:
    """The request's JSON body as ``model``, or the 4xx response saying what is wrong."""
    try:
        raw = await request.json()
    except ValueError:
        return _error(400, "the body is not JSON; fix: send a JSON object")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        fields = ", ".join(model.model_fields)
        return _error(422, f"{where}: {err['msg']}; fix: send a JSON object with {fields}")


def sse_event(event: orch.RunEvent) -> ServerSentEvent:
    """One run event as a server-sent event named by its kind."""
    body = {
        "kind": event.kind,
        "run_id": event.run_id,
        "step": event.step,
        "seq": event.seq,
        "hash": event.hash,
        "t": event.t,
        "data": dict(event.data),
    }
    return ServerSentEvent(json.dumps(body, default=str), event=event.kind)


def result_event(result: orch.RunResult) -> ServerSentEvent:
    """The service's last event of a stream: how the run ended, and what to do next."""
    body: dict[str, Any] = {
        "run_id": result.run_id,
        "status": result.status,
        "root_hash": result.root_hash,
        "reply": result.outputs.get("reply"),
        "error": result.error.model_dump(mode="json") if result.error else None,
    }
    if result.status == "waiting":
        body["questions"] = [q.model_dump(mode="json", by_alias=True) for q in result.questions]
        body["answer"] = f"/runs/{result.run_id}/answer"
    return ServerSentEvent(json.dumps(body, default=str), event="result")


def error_event(exc: BaseException) -> ServerSentEvent:
    body = {"error": f"{type(exc).__name__}: {exc}"}
    return ServerSentEvent(json.dumps(body), event="error")


class ChatService:
    """The app's state: one store, the pipeline's services, and who is running what."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store: ArtifactStore = require_writable(open_store(settings.store))
        self.services = chat.services(
            settings.base_url, settings.model, settings.models_file, settings.notes
        )
        self._turns: dict[str, anyio.Lock] = {}
        """A lock per session with a turn running or waiting to: its turns run one at a
        time (orch would refuse the second with ThreadBusyError)."""
        self._resuming: set[str] = set()
        """Runs an answer is resuming now (a second answer gets an error event)."""

    async def aclose(self) -> None:
        await self.services["models"].aclose()
        self.store.close()

    # -- endpoints ---------------------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        return JSONResponse(
            {
                "service": "orch example chat service",
                "store": self.store.location,
                "endpoints": [
                    "POST /sessions/{sid}/messages",
                    "GET /sessions/{sid}",
                    "POST /runs/{run_id}/answer",
                    "GET /runs/{run_id}",
                ],
            }
        )

    async def post_message(self, request: Request) -> Response:
        sid = request.path_params["sid"]
        if not _SESSION_ID.fullmatch(sid):
            return _error(
                422,
                f"session id {sid!r} is not usable as a thread id; fix: use 1 to 64 letters, "
                "digits, '_', '.' or '-', starting with a letter or digit",
            )
        body = await _body(request, MessageIn)
        if isinstance(body, Response):
            return body
        control = orch.RunControl()
        events = self._events(control, {"text": body.text}, guard=self._turn(sid), thread=sid)
        return self._stream(events, control)

    async def post_answer(self, request: Request) -> Response:
        body = await _body(request, AnswerIn)
        if isinstance(body, Response):
            return body
        try:
            run_id = self.store.resolve_run(request.path_params["run_id"])
            answers = orch.check_answer(
                self.store, run_id, body.values, by=body.by, question=body.question
            )
        except (RunNotFoundError, InvalidRunIdError) as exc:
            return _error(404, str(exc))
        except orch.errors.AnswerError as exc:  # the run still waits
            return _error(422, str(exc))
        control = orch.RunControl()
        events = self._events(
            control, None, guard=self._claim(run_id), resume=run_id, answers=answers
        )
        return self._stream(events, control)

    async def get_run(self, request: Request) -> Response:
        try:
            run_id = self.store.resolve_run(request.path_params["run_id"])
        except (RunNotFoundError, InvalidRunIdError) as exc:
            return _error(404, str(exc))
        view = load_run_view(self.store, run_id)
        head, record = view.head, view.record
        # What `orch verify RUN` checks; in the event loop, as every store access here is
        # (one run's check is quick; the store object is not shared with other threads).
        report = verify_run(self.store, run_id)
        body: dict[str, Any] = {
            "run_id": run_id,
            "status": head.status,
            "root_hash": head.root_hash,
            "thread": head.thread,
            "turn": head.turn,
            "resumed_from": head.resumed_from,
            "resumed_by": head.resumed_by,
            "error": record.error.model_dump(mode="json") if record and record.error else None,
            "reply": view.value(record.outputs["reply"])
            if record and "reply" in record.outputs
            else None,
            "verify": report.model_dump(mode="json") | {"ok": report.ok},
        }
        if head.status == "waiting":
            body["questions"] = [
                q.model_dump(mode="json", by_alias=True)
                for q in orch.pending_questions(self.store, run_id)
            ]
        return JSONResponse(body)

    async def get_session(self, request: Request) -> Response:
        sid = request.path_params["sid"]
        turns = orch.thread_turns(self.store, sid) if _SESSION_ID.fullmatch(sid) else []
        if not turns:
            return _error(404, f"no session {sid!r}; fix: POST /sessions/{sid}/messages first")
        messages: list[Any] = []
        for turn in reversed(turns):  # the conversation as the last finished turn left it
            if turn.status == "ok":
                view = load_run_view(self.store, turn.run_id)
                if view.record is not None and "state" in view.record.outputs:
                    messages = view.value(view.record.outputs["state"])["messages"]
                    break
        rows = [
            {"turn": t.turn, "run_id": t.run_id, "status": t.status, "root_hash": t.root_hash}
            for t in turns
        ]
        return JSONResponse({"session": sid, "turns": rows, "messages": messages})

    # -- running -----------------------------------------------------------------------------

    def _stream(self, events: AsyncIterator[ServerSentEvent], control: orch.RunControl) -> Response:
        async def client_left(_message: Any) -> None:
            # Called as the disconnect arrives, before the response's tasks are cancelled:
            # the run is recorded cancelled with this reason, not a generic one.
            control.cancel(DISCONNECTED)

        return EventSourceResponse(events, client_close_handler_callable=client_left)

    @asynccontextmanager
    async def _turn(self, sid: str) -> AsyncIterator[None]:
        lock = self._turns.setdefault(sid, anyio.Lock())
        try:
            async with lock:
                yield
        finally:
            # A released lock passes to its next waiter (still locked then): drop it only
            # when no one holds or wants it, so the map holds busy sessions only.
            if not lock.locked() and not lock.statistics().tasks_waiting:
                self._turns.pop(sid, None)

    @asynccontextmanager
    async def _claim(self, run_id: str) -> AsyncIterator[None]:
        if run_id in self._resuming:
            raise orch.errors.AnswerError(
                f"run {run_id} is being resumed by another answer; fix: read that stream, or "
                f"GET /runs/{run_id}"
            )
        self._resuming.add(run_id)
        try:
            yield
        finally:
            self._resuming.discard(run_id)

    async def _events(
        self,
        control: orch.RunControl,
        inputs: dict[str, Any] | None,
        *,
        guard: AbstractAsyncContextManager[Any] | None = None,
        **options: Any,
    ) -> AsyncIterator[ServerSentEvent]:
        """Run the pipeline (``options`` are orch.stream's) and yield its events as SSE."""
        try:
            async with guard or contextlib.nullcontext():
                async with orch.stream(
                    chat.pipeline,
                    inputs,
                    store=self.store,
                    services=self.services,
                    control=control,
                    origin=_ORIGIN,
                    max_buffer=self.settings.max_buffer,
                    **options,
                ) as events:
                    async for event in events:
                        yield sse_event(event)
                assert events.result is not None
                yield result_event(events.result)
        except (orch.OrchError, TraceError) as exc:  # a run that could not start (or resume)
            yield error_event(exc)

    def app(self) -> Starlette:
        @asynccontextmanager
        async def lifespan(_app: Starlette) -> AsyncIterator[None]:
            yield
            await self.aclose()

        routes = [
            Route("/", self.index),
            Route("/sessions/{sid}/messages", self.post_message, methods=["POST"]),
            Route("/sessions/{sid}", self.get_session),
            Route("/runs/{run_id}/answer", self.post_answer, methods=["POST"]),
            Route("/runs/{run_id}", self.get_run),
        ]
        return Starlette(routes=routes, lifespan=lifespan)


def create_app(settings: Settings | None = None) -> Starlette:
    """The ASGI app (``uvicorn --factory examples.service.app:create_app`` works too)."""
    return ChatService(settings or Settings()).app()
