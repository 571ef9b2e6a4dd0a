"""Errors raised by the engine. Every message names the thing at fault and the fix.

::

    OrchError
    ├── PipelineValidationError   building a pipeline found problems (one line each)
    ├── AgentDefinitionError      an agent class or function is malformed
    ├── InputError                pipeline inputs missing or of the wrong type
    ├── AnswerError               an answer to a waiting run's question was refused
    ├── PluginError               a plugin cannot be found or failed to load
    ├── PipelineLoadError         ``orch run FILE:NAME`` could not load the pipeline
    ├── RunBusyError              another process works on the run's lineage (resumes)
    │   └── ThreadBusyError       another process runs a turn of the thread
    ├── LeaseHeld                 another process holds a lease taken without waiting
    ├── ThreadError               a thread's next turn cannot start, or its index is wrong
    ├── ReplayDivergenceError     a replayed step made a request its record does not have
    ├── RecordedEffectError       a recorded effect's failure, raised again by replay
    ├── CliError                  a mistake on the command line (printed as one line, exit 2)
    ├── ExecutorError             a batch cannot be placed or run as asked
    │   ├── BatchInputError       one input of a batch does not fit the pipeline
    │   └── InputsFileError       a file of batch inputs is not one JSON object per line
    └── StepError                 raised inside an agent: a step failed
        ├── RetryableError        a transient failure worth retrying (network, 429 ...)
        │   └── StepTimeoutError  a step ran past its timeout
        └── ChildStepError        a child call (``ctx.call``) failed
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orch._effects import Divergence

__all__ = [
    "own_error",
    "type_path",
    "AgentDefinitionError",
    "AnswerError",
    "BatchInputError",
    "CliError",
    "InputsFileError",
    "ChildStepError",
    "ExecutorError",
    "InputError",
    "LeaseHeld",
    "LeaseLostError",
    "OrchError",
    "PipelineLoadError",
    "PipelineValidationError",
    "PluginError",
    "RecordedEffectError",
    "ReplayDivergenceError",
    "RetryableError",
    "RunBusyError",
    "ThreadBusyError",
    "ThreadError",
    "StepError",
    "StepTimeoutError",
    "ValidationProblem",
]


RECORDED_NAME = "__orch_recorded_name__"
"""A class attribute pinning the name records give an exception class (see :func:`type_path`)."""


def type_path(cls: type) -> str:
    """``module.qualname``: a class as records name it (a step's or an effect's error type, a
    retry policy's ``retry_on``), which is hashed. A class that moved pins its old name in
    ``__orch_recorded_name__`` (set on the class itself, never inherited), so that records
    made before the move still replay to the same root hash."""
    pinned = cls.__dict__.get(RECORDED_NAME)
    return pinned if isinstance(pinned, str) else f"{cls.__module__}.{cls.__qualname__}"


class OrchError(Exception):
    """Base of every engine error."""


class CliError(OrchError):
    """A mistake on the command line (an option, a file it names): the ``orch`` commands, a
    plugin's too, print it as one line, ``error: MESSAGE; fix: HINT``, and exit 2."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint
        """The fix, printed after the message."""


class RunBusyError(OrchError):
    """Another process holds the lease of the run's lineage: it runs the original, or
    another resume of it. The message names the holder."""


class ThreadError(OrchError):
    """A conversation thread's next turn cannot start as asked (its last turn did not end
    ok, an invalid thread id, a ``state`` input the thread cannot feed), or the thread's index
    disagrees with the run heads it names. Nothing was written."""


class ThreadBusyError(RunBusyError, ThreadError):
    """Another process runs a turn of the thread (or a resume of one): one turn at a time.
    The message names the holder."""


@dataclass(frozen=True)
class ValidationProblem:
    """One problem found while building a pipeline."""

    node: str
    """The node (or ``input:NAME`` / ``output:NAME``) the problem is about."""
    code: str
    """Short kind: ``cycle``, ``unbound-input``, ``type-mismatch``, ``duplicate-node`` ..."""
    message: str
    fix: str

    def __str__(self) -> str:
        return f"[{self.code}] node {self.node!r}: {self.message}; fix: {self.fix}"


class PipelineValidationError(OrchError):
    """Building a pipeline found one or more problems; ``problems`` lists them all."""

    def __init__(self, pipeline: str, problems: Sequence[ValidationProblem]) -> None:
        self.pipeline = pipeline
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        n = len(self.problems)
        super().__init__(
            f"pipeline {pipeline!r} is invalid ({n} problem{'s' if n != 1 else ''}):\n{lines}"
        )


class AgentDefinitionError(OrchError, TypeError):
    """An agent class or decorated function does not meet the agent contract."""


class InputError(OrchError, ValueError):
    """Pipeline inputs are missing, unknown, or fail validation."""


class AnswerError(OrchError, ValueError):
    """An answer to a waiting run's question (``orch answer``, :func:`orch.answer`) does not
    fit the question's schema, names no pending question, or comes from someone the question
    does not accept. Nothing was written: the run still waits."""


class PluginError(OrchError):
    """A plugin is unknown or broken; the message names its package."""


class PipelineLoadError(OrchError):
    """A pipeline file could not be loaded."""


class ExecutorError(OrchError):
    """A batch cannot be placed or run as asked (the message names the thing and the fix)."""


class InputsFileError(ExecutorError):
    """A file of batch inputs cannot be read as one JSON object per line (the message names
    the line and the fix)."""


class BatchInputError(ExecutorError):
    """One input of a batch does not fit the pipeline; ``index`` says which (from 0)."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


class LeaseLostError(ExecutorError):
    """Another process took over this process's lease on a batch input (this one was paused
    or cut off from the store for longer than the lease); it finishes that input."""


class LeaseHeld(OrchError):
    """Raised by ``orch._lease.take`` with ``wait=False`` when another process holds the
    lease; ``name`` is the lease's, ``holder`` says who holds it (may be empty)."""

    def __init__(self, name: str, holder: str = "") -> None:
        self.name = name
        self.holder = holder
        super().__init__(
            f"the lease on {name} is held by {holder or 'another process'}; fix: take it with "
            "wait=True to wait until it is released (or, its holder gone, goes stale)"
        )


