"""Export a recorded run as OpenTelemetry spans (GenAI semantic conventions, see semconv).

The spans are built from the record after the fact, not emitted while the run executes: a
workflow span for the run, an agent span per step (child steps under their parent step), a
``chat`` span per model effect and an ``execute_tool`` span per tool effect, each decision as
a span event with its choice and scores. Parents are set explicitly from the record's tree,
never taken from ambient context, so concurrent fan-out cannot mis-parent a span.

Trace and span ids are derived from the run's root hash and the step ids, so a clean replay
(same root hash) exports the same ids; nothing is exported unless asked. Timestamps are the
wall-clock times of the event log. Prompt and response contents are left out unless
``include_content`` is set; then they are in the semconv's message shape (role and typed
parts), which observability tools validate.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from . import _semconv as sc
from ._records import EffectRecord
from ._runview import RunView, load_run_view
from ._store import ArtifactStore
from .errors import TraceError

__all__ = ["export_run", "run_spans", "span_id_for", "trace_id_for"]

_SCOPE = InstrumentationScope("orch", schema_url=sc.SCHEMA_URL)


def trace_id_for(anchor: str) -> int:
    """128-bit trace id from the run's root hash (or another stable anchor)."""
    return int.from_bytes(hashlib.sha256(b"trace\0" + anchor.encode()).digest()[:16], "big") or 1


def span_id_for(anchor: str, *parts: object) -> int:
    """64-bit span id from the anchor and the span's place in the record."""
    text = "\0".join(str(p) for p in parts)
    digest = hashlib.sha256(b"span\0" + anchor.encode() + b"\0" + text.encode()).digest()
    return int.from_bytes(digest[:8], "big") or 1


def _ns(t: float | None) -> int | None:
    return None if t is None else int(t * 1e9)


def _context(trace_id: int, span_id: int) -> SpanContext:
    return SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(1))


def _effect_times(view: RunView) -> dict[str, tuple[float, float]]:
    """Effect record key -> (start, end) wall times from the event log."""
    out: dict[str, tuple[float, float]] = {}
    for e in view.events:
        if e.get("type") == "effect":
            data = e.get("data", {})
            end = float(e["t"])
            start = end - float(data.get("latency_ms", 0.0)) / 1000
            out[data["record"]] = (start, end)
    return out


