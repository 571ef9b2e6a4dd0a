"""What the broker knows about a tool, and tools made from Python functions.

A tool has two halves. Its :class:`ToolPolicy` is configuration the broker knows without
asking anyone: the scopes a caller needs, the tenant that owns it, the credential it needs,
which arguments are secret, its default timeout and prior latency, a suggested alternative.
Authorisation reads only the policy, so a denial never needs the server. Its
:class:`ToolInfo` adds what the tool says of itself: description, version and the JSON
schema of its arguments (discovered from an MCP server, or derived from a Python function's
type hints through pydantic).

:func:`tool` makes a :class:`LocalTool` from a typed function; its arguments are validated
by the same pydantic model the schema came from.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from agents.errors import ToolConfigError

__all__ = ["LocalTool", "ToolInfo", "ToolPolicy", "ToolResult", "tool"]


class ToolResult(BaseModel):
    """What a tool gave back: MCP content blocks (``{"type": "text", "text": ...}`` and the
    like), optional structured content, and whether the tool reports an error (``isError``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    content: list[dict[str, Any]] = Field(default_factory=list)
    structured: Any = None
    is_error: bool = False

    @property
    def text(self) -> str:
        """The text blocks joined by newlines (what a model reads)."""
        return "\n".join(str(c.get("text", "")) for c in self.content if c.get("type") == "text")


@dataclass(frozen=True)
class ToolPolicy:
    """How the broker treats a tool, known from configuration alone."""

    scopes: frozenset[str] = frozenset()
    """Scopes a principal needs to call it."""
    tenant: str | None = None
    """The tenant that owns the tool: principals of other tenants are refused."""
    credential: str | None = None
    """The name of a credential the calling tenant must hold in the broker's vault."""
    secrets: frozenset[str] = frozenset()
    """Argument names whose values never reach a record (besides those the schema marks as
    passwords or write-only, and names that look like secrets)."""
    alternative: str | None = None
    timeout_s: float = 30.0
    """The timeout of a call outside a time budget; the cap of one inside it."""
    expected_s: float = 0.1
    """Expected latency before the broker has measured any (the budget's prior)."""
    idempotent: bool | None = None
    """Whether calling it twice does no more than calling it once. A failure after the call
    reached the tool (a lost connection, a timeout) is retried only for an idempotent tool:
    the first call may have taken effect. None: as the tool says (MCP's ``idempotentHint``
    or ``readOnlyHint``; a Python function is taken as idempotent)."""

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ToolConfigError(f"timeout_s must be > 0, got {self.timeout_s}")
        if not 0 < self.expected_s <= self.timeout_s:
            raise ToolConfigError(
                f"expected_s must be in (0, timeout_s={self.timeout_s}], got {self.expected_s}"
            )


@dataclass(frozen=True)
class ToolInfo:
    """A resolved tool: its qualified name, where it lives, its schema and its policy."""

    name: str
    """Qualified name: ``server.tool`` for an MCP server's tool, the bare name for a local
    tool."""
    source: str
    """The source that serves it (``local`` or the MCP server's name)."""
    remote_name: str
    """The tool's own name at its source."""
    description: str = ""
    version: str = ""
    input_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    policy: ToolPolicy = field(default_factory=ToolPolicy)
    checker: Any = field(default=None, compare=False, repr=False)
    """The source's compiled argument validator for this schema, if it keeps one."""
    idempotent: bool = True
    """Whether a call that reached the tool may be made again (see ToolPolicy.idempotent)."""

    def summary(self) -> dict[str, Any]:
        """What a listing records about the tool (no callables, JSON only)."""
        return {
            "name": self.name,
            "source": self.source,
            "remote_name": self.remote_name,
            "description": self.description,
            "version": self.version,
            "input_schema": self.input_schema,
            "scopes": sorted(self.policy.scopes),
        }


class LocalTool:
    """A Python function (sync or async) as a tool.

    ``credential_arg`` names a parameter the broker fills with the calling tenant's
    credential (``policy.credential``): it is left out of the schema a model sees, and its
    value never reaches a record. Sync functions run on the event loop: make slow tools
    ``async def`` so that timeouts can interrupt them.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        version: str = "1",
        description: str | None = None,
        policy: ToolPolicy | None = None,
        credential_arg: str | None = None,
    ) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.version = version
        self.description = description or inspect.getdoc(fn) or ""
        self.policy = policy or ToolPolicy()
        if credential_arg is not None and self.policy.credential is None:
            raise ToolConfigError(
                f"tool {self.name!r}: credential_arg={credential_arg!r} but the policy names "
                "no credential; fix: pass credential='NAME' (the vault entry to inject)"
            )
        self.credential_arg = credential_arg
        self.is_async = inspect.iscoroutinefunction(fn)
        self.model = _arguments_model(fn, self.name, skip=credential_arg)
        self.info = ToolInfo(
            name=self.name,
            source="local",
            remote_name=self.name,
            description=self.description,
            version=self.version,
            input_schema=self.model.model_json_schema(),
            policy=self.policy,
            idempotent=self.policy.idempotent is not False,
        )
        from agents.tools._redact import schema_secrets

        self.secret_names: frozenset[str] = self.policy.secrets | schema_secrets(
            self.info.input_schema
        )

    def with_policy(self, **changes: Any) -> LocalTool:
        """A copy with some policy fields changed."""
        return LocalTool(
            self.fn,
            name=self.name,
            version=self.version,
            description=self.description,
            policy=replace(self.policy, **changes),
            credential_arg=self.credential_arg,
        )

    def validate(self, arguments: Mapping[str, Any]) -> tuple[Any, dict[str, str]]:
        """(the parsed arguments, {}) when they are valid, else (None, hints per argument).
        The parsed model goes to :meth:`invoke` as it is: no second validation, and
        ``SecretStr`` values are kept, not masked by a dump."""
        try:
            parsed = self.model.model_validate(dict(arguments))
        except ValidationError as exc:
            hints: dict[str, str] = {}
            for err in exc.errors():
                name = ".".join(str(p) for p in err["loc"]) or "(arguments)"
                hints.setdefault(name, err["msg"])
            return None, hints
        return parsed, {}

    async def invoke(self, arguments: Any, credential: str | None) -> ToolResult:
        """Call the function with ``arguments``: the model :meth:`validate` parsed, or a
        mapping (validated here)."""
        parsed = (
            arguments
            if isinstance(arguments, self.model)
            else self.model.model_validate(dict(arguments))
        )
        kwargs = {name: getattr(parsed, name) for name in type(parsed).model_fields}
        if self.credential_arg is not None:
            kwargs[self.credential_arg] = credential
        value = self.fn(**kwargs)
        if inspect.isawaitable(value):
            value = await value
        return as_result(value)


def as_result(value: Any) -> ToolResult:
    """A function's return value as a :class:`ToolResult`."""
    if isinstance(value, ToolResult):
        return value
    if isinstance(value, str):
        return ToolResult(content=[{"type": "text", "text": value}])
    if isinstance(value, BaseModel):
        data = value.model_dump(mode="json")
        return ToolResult(
            content=[{"type": "text", "text": value.model_dump_json()}], structured=data
        )
    import orjson

    try:
        text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError as exc:
        raise TypeError(
            f"a tool returned a {type(value).__name__}, which has no JSON form ({exc}); fix: "
            "return str, a pydantic model, JSON data or a ToolResult"
        ) from None
    return ToolResult(content=[{"type": "text", "text": text}], structured=value)


def _arguments_model(fn: Callable[..., Any], name: str, skip: str | None) -> type[BaseModel]:
    sig = inspect.signature(fn)
    try:
        hints = inspect.get_annotations(fn, eval_str=True)
    except Exception as exc:
        raise ToolConfigError(
            f"tool {name!r}: its annotations cannot be resolved ({exc}); fix: import the types "
            "it names at module level"
        ) from exc
    if skip is not None and skip not in sig.parameters:
        raise ToolConfigError(
            f"tool {name!r}: credential_arg {skip!r} is not a parameter of the function; fix: "
            f"name one of {list(sig.parameters)}"
        )
    fields: dict[str, Any] = {}
    for pname, param in sig.parameters.items():
        if pname == skip:
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolConfigError(f"tool {name!r}: *args/**kwargs cannot be described by a schema")
        if param.kind is param.POSITIONAL_ONLY:
            raise ToolConfigError(
                f"tool {name!r}: parameter {pname!r} is positional-only, but tools are called "
                "with named arguments; fix: remove the '/' from the signature"
            )
        if pname.startswith(("_", "model_")):
            # pydantic would take these for private attributes or model settings and drop
            # them from the schema without a word.
            raise ToolConfigError(
                f"tool {name!r}: parameter name {pname!r} cannot be an argument (names starting "
                "with '_' or 'model_' are reserved by pydantic); fix: rename it"
            )
        if pname not in hints:
            raise ToolConfigError(
                f"tool {name!r}: parameter {pname!r} has no type hint; fix: annotate it, the "
                "schema is derived from the hints"
            )
        default = ... if param.default is param.empty else param.default
        fields[pname] = (hints[pname], default)
    model: type[BaseModel] = create_model(
        "".join(part.title() for part in name.replace("-", "_").split("_")) + "Arguments",
        __config__=ConfigDict(extra="forbid"),
        **fields,
    )
    return model


@overload
def tool(fn: Callable[..., Any], /) -> LocalTool: ...


@overload
def tool(
    *,
    name: str | None = None,
    version: str = "1",
    description: str | None = None,
    scopes: frozenset[str] | set[str] | tuple[str, ...] = (),
    tenant: str | None = None,
    credential: str | None = None,
    credential_arg: str | None = None,
    secrets: frozenset[str] | set[str] | tuple[str, ...] = (),
    alternative: str | None = None,
    timeout_s: float = 30.0,
    expected_s: float = 0.1,
    idempotent: bool | None = None,
) -> Callable[[Callable[..., Any] | Callable[..., Awaitable[Any]]], LocalTool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    version: str = "1",
    description: str | None = None,
    scopes: frozenset[str] | set[str] | tuple[str, ...] = (),
    tenant: str | None = None,
    credential: str | None = None,
    credential_arg: str | None = None,
    secrets: frozenset[str] | set[str] | tuple[str, ...] = (),
    alternative: str | None = None,
    timeout_s: float = 30.0,
    expected_s: float = 0.1,
    idempotent: bool | None = None,
) -> Any:
    """Decorator: ``@tool`` or ``@tool(scopes={"orders:read"}, timeout_s=5, ...)``."""

    def wrap(f: Callable[..., Any]) -> LocalTool:
        policy = ToolPolicy(
            scopes=frozenset(scopes),
            tenant=tenant,
            credential=credential,
            secrets=frozenset(secrets),
            alternative=alternative,
            timeout_s=timeout_s,
            expected_s=min(expected_s, timeout_s),
            idempotent=idempotent,
        )
        return LocalTool(
            f,
            name=name,
            version=version,
            description=description,
            policy=policy,
            credential_arg=credential_arg,
        )

    return wrap(fn) if fn is not None else wrap
