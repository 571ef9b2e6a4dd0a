"""Rendering runs and reports for people: the terminal, HTML pages and Mermaid graphs.

One place for every view of a record, used by the CLI, the run report and the evaluation
report (``routers.eval._report`` builds its page from the HTML parts here). Everything here
reads records through :mod:`traces` only and treats every recorded string as untrusted: the
terminal view makes it inert (:func:`inert`), the HTML view escapes it (:func:`esc`). Nothing
here writes to a store.
"""

from __future__ import annotations

from orch.render._html import (
    DAG_CSS,
    DagNode,
    dag_svg,
    esc,
    fmt_seconds,
    fmt_usd,
    json_text,
    kv_table,
    page,
    table,
    value_html,
)
from orch.render._mermaid import pipeline_to_mermaid
from orch.render._run_report import render_run_report
from orch.render._terminal import (
    STATUS_STYLE,
    InertConsole,
    decision_text,
    inert,
    inert_json,
    run_summary,
    runs_table,
    status_text,
    step_tree,
    wall,
)

__all__ = [
    # the terminal
    "STATUS_STYLE",
    "InertConsole",
    "decision_text",
    "inert",
    "inert_json",
    "run_summary",
    "runs_table",
    "status_text",
    "step_tree",
    "wall",
    # HTML parts (the run report and the evaluation report)
    "DAG_CSS",
    "DagNode",
    "dag_svg",
    "esc",
    "fmt_seconds",
    "fmt_usd",
    "json_text",
    "kv_table",
    "page",
    "table",
    "value_html",
    # whole views
    "pipeline_to_mermaid",
    "render_run_report",
]
