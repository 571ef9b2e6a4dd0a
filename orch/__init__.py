"""orch: auditable multi-model LLM ensembles.

Define a pipeline of typed agents in Python; run it asynchronously; get a content-addressed,
verifiable, replayable record of everything it did. The public API is re-exported here.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .agent import Agent, FunctionAgent, NoConfig, agent
from .batch import BatchSpec
from .batch_result import BatchResult, ItemResult, apply_in_order
from .context import Context
from .errors import (
    AgentDefinitionError,
    BatchInputError,
    ChildStepError,
    ExecutorError,
    InputError,
    LeaseLostError,
    OrchError,
    PipelineLoadError,
    PipelineValidationError,
    PluginError,
    RetryableError,
    RunBusyError,
    StepError,
    StepTimeoutError,
    ValidationProblem,
)
from .executor import Executor, LocalExecutor
from .pipeline import Pipeline, PipelineBuilder
from .refs import Branch, InputRef, NodeRef, input_ref, ref
from .retry import RetryPolicy
from .runtime import RunControl, RunResult, arun, run
from .selection import Selection

__all__ = [
    "__version__",
    # defining agents
    "Agent",
    "Context",
    "FunctionAgent",
    "NoConfig",
    "agent",
    # defining pipelines
    "Branch",
    "InputRef",
    "NodeRef",
    "Pipeline",
    "PipelineBuilder",
    "RetryPolicy",
    "Selection",
    "input_ref",
    "ref",
    # running
    "RunControl",
    "RunResult",
    "arun",
    "run",
    # batches (the Dask executor is orch.executor_dask.DaskExecutor: an optional extra)
    "BatchResult",
    "BatchSpec",
    "Executor",
    "ItemResult",
    "LocalExecutor",
    "apply_in_order",
    # errors
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
