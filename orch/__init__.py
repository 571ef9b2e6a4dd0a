"""orch: auditable multi-model LLM ensembles.

Define a pipeline of typed agents in Python; run it asynchronously; get a content-addressed,
verifiable, replayable record of everything it did. The public API is re-exported here.
"""

from __future__ import annotations

from orch._agent import Agent, FunctionAgent, NoConfig, agent
from orch._answer import aanswer, answer
from orch._ask import Answer, Question, check_answer, pending_questions
from orch._builder import PipelineBuilder
from orch._context import Context
from orch._deltas import stream_delta, wants_deltas
from orch._evalformat import (
    EVAL_FORMAT,
    EvalConfigOf,
    EvalCurveOf,
    EvalFileOf,
    EvalPoint,
    EvalReferencesOf,
    EvalRun,
    EvalTable,
)
from orch._events import EventSink, RunEvent, RunStream
from orch._loader import load_pipeline
from orch._pipeline import Pipeline
from orch._plugins import find_entry_point, load_entry_point, plugin_package
from orch._refs import Branch, InputRef, NodeRef, input_ref, ref
from orch._retry import RetryPolicy
from orch._runtime import RunControl, RunResult, arun, run
from orch._stream import stream
from orch._thread import ThreadTurn, thread_turns
from orch._version import __version__
from orch.batch import BatchResult, BatchSpec, Executor, ItemResult, LocalExecutor, apply_in_order
from orch.errors import (
    AgentDefinitionError,
    AnswerError,
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
    ThreadBusyError,
    ThreadError,
    ValidationProblem,
)
from orch.selection import Selection

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
    "load_pipeline",
    "ref",
    # running
    "RunControl",
    "RunResult",
    "arun",
    "run",
    # its events as they happen
    "EventSink",
    "RunEvent",
    "RunStream",
    "stream",
    "stream_delta",
    "wants_deltas",
    # human in the loop: questions a run waits on, and the answers that resume it
    "Answer",
    "Question",
    "aanswer",
    "answer",
    "check_answer",
    "pending_questions",
    # conversation threads: a chain of runs, one per turn
    "ThreadTurn",
    "thread_turns",
    # batches (the Dask executor is orch.batch.dask.DaskExecutor: an optional extra)
    "BatchResult",
    "BatchSpec",
    "Executor",
    "ItemResult",
    "LocalExecutor",
    "apply_in_order",
    # plugins: the entry-point lookup every group uses
    "find_entry_point",
    "load_entry_point",
    "plugin_package",
    # the evaluation file's format (orch.eval-report/1): routers.eval writes it, orch ui reads it
    "EVAL_FORMAT",
    "EvalConfigOf",
    "EvalCurveOf",
    "EvalFileOf",
    "EvalPoint",
    "EvalReferencesOf",
    "EvalRun",
    "EvalTable",
    # errors
    "AgentDefinitionError",
    "AnswerError",
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
    "ThreadBusyError",
    "ThreadError",
    "ValidationProblem",
]
