"""Errors raised by the engine. Every message names the thing at fault and the fix.

::

    OrchError
    ├── PipelineValidationError   building a pipeline found problems (one line each)
    ├── AgentDefinitionError      an agent class or function is malformed
    ├── InputError                pipeline inputs missing or of the wrong type
    ├── PluginError               a plugin cannot be found or failed to load
    ├── PipelineLoadError         ``orch run FILE:NAME`` could not load the pipeline
    ├── RunBusyError              another process works on the run's lineage (resumes)
    ├── ExecutorError             a batch cannot be placed or run as asked
    │   └── BatchInputError       one input of a batch does not fit the pipeline
    └── StepError                 raised inside an agent: a step failed
        ├── RetryableError        a transient failure worth retrying (network, 429 ...)
        │   └── StepTimeoutError  a step ran past its timeout
        └── ChildStepError        a child call (``ctx.call``) failed
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = [
    "own_error",
    "AgentDefinitionError",
    "BatchInputError",
    "ChildStepError",
    "ExecutorError",
    "InputError",
    "LeaseLostError",
    "OrchError",
    "PipelineLoadError",
    "PipelineValidationError",
    "PluginError",
    "RetryableError",
    "RunBusyError",
    "StepError",
    "StepTimeoutError",
    "ValidationProblem",
]


class OrchError(Exception):
    """Base of every engine error."""


class RunBusyError(OrchError):
    """Another process holds the lease of the run's lineage: it runs the original, or
    another resume of it. The message names the holder."""


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


class PluginError(OrchError):
    """A plugin is unknown or broken; the message names its package."""


class PipelineLoadError(OrchError):
    """A pipeline file could not be loaded."""


class ExecutorError(OrchError):
    """A batch cannot be placed or run as asked (the message names the thing and the fix)."""


class BatchInputError(ExecutorError):
    """One input of a batch does not fit the pipeline; ``index`` says which (from 0)."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


class LeaseLostError(ExecutorError):
    """Another process took over this process's lease on a batch input (this one was paused
    or cut off from the store for longer than the lease); it finishes that input."""


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
