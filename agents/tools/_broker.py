"""The tool broker: every tool call of a run goes through one pipeline of six stages.

1. **identity**: the principal (tenant, scopes) is the call's own, else the run's
   ``principal`` service, else the broker's default;
2. **authorisation**: the tool's required scopes against the principal's, the tool's owning
   tenant, and the tenant's credential if the tool needs one. A denial is a structured
   ``permission_denied`` error and an audit entry, never a call, and nothing is recorded as
   an effect (it is a pure function of configuration, so replay reaches the same denial);
3. **resolution**: the tool name to its source and schema (an MCP server's listing), and
   the arguments validated against the schema, so that invalid ones never reach the server;
4. **budget**: the rate limit per principal and tool, and the time allocated to the call
   from a shared :class:`~agents.tools._budget.TimeBudget` (or the tool's own timeout); a call
   that cannot fit is refused before it starts;
5. **invocation** with the allocated timeout;
6. **audit**: one hash-chained entry per attempt (principal, tool, argument and result
   digests, outcome, latency).

Stages 3 to 5 depend on the world (a server's listing, the clock, the tool), so each attempt
is one recorded effect (kind ``tool``) whose response is the whole :class:`ToolOutcome`,
failure included: replay serves it without starting any server and the caller sees the same
result, or the same structured error. Retries are made for retryable categories only, with a
deterministic backoff (or the error's ``retry_after_s``), each attempt its own effect; in
replay no one waits. Secrets in arguments are redacted from the recorded request and the
audit entry, and scrubbed from the recorded result.

Inspired by the context-aware broker pipeline of "Bridging Protocol and Production"
(arXiv 2603.13417); its full text was not available, so the stages follow its abstract and
this project's design notes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import orjson
from pydantic import BaseModel, ConfigDict, Field
from tenacity import AsyncRetrying, RetryCallState, RetryError, retry_if_exception

from agents.errors import ToolCallError, ToolConfigError, ToolError
from agents.tools._audit import AuditLog, MemoryAuditLog
from agents.tools._budget import Allocation, Estimate, LatencyHistory, TimeBudget
from agents.tools._credentials import CredentialVault
from agents.tools._encoding import outcome_bytes, request_bytes
from agents.tools._principal import Principal
from agents.tools._ratelimit import RateLimit, RateLimiter
from agents.tools._redact import REDACTED, is_secret_name, redact_arguments, schema_secrets, scrub
from agents.tools._sources import LocalSource, ToolSource, closest
from agents.tools._tool import LocalTool, ToolInfo, ToolPolicy, ToolResult
from orch import Context
from orch.errors import OrchError
from traces import Encoded, canonical_bytes, digest

__all__ = ["ToolBroker", "ToolListing", "ToolOutcome"]


class ToolOutcome(BaseModel):
    """One attempt of one tool call, as recorded: the result or the structured error."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    tool: str
    ok: bool
    result: ToolResult | None = None
    error: ToolError | None = None
    invoked: bool = False
    """Whether the call reached the tool (refusals never do)."""
    version: str | None = None
    """The tool's version (an MCP server's reported version)."""
    timeout_s: float | None = None
    """The time the call was allowed."""
    allocation: dict[str, float | bool] | None = None
    """The budget's arithmetic, when the call was part of a time budget."""
    next_attempt_in_s: float | None = None
    """For a failure: seconds until the broker tries again, None when it does not (decided
    as the attempt ended, so that a replay retries exactly as the run did)."""


