"""Human in the loop: the questions a step asks a person, and the answers that resume a run.

``await ctx.ask(question, Schema)`` either returns the answer the run was given for that
question, recorded as a decision naming who gave it, or suspends the step: the question is
stored as an artifact, an ``ask`` event names it, and the step ends ``waiting``. Steps that do
not depend on it go on; once nothing else can run, the run ends with status ``waiting`` and
everything it did is in the store, so its process may exit. An answer later resumes it, in
any process (:mod:`orch._answer`): the resumed run serves every effect made before the pause
from the record and re-runs the asking step, whose ``ask`` now returns the answer.

A question's id is ``STEP#N``: the step id and the ask's index within one attempt of the step
(a retried attempt asks the same questions under the same ids). Answers given to a run are
artifacts (:class:`Answer`) listed in its ``run_start`` event, which the ledger's ``start``
entry commits to (and a signed checkpoint signs); a resume gathers them from every run of its
lineage, and a replay from the run it replays, so an answer is given once and served ever
after. The decision an answer becomes holds the question, the answer and who gave it, and no
clock: a run paused, killed and answered has the root hash of one that had the answer from
the start. Deadlines are wall-clock time, read only when an answer is checked
(:func:`check_answer`), never inside a step.

This module must never run a pipeline (that is :mod:`orch._answer`'s) and never import
anything named by a store: an answer from another process is checked against the question's
recorded JSON schema, not against a class loaded by name.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema
import orjson
from pydantic import BaseModel, ConfigDict, Field

from orch.errors import AnswerError
from traces import ArtifactStore, chained_events, load_run_head

__all__ = [
    "DEADLINE_PRINCIPAL",
    "Answer",
    "AwaitingAnswer",
    "Question",
    "check_answer",
    "check_principal",
    "logged_answers",
    "parse_answer_pairs",
    "pending_questions",
    "recorded_answers",
]

QUESTION_FORMAT = "orch.question/1"
ANSWER_FORMAT = "orch.answer/1"
DEADLINE_PRINCIPAL = "orch:deadline"
"""Who a question's default is recorded as coming from once its deadline passed."""


class Question(BaseModel):
    """A question a step asked, as stored (its key is in the ``ask`` event and in the
    decision its answer becomes)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    format: str = QUESTION_FORMAT
    id: str
    """``STEP#N``: what an answer names."""
    step: str
    index: int
    question: str
    schema_: dict[str, Any] = Field(alias="schema")
    """The JSON schema an answer must meet (the asking step's pydantic model's)."""
    principals: list[str] | None = None
    """Who may answer; None for anyone."""
    deadline: float | None = None
    """Seconds after the question was asked when its default applies and ``escalate_to``
    may answer too."""
    default: Any = None
    has_default: bool = False
    escalate_to: list[str] = Field(default_factory=list)
    asked_at: float | None = Field(default=None, exclude=True)
    """Wall-clock time of the ``ask`` event (metadata: not stored with the question)."""

    def stored(self) -> dict[str, Any]:
        """The artifact's value (JSON data), without the wall-clock fields."""
        return self.model_dump(mode="json", by_alias=True)

    @property
    def due_at(self) -> float | None:
        """When the deadline passes (wall clock), or None."""
        if self.deadline is None or self.asked_at is None:
            return None
        return self.asked_at + self.deadline

    def may_answer(self, by: str, *, overdue: bool) -> bool:
        """Whether ``by`` may answer: anyone when no principals are named; the named ones,
        and the escalation ones once the deadline passed."""
        if by == DEADLINE_PRINCIPAL:
            return self.has_default
        if self.principals is None:
            return True
        return by in self.principals or (overdue and by in self.escalate_to)


class Answer(BaseModel):
    """An answer to one question: its value (JSON data meeting the question's schema) and
    who gave it. Stored as an artifact and listed in the resumed run's ``run_start``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    format: str = ANSWER_FORMAT
    question: str
    """The question's id, ``STEP#N``."""
    value: dict[str, Any]
    by: str
    """The principal who answered (``orch:deadline`` for a default applied at the deadline)."""


class AwaitingAnswer(BaseException):
    """Raised by ``ctx.ask`` to suspend the step until an answer resumes the run. A
    BaseException, as cancellation is, so that an agent's ``except Exception`` does not take
    it for a failure; an agent must let it through."""

    def __init__(self, question: Question, key: str) -> None:
        super().__init__(f"waiting for an answer to {question.id}: {question.question}")
        self.question = question
        self.key = key


def check_principal(by: str, what: str = "answer") -> str:
    """``by`` when it can name who answered: a non-empty line of printable text."""
    if not isinstance(by, str) or not by.strip() or not by.isprintable() or len(by) > 200:
        raise AnswerError(
            f"{what}: {by!r} cannot name who answered; fix: give a principal such as a user "
            "name or email (--as alice@example.com)"
        )
    return by


def recorded_answers(store: ArtifactStore, run_id: str) -> dict[str, str]:
    """Question id -> answer artifact key, as run ``run_id``'s ``run_start`` lists them."""
    return logged_answers(chained_events(store.read_events(run_id)[:1]))


