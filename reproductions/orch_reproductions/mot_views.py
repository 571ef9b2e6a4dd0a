"""Data views for the MoT recordings, as the ACAR table (:mod:`orch_reproductions.acar_table`)
reads them:

* :func:`mot_per_call_costs`: every call pays its whole few-shot prompt;
* :func:`pad_samples`: failed calls the source dropped count as calls with no answer;
* :func:`covering`: the tasks every role's model answered.

A view returns a new dataset and never changes a recorded sample's answer or score.
"""

from __future__ import annotations

from collections.abc import Sequence

from routers.eval import Dataset, Sample

from .adapters.mot import PROMPT_TOKENS

__all__ = ["covering", "mot_per_call_costs", "pad_samples"]


def _mot_prompt_key(variant: str) -> str:
    """``greedy_cot1`` and ``cot1_40`` use the ``cot1`` prompt (as the MoT adapter reads)."""
    return variant.removeprefix("greedy_").removesuffix("_40")


def mot_per_call_costs(dataset: Dataset) -> Dataset:
    """The MoT recordings with every call paying its whole few-shot prompt.

    The adapter spreads a question's prompt over the samples of one file (the repo's cost
    model: one API call with ``n`` samples), so one of a model's 20 samples carries 1/20 of
    the prompt. ACAR makes each probe and each escalation its own request, so here every
    sample's ``input_tokens`` is the whole prompt plus the question (the adapter's own
    estimates, :data:`~orch_reproductions.adapters.mot.PROMPT_TOKENS`); output tokens are kept.
    """
    kind = dataset.name.removeprefix("mot-")
    if not dataset.name.startswith("mot-") or kind not in {k for k, _ in PROMPT_TOKENS}:
        raise ValueError(f"dataset {dataset.name!r} is not a MoT dataset (mot-date, mot-gsm8k)")
    tasks = []
    for t in dataset.tasks:
        responses: dict[str, list[Sample]] = {}
        for model, samples in t.responses.items():
            variant = model.partition("[")[2].removesuffix("]")
            prompt = PROMPT_TOKENS.get((kind, _mot_prompt_key(variant)), 0) + len(t.question) // 4
            responses[model] = [s.model_copy(update={"input_tokens": prompt}) for s in samples]
        tasks.append(t.model_copy(update={"responses": responses}))
    return dataset.model_copy(update={"tasks": tasks})


def pad_samples(dataset: Dataset, model: str, n: int) -> Dataset:
    """Give ``model`` at least ``n`` samples on every task it answered: each missing one is
    a failed call (no answer, score 0, the tokens of the last recorded sample).

    Some sources drop the samples whose program failed; the recorded client would then
    serve the same sample twice and the probes would look like they agree. The tasks padded
    are listed in ``meta["padded"]`` (model -> samples added).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    tasks = []
    for t in dataset.tasks:
        samples = t.responses.get(model)
        if not samples or len(samples) >= n:
            tasks.append(t)
            continue
        last = samples[-1]
        failed = Sample(
            answer=None,
            score=0.0,
            input_tokens=last.input_tokens,
            output_tokens=last.output_tokens,
            cost_usd=last.cost_usd,
        )
        added = n - len(samples)
        meta = t.meta | {"padded": dict(t.meta.get("padded", {})) | {model: added}}
        responses = t.responses | {model: [*samples, *([failed] * added)]}
        tasks.append(t.model_copy(update={"responses": responses, "meta": meta}))
    return dataset.model_copy(update={"tasks": tasks})


def covering(dataset: Dataset, models: Sequence[str]) -> Dataset:
    """The tasks on which every one of ``models`` has a recorded sample."""
    return dataset.model_copy(
        update={"tasks": [t for t in dataset.tasks if all(t.responses.get(m) for m in models)]}
    )
