"""``orch ui``: a local web app over any store, server-rendered, read-only by default.

Pages: the runs list (filters, pages), a run (summary and verification badge, DAG, steps,
effects, decisions, attempts, resume links; live while the run runs), the comparison of two
runs, and verification of a run or the whole store. Each page is also JSON (``.json``).

Starlette and Jinja2 (autoescaped) served by uvicorn: the ``ui`` extra
(``pip install 'orch[ui]'``). Every asset ships in the package. Every recorded string is
untrusted: escaped, never a link, long text folded and cut. Bound off loopback, a server
refuses to start without a token, and every request must carry it. Nothing here writes to a
store or creates one.
"""

from __future__ import annotations

from orch.ui._app import NAV, create_app, routes
from orch.ui._errors import UiError
from orch.ui._security import CSP, SecurityMiddleware
from orch.ui._serve import bind, serve, url_of
from orch.ui._settings import LOOPBACK_NAMES, UiSettings, is_loopback, require_token
from orch.ui._state import NavLink, guarded, render, resolve_run

__all__ = [
    # the app
    "NAV",
    "UiSettings",
    "create_app",
    "routes",
    # serving it
    "bind",
    "serve",
    "url_of",
    # who may reach it
    "CSP",
    "LOOPBACK_NAMES",
    "SecurityMiddleware",
    "is_loopback",
    "require_token",
    # for pages added later (replay, evaluations)
    "NavLink",
    "UiError",
    "guarded",
    "render",
    "resolve_run",
]
