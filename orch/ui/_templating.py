"""The Jinja2 environment of ``orch ui``: the package's templates, autoescaped, with the
filters pages share.

Autoescaping is on for every template, whatever its name: every recorded string reaches a
page as escaped text. Templates never mark recorded data safe; the one trusted HTML they take
is the pipeline's SVG, which :func:`orch.render.dag_svg` builds with every text escaped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.templating import Jinja2Templates

from orch.render import fmt_seconds, fmt_usd
from orch.ui._values import shown, tokens_text, wall
from traces import check_run_id, mask_location

__all__ = ["STATIC_DIR", "TEMPLATE_DIR", "common_context", "environment", "templates"]

TEMPLATE_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"


def _valid_run_id(text: object) -> bool:
    """Whether ``text`` may be put in a link to a run's page (a recorded id is untrusted)."""
    try:
        check_run_id(text)
    except ValueError:
        return False
    return True


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt name is a bug to see, not a blank
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["usd"] = fmt_usd
    env.filters["seconds"] = fmt_seconds
    env.filters["wall"] = wall
    env.filters["tokens"] = tokens_text
    env.globals["shown"] = shown
    env.tests["valid_run_id"] = _valid_run_id
    return env


templates = Jinja2Templates(env=environment())


def common_context(request: Request) -> dict[str, Any]:
    """What the layout shows around every page: navigation, the store, the mode."""
    state = getattr(request.app.state, "ui", None)
    if state is None:  # an error before the app was set up: a bare layout
        return {"nav": [], "store_label": "?", "allow_replay": False, "poll_ms": 1500}
    return {
        "nav": state.nav,
        "store_label": mask_location(state.settings.store.location),
        "allow_replay": state.settings.allow_replay,
        "poll_ms": state.settings.live_poll_ms,
    }
