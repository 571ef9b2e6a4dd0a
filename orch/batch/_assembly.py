"""Assembling a batch from what a user gives: a JSONL file of inputs, and an executor named
by ``executor``/``scheduler``/``parallel``/``chunk_size`` (the options of ``orch batch`` and
``orch eval``). Errors name the line or the option and the fix; nothing here runs a batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from orch.batch._executor import Executor, LocalExecutor
from orch.errors import ExecutorError, InputsFileError

__all__ = ["EXECUTORS", "make_executor", "read_inputs"]

EXECUTORS = ("local", "dask")


def read_inputs(path: str) -> tuple[list[dict[str, Any]], list[int]]:
    """The JSON objects of a JSONL file and the line number of each (blank lines skipped).

    Raises :class:`InputsFileError` naming the line and the fix."""
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise InputsFileError(
            f"cannot read --inputs {path!r}: {exc.strerror}; fix: give a JSONL file, one JSON "
            "object of pipeline inputs per line"
        ) from None
    inputs: list[dict[str, Any]] = []
    lines: list[int] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise InputsFileError(
                f"{path} line {number} is not valid JSON ({exc}); fix: write one JSON object "
                'per line, e.g. {"question": "What is 2 + 2?"}'
            ) from None
        if not isinstance(value, dict):
            raise InputsFileError(
                f"{path} line {number} is a JSON {type(value).__name__}, not an object; fix: "
                'write the run\'s inputs as an object, e.g. {"question": "What is 2 + 2?"}'
            )
        inputs.append(value)
        lines.append(number)
    if not inputs:
        raise InputsFileError(f"{path} holds no inputs; fix: write one JSON object per line")
    return inputs, lines


def make_executor(
    executor: str | None, scheduler: str | None, parallel: int, chunk_size: int | None
) -> Executor | None:
    """The executor the ``--executor``, ``--scheduler``, ``--parallel`` and ``--chunk-size``
    options name (None for no ``--executor``, where a command may run without one); a
    :class:`~orch.errors.ExecutorError` with the fix for a combination that is not."""
    if executor is not None and executor not in EXECUTORS:
        raise ExecutorError(
            f"--executor {executor!r} is not one of {', '.join(EXECUTORS)}; fix: use "
            "--executor local, or --executor dask --scheduler tcp://HOST:PORT"
        )
    if executor == "dask":
        if scheduler is None:
            raise ExecutorError(
                "--executor dask needs --scheduler tcp://HOST:PORT; fix: give the address "
                "'dask scheduler' prints, e.g. --scheduler tcp://10.0.0.5:8786"
            )
        from orch.batch.dask import DaskExecutor  # the dask extra: imported only when asked

        return DaskExecutor(scheduler, parallel=parallel, chunk_size=chunk_size)
    if scheduler is not None or chunk_size is not None:
        raise ExecutorError(
            "--scheduler and --chunk-size are for --executor dask; fix: add --executor dask, "
            "or drop them to run here"
        )
    return None if executor is None else LocalExecutor(parallel)
