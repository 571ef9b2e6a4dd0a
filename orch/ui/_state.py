"""What every page of one ``orch ui`` server shares: its settings, its verification cache,
the run-id rules, and rendering a template with the navigation around it.

Pages are plain functions of a request; a failure in one becomes the error page through
:func:`guarded`, never a traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from orch.ui._errors import UiError, error_response, handle_error
from orch.ui._settings import UiSettings
from orch.ui._templating import common_context, templates
from orch.ui._verify_cache import VerifyCache
from traces import ArtifactStore, check_run_id

__all__ = ["NavLink", "UiState", "guarded", "render", "resolve_run", "state_of"]


@dataclass(frozen=True)
class NavLink:
    """An entry of the navigation bar (pages added later register theirs)."""

    label: str
    path: str


@dataclass
class UiState:
    settings: UiSettings
    verify: VerifyCache
    nav: list[NavLink]

    @property
    def store(self) -> ArtifactStore:
        return self.settings.store


def state_of(request: Request) -> UiState:
    state: UiState = request.app.state.ui
    return state


def render(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    """Template ``name`` with ``context`` and what every page shows around it."""
    return templates.TemplateResponse(
        request, name, common_context(request) | context, status_code=status_code
    )


def resolve_run(store: ArtifactStore, given: str) -> str:
    """The full id of the run ``given`` names (its id or a unique prefix), checked as the CLI
    checks it: a malformed id is a 400, an unknown one a 404 (both one line)."""
    try:
        check_run_id(given)
    except ValueError:
        raise UiError(
            400,
            f"invalid run id {given[:80]!r}; fix: a run id is 1 to 128 letters, digits, '.', "
            "'_' or '-', starting with a letter or digit (copy it from the runs list)",
        ) from None
    if store.read_run_head(given) is not None:
        return given  # the exact id: no listing of every run
    return store.resolve_run(given)  # a prefix; RunNotFoundError names the fix


Handler = Callable[[Request], Awaitable[Response]]


def guarded(fn: Handler) -> Handler:
    """A page whose every failure is the error page (see :mod:`orch.ui._errors`)."""

    @functools.wraps(fn)
    async def page(request: Request) -> Response:
        try:
            return await fn(request)
        except UiError as exc:
            return error_response(request, exc.status, exc.line)
        except Exception as exc:
            return await handle_error(request, exc)

    return page