class ReplayDivergenceError(OrchError):
    """A replayed step made a request that differs from its record; the replay stops.
    ``divergence`` says where and how (:class:`orch._effects.Divergence`)."""

    __orch_recorded_name__ = "orch.effects.ReplayDivergenceError"  # its module until 0.1.0

    def __init__(self, divergence: Divergence) -> None:
        self.divergence = divergence
        super().__init__("replay diverged at " + divergence.describe())


class RecordedEffectError(OrchError):
    """A recorded effect had failed; replay raises it again with the recorded type and text.
    Records name it by ``original_type``, never by its own name, so a replayed step's record
    is the original's (see ``orch._effect_path.type_name``)."""

    def __init__(self, original_type: str, message: str) -> None:
        self.original_type = original_type
        self.original_message = message
        super().__init__(f"{original_type}: {message}")


class StepError(OrchError):
    """Base for failures raised while a step runs."""


class RetryableError(StepError):
    """A transient failure: the node's retry policy may run the step again."""


class StepTimeoutError(RetryableError, TimeoutError):
    """A step ran longer than its node's timeout."""


class ChildStepError(StepError):
    """A child step called through ``ctx.call`` failed; ``step_id`` names it."""

    def __init__(self, step_id: str, error_type: str, message: str) -> None:
        self.step_id = step_id
        self.error_type = error_type
        super().__init__(f"child step {step_id!r} failed: {error_type}: {message}")


@contextmanager
def own_error() -> Iterator[None]:
    """Let the one error of work that runs beside a helper task (a lease's renewer, a signal
    watcher) out as itself, not wrapped in their task group's exception group: callers catch
    the errors of their work, not a group they never made. Several errors stay a group."""
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
