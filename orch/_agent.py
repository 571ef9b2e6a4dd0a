"""Typed agents: the unit of work in a pipeline.

An agent has a pydantic input model, a pydantic output model, a ``name``, a ``version`` and a
config (a pydantic model, hashed into the pipeline spec). It does its work in
``async run(input, ctx)`` and reaches the outside world only through ``ctx``: an agent must
never read the clock, global randomness, or the network directly, or replay cannot reproduce it.

Two ways to define one: subclass :class:`Agent` with type parameters, or decorate an async
function with :func:`agent`.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, get_args, get_origin, overload

from pydantic import BaseModel, ValidationError

from orch.errors import AgentDefinitionError
from traces import AgentRef, hash_value

if TYPE_CHECKING:
    from orch._context import Context

__all__ = ["Agent", "FunctionAgent", "NoConfig", "agent"]

InT = TypeVar("InT", bound=BaseModel)
OutT = TypeVar("OutT", bound=BaseModel)

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")


class NoConfig(BaseModel):
    """The config of an agent that takes none."""

    model_config = {"frozen": True, "extra": "forbid"}


def _check_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise AgentDefinitionError(
            f"{what} has invalid name {name!r}; fix: use letters, digits, '_', '.', ':' or '-', "
            "starting with a letter or '_'"
        )
    return name


def _model_arg(tp: object, what: str, owner: str) -> type[BaseModel]:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    raise AgentDefinitionError(
        f"agent {owner!r}: its {what} type {tp!r} is not a pydantic model; "
        f"fix: declare the {what} as a subclass of pydantic.BaseModel"
    )


class Agent(Generic[InT, OutT]):
    """Base class of agents. Subclass as ``class MyAgent(Agent[In, Out])``.

    Type Parameters:
        InT: the pydantic input model.
        OutT: the pydantic output model.

    Class attributes ``name`` and ``version`` identify the agent in records; ``config_model``
    names its config model (default :class:`NoConfig`). Bump ``version`` whenever the agent's
    behaviour changes: replay uses it to tell a changed agent from a changed record.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "0"
    input_model: ClassVar[type[BaseModel]]
    output_model: ClassVar[type[BaseModel]]
    config_model: ClassVar[type[BaseModel]] = NoConfig

    config: BaseModel
    unconfigured: str | None = None
    """Why the agent cannot run yet (a config with required fields not given), else None."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in getattr(cls, "__orig_bases__", ()):
            if get_origin(base) is Agent:
                args = get_args(base)
                if len(args) == 2 and not any(isinstance(a, TypeVar) for a in args):
                    owner = getattr(cls, "name", cls.__name__)
                    cls.input_model = _model_arg(args[0], "input", owner)
                    cls.output_model = _model_arg(args[1], "output", owner)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__

    def __init__(self, config: BaseModel | None = None, **config_fields: Any) -> None:
        cls = type(self)
        _check_name(getattr(cls, "name", None), f"agent class {cls.__qualname__}")
        for attr in ("input_model", "output_model"):
            if not hasattr(cls, attr):
                raise AgentDefinitionError(
                    f"agent {cls.name!r} has no {attr}; fix: subclass Agent[InputModel, "
                    "OutputModel] or set the class attributes input_model and output_model"
                )
        if config is not None and config_fields:
            raise AgentDefinitionError(
                f"agent {cls.name!r}: pass either a config model or config fields, not both"
            )
        if config is None:
            config = _make_config(cls.config_model, config_fields, cls.name)
        elif not isinstance(config, cls.config_model):
            raise AgentDefinitionError(
                f"agent {cls.name!r}: config is a {type(config).__name__}, expected "
                f"{cls.config_model.__name__}; fix: pass {cls.config_model.__name__}(...)"
            )
        self.config = config
        self._config_hash = hash_value(config)

    @property
    def config_hash(self) -> str:
        """Key of the canonical encoding of this agent's config."""
        return self._config_hash

    @property
    def ref(self) -> AgentRef:
        """How records name this agent."""
        return AgentRef(name=self.name, version=self.version, config_hash=self._config_hash)

    async def run(self, input: InT, ctx: Context) -> OutT:
        """Do the agent's work. Override this."""
        raise NotImplementedError(f"agent {self.name!r} does not implement run()")

    def __repr__(self) -> str:
        return f"<agent {self.name}@{self.version}>"


def _make_config(model: type[BaseModel], fields: dict[str, Any], owner: str) -> BaseModel:
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(config)'}: {e['msg']}" for e in exc.errors()
        )
        raise AgentDefinitionError(
            f"agent {owner!r}: invalid config for {model.__name__} ({problems}); fix: pass "
            f"the fields {model.__name__} declares"
        ) from None


