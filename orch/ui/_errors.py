"""Errors of ``orch ui`` pages and the handlers that turn any failure into one clear line.

A page raises :class:`UiError` for what the user asked wrongly (a bad run id, an unknown run,
a filter that is not one); the store's own errors (a run that is not there, an artifact that
fails its hash check, a head that does not parse) are caught here too. Whatever happens, the
answer is a page, or a JSON object for a ``.json`` path, saying what went wrong in one line
with its fix: never a traceback, which goes to the server's log only.
"""

from __future__ import annotations

import logging

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from orch.ui._templating import common_context, templates
from traces import InvalidRunIdError, RunNotFoundError, TraceError

__all__ = ["UiError", "error_response", "handle_error"]

log = logging.getLogger("orch.ui")

_MAX_LINE = 600  # a message may quote recorded text: keep the page one line long


class UiError(Exception):
    """A request the pages cannot answer: ``status`` and one line naming the fix."""

    def __init__(self, status: int, line: str) -> None:
        super().__init__(line)
        self.status = status
        self.line = line


def _classify(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, UiError):
        return exc.status, exc.line
    if isinstance(exc, HTTPException):
        if exc.status_code == 404:
            return 404, "no such page; fix: start from the runs list at /"
        return exc.status_code, str(exc.detail)
    if isinstance(exc, InvalidRunIdError):
        return 400, str(exc)
    if isinstance(exc, RunNotFoundError):
        return 404, str(exc)
    if isinstance(exc, TraceError):
        return 422, f"the store cannot be read as recorded: {exc}; fix: run orch verify --all"
    if isinstance(exc, ValidationError):
        errors = exc.errors()
        where = ".".join(str(p) for p in errors[0]["loc"]) if errors else ""
        msg = errors[0]["msg"] if errors else "invalid"
        return 422, (
            f"a record in the store does not parse ({exc.title}, {where or 'a record'}: "
            f"{msg}); fix: run orch verify --all"
        )
    log.exception("orch ui: unexpected error")
    return 500, f"internal error ({type(exc).__name__}); the server's log has the details"


def error_response(request: Request, status: int, line: str) -> Response:
    """The error page (or JSON object) for ``status`` and ``line``."""
    line = line if len(line) <= _MAX_LINE else line[: _MAX_LINE - 1] + "…"
    if request.url.path.endswith(".json"):
        return JSONResponse({"error": line, "status": status}, status_code=status)
    try:
        return templates.TemplateResponse(
            request,
            "error.html",
            common_context(request) | {"status": status, "line": line},
            status_code=status,
        )
    except Exception:  # the error page itself must not fail into a traceback
        log.exception("orch ui: the error page failed")
        return PlainTextResponse(line + "\n", status_code=status)


async def handle_error(request: Request, exc: Exception) -> Response:
    """Starlette exception handler for every exception (see the module docstring)."""
    status, line = _classify(exc)
    return error_response(request, status, line)