def logged_answers(events: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Question id -> answer artifact key, as the ``run_start`` event that opens ``events``
    (a run's chained log, parsed) lists them."""
    if not events or events[0].get("type") != "run_start":
        return {}
    answers = events[0].get("data", {}).get("answers", {})
    return {str(k): str(v) for k, v in answers.items()} if isinstance(answers, dict) else {}


def pending_questions(store: ArtifactStore, run_id: str) -> list[Question]:
    """The questions run ``run_id`` waits on (none unless its status is ``waiting``), in id
    order, each with the time it was asked."""
    run_id = store.resolve_run(run_id)
    head = load_run_head(store, run_id)
    if head.status != "waiting":
        return []
    found: dict[str, Question] = {}
    for event in chained_events(store.read_events(run_id)):
        if event.get("type") != "ask":
            continue
        q = Question.model_validate(store.get_value(event["data"]["question"]))
        found[q.id] = q.model_copy(update={"asked_at": event.get("t")})
    return [found[k] for k in sorted(found)]


def _pick(run_id: str, pending: Sequence[Question], question: str | None) -> Question:
    ids = ", ".join(q.id for q in pending)
    if question is None:
        if len(pending) == 1:
            return pending[0]
        raise AnswerError(
            f"run {run_id} waits on {len(pending)} questions ({ids}); fix: name one "
            "(--question ID, or question=ID)"
        )
    for q in pending:
        if q.id == question:
            return q
    raise AnswerError(
        f"run {run_id} does not wait on question {question!r}; it waits on: {ids}; fix: name "
        "one of those"
    )


def check_answer(
    store: ArtifactStore,
    run_id: str,
    values: Mapping[str, Any] | None = None,
    *,
    by: str,
    question: str | None = None,
    use_default: bool = False,
    now: float | None = None,
) -> dict[str, Answer]:
    """Check an answer to a question waiting run ``run_id`` asked; return ``{question id:
    Answer}`` for ``arun(resume=run_id, answers=...)``. Writes nothing: a refused answer
    (:class:`~orch.errors.AnswerError`, one line naming the fix) leaves the run waiting.

    ``question`` names the question when the run waits on several. ``use_default`` applies
    the question's default once its deadline has passed, recorded as given by
    ``orch:deadline``. ``now`` is wall-clock time (deadlines are read only here)."""
    rid = store.resolve_run(run_id)
    head = load_run_head(store, rid)
    if head.resumed_by:
        raise AnswerError(
            f"run {rid} was already resumed by run {head.resumed_by[-1]}; fix: answer that run "
            f"if it waits, or resume it if it did not finish (orch run FILE --resume "
            f"{head.resumed_by[-1]})"
        )
    if head.status != "waiting":
        raise AnswerError(
            f"run {rid} is not waiting for an answer (status {head.status}); fix: answer a run "
            "that 'orch runs --waiting' lists"
        )
    pending = pending_questions(store, rid)
    if not pending:
        raise AnswerError(f"run {rid} records no pending question; fix: resume it instead")
    q = _pick(rid, pending, question)
    now = time.time() if now is None else now
    overdue = q.due_at is not None and now >= q.due_at
    if use_default:
        if values:
            raise AnswerError(f"question {q.id}: give values or use its default, not both")
        if not q.has_default:
            raise AnswerError(f"question {q.id} of run {rid} has no default; fix: answer it")
        if not overdue:
            when = "it has no deadline" if q.due_at is None else f"its deadline is {q.due_at:.0f}"
            raise AnswerError(
                f"question {q.id} of run {rid}: its default applies only once its deadline "
                f"passed ({when}); fix: answer it, or wait"
            )
        return {q.id: Answer(question=q.id, value=dict(q.default or {}), by=DEADLINE_PRINCIPAL)}
    check_principal(by, f"answer to question {q.id} of run {rid}")
    if by == DEADLINE_PRINCIPAL or not q.may_answer(by, overdue=overdue):
        allowed = ", ".join(q.principals or [])
        later = f" (after the deadline also: {', '.join(q.escalate_to)})" * bool(q.escalate_to)
        raise AnswerError(
            f"{by!r} may not answer question {q.id} of run {rid}; it accepts answers from: "
            f"{allowed}{later}; fix: answer as one of them (--as NAME)"
        )
    value = dict(values or {})
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(q.schema_).iter_errors(value)
    )
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path)
        fields = ", ".join(sorted(q.schema_.get("properties", {}))) or "none"
        raise AnswerError(
            f"answer to question {q.id} of run {rid} is refused: {error.message}"
            + (f" (at {where})" if where else "")
            + f"; fix: answer as its schema asks (fields: {fields})"
        )
    return {q.id: Answer(question=q.id, value=value, by=by)}


def parse_answer_pairs(
    store: ArtifactStore, run_id: str, pairs: Sequence[str], question: str | None = None
) -> dict[str, Any]:
    """``KEY=VALUE`` words from a command line as an answer's values: a field the question's
    schema types as a string keeps its text, any other is read as JSON (``true``, ``3``,
    ``["a"]``), falling back to the text."""
    pending = pending_questions(store, run_id)
    properties: Mapping[str, Any] = {}
    if pending:
        with contextlib.suppress(AnswerError):  # check_answer says which one to name
            properties = _pick(run_id, pending, question).schema_.get("properties", {})
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise AnswerError(
                f"answer value {pair!r} is not KEY=VALUE; fix: write e.g. approve=true"
            )
        if _is_text(properties.get(name, {})):
            values[name] = text
            continue
        try:
            values[name] = orjson.loads(text)
        except orjson.JSONDecodeError:
            values[name] = text
    return values


def _is_text(prop: Mapping[str, Any]) -> bool:
    if prop.get("type") == "string":
        return True
    options = prop.get("anyOf", [])
    return bool(options) and all(o.get("type") in ("string", "null") for o in options)
