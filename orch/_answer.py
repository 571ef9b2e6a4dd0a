"""Answering a waiting run: check the answer, then resume the run with it.

:func:`aanswer` is what ``orch answer`` and an app's approval endpoint call: the answer is
checked against the question it names (:func:`orch._ask.check_answer`; a refused one writes
nothing and the run stays waiting), then the run is resumed with it under its lineage's lease
(:func:`orch.arun` with ``resume=``), in this process, whichever process asked. This module
must never write an answer anywhere but in the resumed run's record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio

from orch._ask import check_answer
from orch._pipeline import Pipeline
from orch._runtime import RunResult, _writable_store, arun
from traces import ArtifactStore

__all__ = ["aanswer", "answer"]


async def aanswer(
    pipeline: Pipeline,
    run_id: str,
    values: Mapping[str, Any] | None = None,
    /,
    *,
    by: str,
    question: str | None = None,
    use_default: bool = False,
    store: ArtifactStore | None = None,
    **run_options: Any,
) -> RunResult:
    """Answer the question waiting run ``run_id`` of ``pipeline`` asked, as ``by``, and resume
    it; return the resumed run's result (which may wait again, on a later question).

    ``values`` are the answer's fields; ``question`` names the question when the run waits
    on several; ``use_default`` applies the question's default once its deadline passed.
    ``run_options`` are :func:`orch.arun`'s (``services``, ``on_event``, ``wait``, the new
    run's ``run_id`` ...). A
    refused answer raises :class:`~orch.errors.AnswerError` before anything is written."""
    store = _writable_store(store)
    answers = check_answer(store, run_id, values, by=by, question=question, use_default=use_default)
    return await arun(pipeline, resume=run_id, answers=answers, store=store, **run_options)


def answer(
    pipeline: Pipeline, run_id: str, values: Mapping[str, Any] | None = None, **kwargs: Any
) -> RunResult:
    """Synchronous :func:`aanswer` (starts an event loop; do not call from async code)."""

    async def main() -> RunResult:
        return await aanswer(pipeline, run_id, values, **kwargs)

    return anyio.run(main)