class ToolListing(BaseModel):
    """The tools a principal may call, as recorded by :meth:`ToolBroker.list_tools`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    tools: list[dict[str, Any]] = Field(default_factory=list)
    unavailable: dict[str, str] = Field(default_factory=dict)
    """Sources that could not be listed, with why."""


def _failure_of(error: ToolError | None) -> dict[str, str] | None:
    if error is None:
        return None
    return {"type": "ToolError", "message": f"{error.category}: {error.message}"}


def _failure(outcome: ToolOutcome) -> dict[str, str] | None:
    return None if outcome.ok else _failure_of(outcome.error)


def _cannot_fit(tool: str, remaining_s: float, expected_s: float) -> ToolError:
    return ToolError.of(
        "timeout",
        tool,
        f"the time budget has {remaining_s:.3f}s left, less than the {expected_s:.3f}s "
        f"{tool!r} is expected to take; refused before it started",
        retryable=False,
    )


class _Call:
    """What every attempt of one call shares."""

    __slots__ = (
        "args",
        "budget",
        "credential",
        "policy",
        "remote",
        "secret_names",
        "source",
        "timeout_s",
        "tool",
        "who",
    )

    def __init__(
        self,
        who: Principal,
        tool: str,
        source: ToolSource,
        remote: str,
        policy: ToolPolicy,
        args: dict[str, Any],
        credential: str | None,
        budget: TimeBudget | None,
        timeout_s: float | None,
    ) -> None:
        self.who = who
        self.tool = tool
        self.source = source
        self.remote = remote
        self.policy = policy
        self.args = args
        self.credential = credential
        self.budget = budget
        self.timeout_s = timeout_s
        self.secret_names: frozenset[str] = policy.secrets


class _AttemptFailed(Exception):
    """One attempt failed; ``next_in`` is the recorded decision about the next one."""

    def __init__(self, error: ToolError, attempts: int, next_in: float | None) -> None:
        super().__init__(error.message)
        self.error = error
        self.attempts = attempts
        self.next_in = next_in


class ToolBroker:
    """Registers tools (local functions, MCP servers) and runs every call through the stages.

    Give it to a run as a service (``services={"tools": broker, "principal": Principal(...)}``)
    and call ``await ctx.service("tools").call(ctx, "time.get_current_time", {...})``.
    """

    def __init__(
        self,
        sources: Sequence[ToolSource | LocalTool] = (),
        *,
        audit: AuditLog | None = None,
        credentials: CredentialVault | None = None,
        principal: Principal | None = None,
        rate_limits: Mapping[str, RateLimit] | None = None,
        default_rate_limit: RateLimit | None = None,
        max_attempts: int = 3,
        backoff_s: float = 0.05,
        max_backoff_s: float = 5.0,
        safety: float = 1.5,
        clock: Any = time.monotonic,
    ) -> None:
        if max_attempts < 1:
            raise ToolConfigError(f"max_attempts must be >= 1, got {max_attempts}")
        if not safety >= 1:
            raise ToolConfigError(f"the safety factor must be >= 1, got {safety}")
        self.local = LocalSource()
        self._sources: dict[str, ToolSource] = {}
        self.audit: AuditLog = audit if audit is not None else MemoryAuditLog()
        self.credentials = credentials or CredentialVault()
        self.principal = principal
        self.rate_limits = dict(rate_limits or {})
        self.default_rate_limit = default_rate_limit
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.safety = safety
        self._clock = clock
        self._limiter = RateLimiter(clock)
        self._history: dict[str, LatencyHistory] = {}
        self._grants: dict[tuple[int, frozenset[str]], tuple[Principal, list[str]]] = {}
        for s in sources:
            self.add(s)

    # -- registration ----------------------------------------------------------------------

    def add(self, source: ToolSource | LocalTool) -> None:
        """Register a local tool or a tool source (an MCP server: ``McpSource``)."""
        if isinstance(source, LocalTool):
            self.local.add(source)
            return
        if not isinstance(source, ToolSource):
            raise ToolConfigError(
                f"{source!r} is neither a tool nor a tool source; fix: pass @tool functions "
                "or McpSource(...)"
            )
        if source.name == "local" or source.name in self._sources:
            raise ToolConfigError(f"a tool source is already named {source.name!r}; fix: rename")
        self._sources[source.name] = source

    @property
    def sources(self) -> dict[str, ToolSource]:
        return {"local": self.local, **self._sources}

    def source(self, name: str) -> ToolSource:
        return self.sources[name]

    def _locate(self, tool: str) -> tuple[ToolSource, str]:
        if not isinstance(tool, str) or not tool:
            raise ToolCallError(
                ToolError.of("invalid_arguments", str(tool), "the tool name must be a string")
            )
        if tool in self.local:
            return self.local, tool
        prefix, sep, rest = tool.partition(".")
        if sep and prefix in self._sources and rest:
            return self._sources[prefix], rest
        # Suggest a tool, never a bare server name: a near server name keeps the tool part.
        near_server = closest(prefix, self._sources) if sep and rest else None
        suggestion = f"{near_server}.{rest}" if near_server else closest(tool, self.local.names())
        raise ToolCallError(
            ToolError.of(
                "not_found",
                tool,
                f"no tool {tool!r}: it is neither a local tool ({', '.join(self.local.names())}"
                f") nor SERVER.TOOL of a registered server ({', '.join(sorted(self._sources))})",
                alternative=suggestion,
            )
        )

    # -- latency history and budgets -------------------------------------------------------

    def history(self, tool: str) -> LatencyHistory:
        found = self._history.get(tool)
        if found is None:
            found = self._history[tool] = LatencyHistory()
        return found

    def estimate(self, tool: str, policy: ToolPolicy | None = None) -> Estimate:
        if policy is None:
            try:
                source, remote = self._locate(tool)
                policy = source.policy(remote)
            except ToolCallError:
                policy = ToolPolicy()
        return self.history(tool).estimate(policy.expected_s, policy.timeout_s, self.safety)

    def budget(self, total_s: float, plan: Sequence[str] = ()) -> TimeBudget:
        """A time budget for a sequence of calls (``plan``: their tool names, in order), on
        the broker's clock."""
        return TimeBudget(total_s, plan, safety=self.safety, clock=self._clock)

    # -- stage 1: identity -----------------------------------------------------------------

    def _identify(self, ctx: Context | None, principal: Principal | None) -> Principal:
        if principal is not None:
            found: Any = principal
        else:
            found = None
            if ctx is not None:
                try:
                    found = ctx.service("principal")
                except OrchError:
                    found = None
            if found is None:
                found = self.principal
        if found is None:
            raise ToolConfigError(
                "a tool call has no principal; fix: pass principal=Principal(...) to the call, "
                "give the run services={'principal': Principal(...)}, or give the broker one"
            )
        if not isinstance(found, Principal):
            raise ToolConfigError(
                f"the principal is a {type(found).__name__}; fix: use "
                "agents.tools.Principal(id=..., tenant=..., scopes={...})"
            )
        return found

    # -- stage 2: authorisation ------------------------------------------------------------

    def _authorise(self, who: Principal, tool: str, policy: ToolPolicy) -> ToolError | None:
        if policy.tenant is not None and policy.tenant != who.tenant:
            return ToolError.of(
                "permission_denied",
                tool,
                f"tool {tool!r} belongs to another tenant; principal {who.id!r} of tenant "
                f"{who.tenant!r} may not use it",
            )
        missing = self._missing(who, policy.scopes)
        if missing:
            return ToolError.of(
                "permission_denied",
                tool,
                f"principal {who.id!r} lacks scope{'s' * (len(missing) > 1)} "
                f"{', '.join(missing)} (has: {', '.join(sorted(who.scopes)) or 'none'})",
                alternative=policy.alternative,
            )
        if (
            policy.credential is not None
            and self.credentials.get(who.tenant, policy.credential) is None
        ):
            return ToolError.of(
                "permission_denied",
                tool,
                f"tenant {who.tenant!r} holds no credential {policy.credential!r}, which tool "
                f"{tool!r} needs; fix: add it to the broker's vault for that tenant",
            )
        return None

    def _missing(self, who: Principal, scopes: frozenset[str]) -> list[str]:
        """``who.missing(scopes)``, computed once per principal object and scope set: both
        are immutable, and wildcard matching costs more than the rest of the stage."""
        if type(scopes) is not frozenset:  # a policy made by hand with another collection
            return who.missing(scopes)
        key = (id(who), scopes)
        found = self._grants.get(key)
        if found is None or found[0] is not who:
            if len(self._grants) >= 4096:
                self._grants.clear()
            # The principal is kept with its answer, so its id cannot name another meanwhile.
            found = self._grants[key] = (who, who.missing(scopes))
        return found[1]

    # -- the call --------------------------------------------------------------------------

    async def call(
        self,
        ctx: Context,
        tool: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        principal: Principal | None = None,
        budget: TimeBudget | None = None,
        timeout_s: float | None = None,
    ) -> ToolResult:
        """Call ``tool`` with ``arguments`` as the current step; return its result.

        Raises :class:`ToolCallError` with the structured error when the call is refused or
        fails (after retries of retryable failures).
        """
        who = self._identify(ctx, principal)
        args = dict(arguments or {})
        if timeout_s is not None and not timeout_s > 0:
            raise ToolConfigError(f"timeout_s must be > 0, got {timeout_s}")
        try:
            source, remote = self._locate(tool)
            policy = source.policy(remote)
        except ToolCallError as exc:  # no such server or local tool: refused, and audited
            if not ctx.replaying:
                self._audit(ctx, who, tool, None, None, 1, args, frozenset(), None, exc.error)
            raise
        secret_names = policy.secrets
        if isinstance(source, LocalSource):
            secret_names = source.secrets(remote)
        denied = self._authorise(who, tool, policy)
        if denied is not None:
            if not ctx.replaying:
                self._audit(ctx, who, tool, source.name, None, 1, args, secret_names, None, denied)
            raise ToolCallError(denied)
        credential = (
            self.credentials.get(who.tenant, policy.credential) if policy.credential else None
        )
        call = _Call(who, tool, source, remote, policy, args, credential, budget, timeout_s)
        call.secret_names = secret_names
        # The first attempt is made directly: most calls need no retry machinery at all.
        outcome, was_served = await self._attempt(ctx, call, 1)
        if outcome.ok:
            assert outcome.result is not None
            return outcome.result
        assert outcome.error is not None
        if outcome.next_attempt_in_s is None:
            raise ToolCallError(outcome.error, 1)
        served = [was_served]

        async def sleep(seconds: float) -> None:
            if not served[0]:  # a served attempt was not made now: nothing to wait for
                await anyio.sleep(seconds)

        def next_in(state: RetryCallState) -> float | None:
            exc = state.outcome.exception() if state.outcome else None
            return exc.next_in if isinstance(exc, _AttemptFailed) else None

        retrying = AsyncRetrying(
            # Whether and when to retry was decided as the attempt ended and recorded with its
            # outcome, so a replay retries exactly as the run did, whatever its own clock says.
            stop=lambda state: next_in(state) is None,
            wait=lambda state: next_in(state) or 0.0,
            retry=retry_if_exception(lambda e: isinstance(e, _AttemptFailed)),
            sleep=sleep,
        )
        result: ToolResult | None = None
        first = _AttemptFailed(outcome.error, 1, outcome.next_attempt_in_s)
        try:
            async for attempt in retrying:
                with attempt:
                    number = attempt.retry_state.attempt_number
                    if number == 1:
                        raise first  # made above: let tenacity schedule the second
                    outcome, was_served = await self._attempt(ctx, call, number)
                    served[0] = was_served
                    if not outcome.ok:
                        assert outcome.error is not None
                        raise _AttemptFailed(outcome.error, number, outcome.next_attempt_in_s)
                    result = outcome.result
        except RetryError as exc:
            failed = exc.last_attempt.exception()
            assert isinstance(failed, _AttemptFailed)
            raise ToolCallError(failed.error, failed.attempts) from None
        assert result is not None
        return result

    async def _attempt(self, ctx: Context, call: _Call, number: int) -> tuple[ToolOutcome, bool]:
        """One attempt as one recorded effect; returns (outcome, served from a record).

        The effect's place in the step is taken first, before anything is awaited, so that
        calls a step makes at once keep the order they were made in. Then the tool is
        resolved (stage 3), because its schema says which arguments are secret, and the
        request must be redacted before it is recorded. In replay (and for an effect a
        resumed run serves) nothing is resolved: the record's own request says which
        arguments it redacted.
        """
        index = ctx.reserve_effect()
        recorded = ctx.recorded_request(index)
        names = call.secret_names
        info: ToolInfo | None = None
        refused: ToolError | None = None
        if isinstance(recorded, dict) and isinstance(recorded.get("arguments"), dict):
            names = names | {k for k, v in recorded["arguments"].items() if v == REDACTED}
        elif isinstance(call.source, LocalSource):
            info = call.source.info(call.remote)
        else:
            refused = self._precheck(call)
            if refused is None:
                try:
                    info = await call.source.resolve(call.remote, call.who.tenant, call.credential)
                except ToolCallError as exc:
                    refused = exc.error
            if info is not None:
                names = names | _schema_secret_names(info)
            else:
                # The schema is unknown, so nothing tells which arguments are secret: record
                # none of their values (fail closed).
                names = names | set(call.args)
        redacted, secret_values = redact_arguments(call.args, names)
        call.secret_names = names
        request: dict[str, Any] = {
            "tool": call.tool,
            "arguments": redacted,
            "principal": call.who.record(),  # cached: a principal is frozen
            "attempt": number,
        }
        if call.timeout_s is not None:
            request["timeout_s"] = call.timeout_s
        # Encoded once: its digest goes into the audit entry, its bytes into the record.
        encoded = Encoded(request_bytes(request))
        request_key = digest(encoded.data)
        performed = [False]
        latency = [0.0]

        async def perform() -> ToolOutcome:
            performed[0] = True
            started = time.perf_counter()
            try:
                outcome = await self._stages(call, info, refused, secret_values, number)
            finally:
                latency[0] = time.perf_counter() - started
            if outcome.ok or outcome.error is None:
                return outcome
            error = outcome.error
            if error.retryable and outcome.invoked and not _idempotent(call, info):
                # The call reached the tool and may have taken effect: making it again could
                # do it twice. Not retried, and the error says so.
                error = error.model_copy(
                    update={
                        "retryable": False,
                        "message": f"{error.message} (not retried: the call reached "
                        f"{call.tool!r}, which is not declared idempotent)",
                    }
                )
            after = self._next_attempt(error, number, call.budget)
            return outcome.model_copy(update={"error": error, "next_attempt_in_s": after})

        outcome: ToolOutcome | None = None
        try:
            outcome = await ctx.effect(
                "tool",
                call.tool,
                encoded,
                perform,
                response_model=ToolOutcome,
                failure=_failure,
                index=index,
                encode=outcome_bytes,
            )
        finally:
            if performed[0]:
                # The audit entry is written whatever happened, cancellation included.
                ended = (
                    ToolError.of(
                        "internal",
                        call.tool,
                        "the attempt ended without an outcome (cancelled, or the broker failed)",
                        retryable=False,
                    )
                    if outcome is None
                    else None
                )
                self._audit(
                    ctx,
                    call.who,
                    call.tool,
                    call.source.name,
                    index,
                    number,
                    redacted,
                    None,
                    outcome,
                    ended,
                    latency_s=latency[0],
                    request_key=request_key,
                )
        return outcome, not performed[0]

    @staticmethod
    def _scrub(call: _Call, value: Any, secret_values: list[str]) -> Any:
        """``value`` without the call's secret argument values and its credential."""
        return scrub(value, secret_values, [call.credential] if call.credential else ())

    def _safe_hints(
        self, call: _Call, hints: Mapping[str, str], secret_values: list[str]
    ) -> dict[str, str]:
        """Hints that never quote a secret argument's value (a validator quotes what it got)."""
        out = {}
        for name, hint in hints.items():
            top = name.split(".", 1)[0]
            if top in call.secret_names or is_secret_name(top):
                hint = "invalid value (not shown: the argument is secret)"
            out[name] = self._scrub(call, hint, secret_values)
        return out

    def _precheck(self, call: _Call) -> ToolError | None:
        """Before connecting to anything: a time budget that cannot fit the call refuses it."""
        budget = call.budget
        if budget is None:
            return None
        budget.start()
        estimate = self.estimate(call.tool, call.policy)
        if budget.remaining_s < estimate.expected_s:
            return _cannot_fit(call.tool, budget.remaining_s, estimate.expected_s)
        return None

    def _next_attempt(
        self, error: ToolError, number: int, budget: TimeBudget | None
    ) -> float | None:
        """Seconds until the next attempt, or None for no retry (decided live, recorded)."""
        if not error.retryable or number >= self.max_attempts:
            return None
        if error.retry_after_s is not None:
            wait = min(error.retry_after_s, self.max_backoff_s)
        else:
            wait = min(self.max_backoff_s, self.backoff_s * 2 ** (number - 1))
        if budget is not None and budget.remaining_s <= wait:
            return None  # the shared budget cannot wait for another attempt
        return round(wait, 6)

    async def _stages(
        self,
        call: _Call,
        info: ToolInfo | None,
        refused: ToolError | None,
        secret_values: list[str],
        number: int,
    ) -> ToolOutcome:
        """Stages 3 to 5 of one attempt; every failure becomes a failed outcome."""
        tool, policy, budget = call.tool, call.policy, call.budget
        version: str | None = None
        timeout: float | None = None
        evidence: dict[str, float | bool] | None = None
        invoked = False

        def failed(error: ToolError) -> ToolOutcome:
            return ToolOutcome(
                tool=tool,
                ok=False,
                error=error.model_copy(
                    update={"message": self._scrub(call, error.message, secret_values)}
                ),
                invoked=invoked,
                version=version,
                timeout_s=timeout,
                allocation=evidence,
            )

        if refused is not None:
            return failed(refused)
        try:
            # 3. resolution (made as the request was built) and validation
            if info is None:  # a resumed run re-making an attempt its record holds
                info = await call.source.resolve(call.remote, call.who.tenant, call.credential)
            version = info.version or None
            valid, hints = call.source.validate(info, call.args)
            if hints:
                return failed(
                    ToolError.of(
                        "invalid_arguments",
                        tool,
                        f"the arguments do not match the schema of {tool!r}",
                        hints=self._safe_hints(call, hints, secret_values),
                    )
                )
            # 4. budget: rate limit, then time
            limit = self.rate_limits.get(tool, self.default_rate_limit)
            if limit is not None:
                wait = self._limiter.acquire((call.who.tenant, call.who.id, tool), limit)
                if wait is not None:
                    return failed(
                        ToolError.of(
                            "rate_limited",
                            tool,
                            f"principal {call.who.id!r} is over the rate limit of {tool!r} "
                            f"({limit.per_second:g}/s, burst {limit.burst})",
                            retry_after_s=wait,
                        )
                    )
            if budget is not None:
                estimate = self.estimate(tool, policy)
                allocation: Allocation = budget.take(
                    tool, estimate, self.estimate, retry=number > 1
                )
                evidence = allocation.evidence()
                if not allocation.fits:
                    return failed(_cannot_fit(tool, allocation.remaining_s, allocation.expected_s))
                timeout = allocation.timeout_s
            else:
                timeout = call.timeout_s if call.timeout_s is not None else policy.timeout_s
            # 5. invocation
            invoked = True
            started = time.perf_counter()
            try:
                # Each source enforces the timeout itself (one cancel scope, not several
                # nested: each costs the call CPU on every wake-up).
                result = await call.source.invoke(
                    info, valid, timeout, call.who.tenant, call.credential
                )
            except TimeoutError:
                self.history(tool).add(time.perf_counter() - started)
                return failed(
                    ToolError.of("timeout", tool, f"{tool!r} took longer than {timeout:.3f}s")
                )
            except ToolCallError as exc:
                if exc.error.category == "timeout":
                    # A censored sample: the call took at least this long.
                    self.history(tool).add(time.perf_counter() - started)
                raise
            self.history(tool).add(time.perf_counter() - started)
        except ToolCallError as exc:
            return failed(exc.error)
        except Exception as exc:  # a local tool's own bug: a result, not a broker crash
            return failed(
                ToolError.of("internal", tool, f"the tool raised {type(exc).__name__}: {exc}")
            )
        clean = (
            ToolResult.model_validate(
                self._scrub(call, result.model_dump(mode="json"), secret_values)
            )
            if secret_values or call.credential
            else result
        )
        if clean.is_error:
            return failed(_tool_is_error(tool, clean, policy))
        return ToolOutcome(
            tool=tool,
            ok=True,
            result=clean,
            invoked=True,
            version=version,
            timeout_s=timeout,
            allocation=evidence,
        )

    # -- stage 6: audit --------------------------------------------------------------------

    def _audit(
        self,
        ctx: Context,
        who: Principal,
        tool: str,
        source: str | None,
        effect: int | None,
        attempt: int,
        arguments: Mapping[str, Any],
        secret_names: frozenset[str] | None,
        outcome: ToolOutcome | None,
        error: ToolError | None,
        *,
        latency_s: float = 0.0,
        request_key: str | None = None,
    ) -> None:
        """Append one entry; ``secret_names`` None means the arguments are redacted already."""
        if secret_names is None:
            # Redacted, and part of a request that was canonically encoded already: plain
            # JSON, so orjson with sorted keys gives the same bytes without another walk.
            args_digest = digest(orjson.dumps(arguments, option=orjson.OPT_SORT_KEYS))
        else:
            args_digest = digest(canonical_bytes(redact_arguments(arguments, secret_names)[0]))
        if outcome is not None and error is None:
            error = outcome.error
        entry = self.audit.append(
            {
                "tenant": who.tenant,
                "principal": who.id,
                "scopes": list(who.scopes),  # already sorted
                "run_id": ctx.run_id,
                "step_id": ctx.step_id,
                "effect": effect,
                "tool": tool,
                "source": source,
                "version": outcome.version if outcome is not None else None,
                "attempt": attempt,
                "arguments": args_digest,
                "request": request_key,
                "result": ctx.effect_record(effect) if effect is not None else None,
                "outcome": "ok" if error is None else error.category,
                "message": "" if error is None else error.message,
                "retryable": bool(error and error.retryable),
                "invoked": bool(outcome and outcome.invoked),
                # To the microsecond, as integer arithmetic: round(x, n) costs more.
                "latency_ms": int(latency_s * 1e6 + 0.5) / 1000,
                "timeout_s": outcome.timeout_s if outcome is not None else None,
                "at": time.time_ns() // 1000 / 1e6,
            }
        )
        # The tenant's chain is anchored in the store's ledger, so that a rolled-back or
        # rewritten audit log no longer matches what the ledger's checkpoints cover. An entry
        # of a recorded attempt is anchored at the end of its step (the run's records show
        # the attempt until then, see agents.tools._audit); any other entry at once.
        recorded = entry.result is not None
        ctx.anchor("tool-audit", entry.tenant, entry.seq, entry.hash, defer=recorded)

    # -- listing ---------------------------------------------------------------------------

    async def list_tools(self, ctx: Context, *, principal: Principal | None = None) -> ToolListing:
        """The tools the principal may call, with their schemas, as a recorded effect (so a
        model prompt built from it is the same in replay, with no server running)."""
        who = self._identify(ctx, principal)

        async def perform() -> ToolListing:
            return await self.discover(who)

        request = {"principal": who.record(), "sources": sorted(self.sources)}
        return await ctx.effect("tool-list", "tools", request, perform, response_model=ToolListing)

    async def discover(self, who: Principal) -> ToolListing:
        """The listing itself, unrecorded (for ``orch tools list`` and tests)."""
        tools: list[dict[str, Any]] = []
        unavailable: dict[str, str] = {}
        for name, source in sorted(self.sources.items()):
            policy = source.policy("") if not isinstance(source, LocalSource) else None
            # A server the principal may not use at all (its tenant, its server-wide scopes,
            # its credential) is not even started.
            if policy is not None and self._authorise(who, name, policy) is not None:
                continue
            credential = (
                self.credentials.get(who.tenant, policy.credential)
                if policy is not None and policy.credential
                else None
            )
            try:
                infos = await source.list(who.tenant, credential)
            except ToolCallError as exc:
                unavailable[name] = exc.error.message
                continue
            for info in infos:
                if self._authorise(who, info.name, info.policy) is None:
                    tools.append(info.summary())
        return ToolListing(tools=tools, unavailable=unavailable)

    async def aclose(self) -> None:
        """Close every source's connections (stdio servers are shut down)."""
        for source in list(self._sources.values()):
            await source.aclose()