def run_spans(
    store: ArtifactStore,
    run_id: str,
    *,
    providers: Mapping[str, str] | None = None,
    include_content: bool = False,
    resource: Resource | None = None,
) -> list[ReadableSpan]:
    """The spans of run ``run_id``; ``providers`` maps model ids to provider names."""
    view = load_run_view(store, run_id)
    head = view.head
    anchor = head.root_hash or head.run_id  # an unfinished run has no root hash yet
    trace_id = trace_id_for(anchor)
    resource = resource or Resource.create({"service.name": "orch"})
    providers = providers or {}
    effect_times = _effect_times(view)
    run_end = head.finished_at or max((float(e["t"]) for e in view.events), default=head.started_at)
    root_ctx = _context(trace_id, span_id_for(anchor, "run"))
    spans: list[ReadableSpan] = []

    def span(
        name: str,
        ctx: SpanContext,
        parent: SpanContext | None,
        attrs: dict[str, Any],
        start: float | None,
        end: float | None,
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        events: Sequence[Event] = (),
        error: str | None = None,
    ) -> None:
        status = Status(StatusCode.ERROR, error) if error else Status(StatusCode.UNSET)
        spans.append(
            ReadableSpan(
                name=name,
                context=ctx,
                parent=parent,
                resource=resource,
                # OTel attribute values are scalars or homogeneous tuples of scalars.
                attributes={
                    k: tuple(v) if isinstance(v, list) else v
                    for k, v in attrs.items()
                    if v is not None
                },
                events=events,
                kind=kind,
                status=status,
                start_time=_ns(start),
                end_time=_ns(end if end is not None else start),
                instrumentation_scope=_SCOPE,
            )
        )

    span(
        f"{sc.OP_WORKFLOW} {head.pipeline}",
        root_ctx,
        None,
        {
            sc.OPERATION_NAME: sc.OP_WORKFLOW,
            sc.RUN_ID: head.run_id,
            sc.ROOT_HASH: head.root_hash,
            sc.PIPELINE: head.pipeline,
            sc.SPEC_HASH: head.spec_hash,
            sc.COST_USD: view.cost_usd,
        },
        head.started_at,
        run_end,
        error=None if head.status != "failed" else "run failed",
    )

    step_ctx: dict[str, SpanContext] = {}
    for step_id in view.steps:  # sorted by id: a parent always precedes its children
        step_ctx[step_id] = _context(trace_id, span_id_for(anchor, "step", step_id))

    for step_id, sv in view.steps.items():
        rec = sv.record
        parent = step_ctx.get(rec.parent, root_ctx) if rec.parent else root_ctx
        events = [
            Event(
                sc.DECISION_EVENT,
                {
                    "orch.decision.router": d.router,
                    "orch.decision.chosen": tuple(d.chosen),
                    "orch.decision.candidates": tuple(d.candidates),
                    "orch.decision.scores": orjson.dumps(
                        d.scores, option=orjson.OPT_SORT_KEYS
                    ).decode(),
                    "orch.decision.reason": d.reason,
                },
                timestamp=_ns(sv.ended or sv.started),
            )
            for d in sv.decisions
        ]
        span(
            f"{sc.OP_AGENT} {rec.agent.name}",
            step_ctx[step_id],
            parent,
            {
                sc.OPERATION_NAME: sc.OP_AGENT,
                sc.AGENT_NAME: rec.agent.name,
                sc.AGENT_VERSION: rec.agent.version,
                sc.AGENT_ID: step_id,
                sc.STEP_ID: step_id,
                sc.STEP_STATUS: rec.status,
                sc.STEP_RECORD: sv.key,
                sc.STEP_REASON: rec.reason,
                sc.COST_USD: sv.cost_usd if sv.effects else None,
                sc.ERROR_TYPE: rec.error.type if rec.error else None,
            },
            sv.started,
            sv.ended,
            events=events,
            error=rec.error.message if rec.error else None,
        )
        for key, eff in zip(sv.record.effects, sv.effects, strict=True):
            start, end = effect_times.get(key, (sv.ended or 0.0, sv.ended or 0.0))
            span(
                *_effect_span(
                    store,
                    anchor,
                    trace_id,
                    step_ctx[step_id],
                    step_id,
                    key,
                    eff,
                    providers,
                    include_content,
                ),
                start,
                end,
                kind=SpanKind.CLIENT,
                error=eff.error.message if eff.error else None,
            )
    return spans


def _effect_span(
    store: ArtifactStore,
    anchor: str,
    trace_id: int,
    parent: SpanContext,
    step_id: str,
    key: str,
    eff: EffectRecord,
    providers: Mapping[str, str],
    include_content: bool,
) -> tuple[str, SpanContext, SpanContext, dict[str, Any]]:
    ctx = _context(trace_id, span_id_for(anchor, "effect", step_id, eff.index))
    attrs: dict[str, Any] = {
        sc.STEP_ID: step_id,
        sc.EFFECT_INDEX: eff.index,
        sc.EFFECT_RECORD: key,
        sc.EFFECT_REQUEST: eff.request,
        sc.COST_USD: eff.cost_usd,
        sc.ERROR_TYPE: eff.error.type if eff.error else None,
    }
    if eff.kind == "tool":
        attrs |= {sc.OPERATION_NAME: sc.OP_TOOL, sc.TOOL_NAME: eff.target}
        outcome = store.get_value(eff.response) if eff.response else None
        error = outcome.get("error") if isinstance(outcome, dict) else None
        if isinstance(error, dict) and error.get("category"):
            # The broker's structured category says more than the Python type would.
            attrs[sc.ERROR_TYPE] = error["category"]
        return f"{sc.OP_TOOL} {eff.target}", ctx, parent, attrs
    if eff.kind != "model":
        # Other effects (a tool listing, a user's own kinds) are not chat calls.
        attrs[sc.OPERATION_NAME] = eff.kind
        return f"{eff.kind} {eff.target}", ctx, parent, attrs
    request = store.get_value(eff.request)
    response = store.get_value(eff.response) if eff.response else None
    attrs |= {
        sc.OPERATION_NAME: sc.OP_CHAT,
        sc.PROVIDER_NAME: providers.get(eff.target, "unknown"),
        sc.REQUEST_MODEL: eff.target,
        sc.USAGE_INPUT_TOKENS: eff.usage.get("input_tokens"),
        sc.USAGE_OUTPUT_TOKENS: eff.usage.get("output_tokens"),
    }
    if isinstance(request, dict):
        attrs[sc.REQUEST_MAX_TOKENS] = request.get("max_tokens")
        attrs[sc.REQUEST_TEMPERATURE] = request.get("temperature")
    if isinstance(response, dict):
        attrs[sc.RESPONSE_MODEL] = response.get("provider_model") or None
        if response.get("finish_reason"):
            attrs[sc.RESPONSE_FINISH_REASONS] = [response["finish_reason"]]
    if include_content:
        attrs[sc.INPUT_MESSAGES] = orjson.dumps(_input_messages(request)).decode()
        if response is not None:
            attrs[sc.OUTPUT_MESSAGES] = orjson.dumps(_output_messages(response)).decode()
    return f"{sc.OP_CHAT} {eff.target}", ctx, parent, attrs