class FunctionAgent(Agent[BaseModel, BaseModel]):
    """An agent made from an async function by :func:`agent`."""

    def __init__(
        self,
        fn: Callable[..., Awaitable[BaseModel]],
        *,
        name: str,
        version: str,
        input_model: type[BaseModel],
        output_model: type[BaseModel],
        config_model: type[BaseModel],
        config: BaseModel | None = None,
    ) -> None:
        self._fn = fn
        # Instance attributes shadow the class-level contract for this one agent.
        self.name = _check_name(name, f"function {fn.__qualname__}")  # type: ignore[misc]
        self.version = version  # type: ignore[misc]
        self.input_model = input_model  # type: ignore[misc]
        self.output_model = output_model  # type: ignore[misc]
        self.config_model = config_model  # type: ignore[misc]
        if config is None:
            try:
                config = config_model()
            except ValidationError:
                # A config with required fields: usable only through with_config(...).
                required = [n for n, f in config_model.model_fields.items() if f.is_required()]
                self.unconfigured = (
                    f"agent {self.name!r} needs a config ({config_model.__name__} requires "
                    f"{', '.join(required)}); fix: use {fn.__name__}.with_config("
                    + ", ".join(f"{n}=..." for n in required)
                    + ")"
                )
                self._config_hash = ""
                return
        self.config = config
        self._config_hash = hash_value(config)

    def with_config(self, config: BaseModel | None = None, **fields: Any) -> FunctionAgent:
        """A copy of this agent with another config."""
        if config is not None and fields:
            raise AgentDefinitionError(
                f"agent {self.name!r}: pass either a config model or config fields, not both"
            )
        if config is None:
            config = _make_config(self.config_model, fields, self.name)
        elif not isinstance(config, self.config_model):
            raise AgentDefinitionError(
                f"agent {self.name!r}: config is a {type(config).__name__}, expected "
                f"{self.config_model.__name__}; fix: pass {self.config_model.__name__}(...)"
            )
        return FunctionAgent(
            self._fn,
            name=self.name,
            version=self.version,
            input_model=self.input_model,
            output_model=self.output_model,
            config_model=self.config_model,
            config=config,
        )

    async def run(self, input: BaseModel, ctx: Context) -> BaseModel:
        return await self._fn(input, ctx)


AgentFn = Callable[[Any, Any], Awaitable[Any]]


@overload
def agent(fn: AgentFn, /) -> FunctionAgent: ...
@overload
def agent(
    *, name: str | None = None, version: str = "0", config: type[BaseModel] | None = None
) -> Callable[[AgentFn], FunctionAgent]: ...


def agent(
    fn: AgentFn | None = None,
    /,
    *,
    name: str | None = None,
    version: str = "0",
    config: type[BaseModel] | None = None,
) -> FunctionAgent | Callable[[AgentFn], FunctionAgent]:
    """Turn ``async def f(input: In, ctx: Context) -> Out`` into an agent.

    The input and output models come from the annotations. ``config`` names a config model;
    the function reads its value as ``ctx.config``.
    """

    def wrap(f: AgentFn) -> FunctionAgent:
        owner: str = name or getattr(f, "__name__", None) or repr(f)
        if not inspect.iscoroutinefunction(f):
            raise AgentDefinitionError(
                f"agent {owner!r} must be an async function; fix: define it with 'async def'"
            )
        try:
            hints = typing.get_type_hints(f)
        except Exception as exc:
            raise AgentDefinitionError(
                f"agent {owner!r}: its annotations cannot be resolved ({exc}); fix: import the "
                "types it names at module level"
            ) from exc
        params = list(inspect.signature(f).parameters.values())
        if len(params) != 2:
            raise AgentDefinitionError(
                f"agent {owner!r} takes {len(params)} parameters; fix: define it as "
                "'async def f(input: InputModel, ctx: Context) -> OutputModel'"
            )
        first = params[0].name
        if first not in hints or "return" not in hints:
            raise AgentDefinitionError(
                f"agent {owner!r} lacks type annotations; fix: annotate the input parameter "
                "and the return type with pydantic models"
            )
        return FunctionAgent(
            f,
            name=owner,
            version=version,
            input_model=_model_arg(hints[first], "input", owner),
            output_model=_model_arg(hints["return"], "output", owner),
            config_model=config or NoConfig,
        )

    if fn is not None:
        return wrap(fn)
    return wrap