def _idempotent(call: _Call, info: ToolInfo | None) -> bool:
    if info is not None:
        return info.idempotent
    return call.policy.idempotent is not False and isinstance(call.source, LocalSource)


_secrets_of: dict[int, tuple[ToolInfo, frozenset[str]]] = {}


def _schema_secret_names(info: ToolInfo) -> frozenset[str]:
    """The argument names ``info``'s schema marks secret, computed once per ToolInfo (a
    source keeps one per tool and listing)."""
    found = _secrets_of.get(id(info))
    if found is None or found[0] is not info:
        if len(_secrets_of) > 4096:
            _secrets_of.clear()
        found = _secrets_of[id(info)] = (info, schema_secrets(info.input_schema))
    return found[1]


def _tool_is_error(tool: str, result: ToolResult, policy: ToolPolicy) -> ToolError:
    """A result the tool itself flagged ``isError``: an MCP server reports its argument
    validation this way too, so its wording is read for the category."""
    text = result.text.strip() or "the tool reported an error"
    lowered = text.lower()
    if (
        "-32602" in text
        or "invalid arguments" in lowered
        or "validation error" in lowered
        or lowered.startswith(("invalid ", "error: invalid "))
    ):
        # "Invalid timezone: 'Mars/Base'": the tool refused what it was given.
        category = "invalid_arguments"
    elif "unknown tool" in lowered:
        # Only an unknown *tool* is not_found; "file not found" is the tool's own failure.
        category = "not_found"
    else:
        category = "internal"
    return ToolError.of(
        category,  # type: ignore[arg-type]
        tool,
        text if len(text) <= 2000 else text[:1997] + "...",
        alternative=policy.alternative,
    )