# Message contents in the semconv's shape: a list of {role, parts}, each part typed (text,
# tool_call, tool_call_response); an output message also has its finish_reason. A consumer
# (Arize Phoenix, say) validates that shape and drops anything else, so a recorded request
# is converted, not copied. Shapes this does not know (a user's own effect payload) are kept
# as they were recorded.


def _parts(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    if message.get("role") == "tool":
        return [
            {
                "type": "tool_call_response",
                "id": message.get("tool_call_id"),
                "response": message.get("content", ""),
            }
        ]
    parts: list[dict[str, Any]] = []
    if message.get("content"):
        parts.append({"type": "text", "content": message["content"]})
    for call in message.get("tool_calls") or ():
        arguments = call.get("arguments")
        if isinstance(arguments, str):
            # Not JSON: the model's text is kept as it wrote it.
            with contextlib.suppress(orjson.JSONDecodeError):
                arguments = orjson.loads(arguments)
        parts.append(
            {
                "type": "tool_call",
                "id": call.get("id"),
                "name": call.get("name"),
                "arguments": arguments,
            }
        )
    return parts


def _input_messages(request: Any) -> Any:
    messages = request.get("messages") if isinstance(request, dict) else None
    if isinstance(messages, list) and all(
        isinstance(m, dict) and isinstance(m.get("content", ""), str) for m in messages
    ):
        return [{"role": m.get("role"), "parts": _parts(m)} for m in messages]
    if isinstance(request, dict) and isinstance(request.get("prompt"), str):
        return [{"role": "user", "parts": [{"type": "text", "content": request["prompt"]}]}]
    return messages if messages is not None else request


def _output_messages(response: Any) -> Any:
    if not isinstance(response, dict) or not isinstance(response.get("text", ""), str):
        return response
    content = response.get("text") or ""
    if not content and response.get("structured") is not None:
        content = orjson.dumps(response["structured"], option=orjson.OPT_SORT_KEYS).decode()
    message = {
        "role": "assistant",
        "parts": _parts({"content": content, "tool_calls": response.get("tool_calls")}),
        # Required by the semconv; "" where the provider gave none (never made up).
        "finish_reason": response.get("finish_reason") or "",
    }
    return [message]


def export_run(
    store: ArtifactStore,
    run_id: str,
    exporter: SpanExporter,
    *,
    providers: Mapping[str, str] | None = None,
    include_content: bool = False,
    resource: Resource | None = None,
) -> int:
    """Send the run's spans to ``exporter`` (an OTLP exporter, say); return how many."""
    spans = run_spans(
        store, run_id, providers=providers, include_content=include_content, resource=resource
    )
    result = exporter.export(spans)
    if result is not SpanExportResult.SUCCESS:
        raise TraceError(f"the span exporter refused the {len(spans)} spans of run {run_id}")
    return len(spans)
