"""Adapters for the MoT-cascade recordings: datasets ``mot-date`` and ``mot-gsm8k``.

Source: MurongYue/LLM_MoT_cascade @ 8db97e65 (Yue et al., ICLR 2024), folder
``mot_cascade_date_gsm8k/`` of the shared data; the repository states no license, so the data
is read at run time only and never copied (``copyable`` is False). The adapters read the
folder's derived ``mot_samples_compact.jsonl`` (one line per task x model x variant x
question); the full texts in ``raw/`` are not loaded, so every sample's ``text`` is ''.

One task per question (``date-17``, ``gsm8k-17``: the qid is the question's index, the same
in every source that lists the GSM8K test set), ``group`` = the task (``date``/``gsm8k``).
Each model *and prompt variant* is its own model id, ``gpt-3.5-turbo[cot1]``,
``gpt-4[greedy_pot2]``, ``llama-2-13b[pot1]``, ``gpt-3.5-turbo[cot1_40]`` (40 samples).
A sample is one recorded extracted answer: ``answer`` is the normalised answer (DATE
``MM/DD/YYYY``; GSM8K the number with no trailing ``.0``, e.g. ``18`` or ``2.5``; the few
non-numeric GSM8K answers as recorded; None when extraction failed) and ``score`` is 1.0/0.0
from the file's ``correct``.

Data quirks kept as recorded:

* Some files drop the samples whose program failed (llama-2-13b PoT keeps 2-20 of its 20
  samples; gpt-4 GSM8K PoT 0-3 of 3), while others keep them as None answers. We keep the
  recorded list as is: the repo's own consistency rule divides by ``len(results)`` too.
* When a question has *no* recorded answer for a model (29 lines), the model still made the
  call and got nothing usable, so it gets one sample with ``answer`` None and ``score`` 0.0,
  and the task's ``meta["no_answer"]`` lists those model ids. (``summary.tsv`` leaves such
  questions out of its means; the tests reproduce it that way.)
* The gold is MoT's, which fixes at least one GSM8K label (qid 1309: MoT 2180, GSM8K 2280).

Cost. No token counts are stored, so tokens are *estimates*, fixed per file so runs are
deterministic: ``output_tokens`` per sample is the mean length of that file's ``generated``
texts in ``raw/`` at ~4 characters per token (:data:`OUTPUT_TOKENS`, measured once by us);
``input_tokens`` follows the repo's cost model (``Evaluation/utils.py``: the few-shot prompt
counted once per question and file, plus the joined outputs), so the few-shot prompt
(:data:`PROMPT_TOKENS`, from the length of the repo's ``Evaluation/prompting/*.py``) plus
the question (~4 characters per token) is spread evenly over the question's samples. Summed
over a question's samples, cost is then the repo's per-question cost. ``prices`` are the
repo's (gpt-3.5-turbo $1.5/$2 per million tokens in/out, gpt-4 $30/$60); llama-2-13b is
$0.20/$0.20, *our choice* (roughly what hosts charged for a 13B open model in 2024).

Split: :func:`~routers.eval.split_of` on the task id (30% train, 70% test).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from routers.eval import Dataset, DatasetError, Price, Sample, Task, adapter, split_of

__all__ = [
    "FILE",
    "LICENSE",
    "OUTPUT_TOKENS",
    "PRICES",
    "PROMPT_TOKENS",
    "SOURCE",
    "canonical_number",
    "load_mot",
]

FILE: Final = "mot_samples_compact.jsonl"
SOURCE: Final = (
    "MurongYue/LLM_MoT_cascade @ 8db97e652d196ce6380927c3b4df8af6d6c09746 "
    "(Yue et al. 2024, arXiv 2310.03094); mot_samples_compact.jsonl derived from its results"
)
LICENSE: Final = "none stated (all rights reserved); internal evaluation only, read at run time"

PRICES: Final = {
    "gpt-3.5-turbo": Price(input_per_mtok=1.5, output_per_mtok=2.0),
    "gpt-4": Price(input_per_mtok=30.0, output_per_mtok=60.0),
    "llama-2-13b": Price(input_per_mtok=0.2, output_per_mtok=0.2),  # our choice
}
"""USD per million tokens per base model: the repo's prices, llama-2-13b our choice."""

PROMPT_TOKENS: Final = {
    ("date", "cot1"): 420,
    ("date", "cot2"): 430,
    ("date", "pot1"): 700,
    ("date", "pot2"): 630,
    ("gsm8k", "cot1"): 1100,
    ("gsm8k", "cot2"): 1100,
    ("gsm8k", "pot1"): 1100,
    ("gsm8k", "pot2"): 1100,
}
"""Estimated tokens of the repo's few-shot prompts (characters / 4), per task and prompt."""

OUTPUT_TOKENS: Final = {
    ("date", "gpt-3.5-turbo", "cot1"): 37,
    ("date", "gpt-3.5-turbo", "cot1_40"): 37,
    ("date", "gpt-3.5-turbo", "cot2"): 38,
    ("date", "gpt-3.5-turbo", "pot1"): 59,
    ("date", "gpt-3.5-turbo", "pot2"): 65,
    ("date", "gpt-4", "cot1"): 40,
    ("date", "gpt-4", "cot2"): 41,
    ("date", "gpt-4", "greedy_cot1"): 39,
    ("date", "gpt-4", "greedy_cot2"): 41,
    ("date", "gpt-4", "greedy_pot1"): 67,
    ("date", "gpt-4", "greedy_pot2"): 68,
    ("date", "gpt-4", "pot1"): 66,
    ("date", "gpt-4", "pot2"): 67,
    ("date", "llama-2-13b", "cot1"): 40,
    ("date", "llama-2-13b", "cot2"): 37,
    ("date", "llama-2-13b", "pot1"): 58,
    ("date", "llama-2-13b", "pot2"): 61,
    ("gsm8k", "gpt-4", "cot1"): 92,
    ("gsm8k", "gpt-4", "cot2"): 74,
    ("gsm8k", "gpt-4", "pot1"): 61,
    ("gsm8k", "gpt-4", "pot2"): 66,
    ("gsm8k", "llama-2-13b", "pot1"): 62,
    ("gsm8k", "llama-2-13b", "pot2"): 62,
}
"""Mean tokens of one sampled completion (characters / 4), per task, model and variant."""

_DEFAULT_OUTPUT = {"date": 50, "gsm8k": 80}


def canonical_number(value: Any) -> str | None:
    """A recorded numeric answer as a string: ``18.0`` -> ``'18'``, ``2.5`` -> ``'2.5'``
    (rounded to 6 decimals); strings are kept as recorded, None stays None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    x = round(float(value), 6)
    if x.is_integer():
        return str(int(x))
    return f"{x:.6f}".rstrip("0").rstrip(".")


def _prompt_key(variant: str) -> str:
    """``greedy_cot1`` and ``cot1_40`` use the ``cot1`` prompt."""
    return variant.removeprefix("greedy_").removesuffix("_40")


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    try:
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError as exc:
                        raise DatasetError(
                            f"{path}:{n} is not JSON ({exc}); fix: restore the file from the "
                            "shared data (mot_cascade_date_gsm8k/README.md)"
                        ) from None
    except OSError as exc:
        raise DatasetError(
            f"cannot read {path}: {exc.strerror}; fix: restore mot_cascade_date_gsm8k/{FILE}"
        ) from None


def load_mot(folder: Path, task: str) -> Dataset:
    """Dataset ``mot-<task>`` (``date`` or ``gsm8k``) from ``folder/mot_samples_compact.jsonl``."""
    path = folder / FILE
    questions: dict[int, tuple[str, Any]] = {}
    responses: dict[int, dict[str, list[Sample]]] = {}
    no_answer: dict[int, list[str]] = {}
    numeric = task == "gsm8k"
    for n, row in enumerate(_lines(path), 1):
        if row.get("task") != task:
            continue
        try:
            qid = int(row["qid"])
            model, variant = str(row["model"]), str(row["variant"])
            answers: list[Any] = row["answers"]
            correct: list[bool] = row["correct"]
            question, gold = str(row["question"]), row["gold"]
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(
                f"{path}:{n}: missing or bad field {exc}; fix: the file must have task, model, "
                "variant, qid, question, gold, answers, correct (see its README)"
            ) from None
        if len(answers) != len(correct):
            raise DatasetError(
                f"{path}:{n}: {len(answers)} answers but {len(correct)} correct flags; fix: "
                "restore the file from the shared data"
            )
        questions.setdefault(qid, (question, gold))
        mid = f"{model}[{variant}]"
        if not answers:
            answers, correct = [None], [False]
            no_answer.setdefault(qid, []).append(mid)
        out = OUTPUT_TOKENS.get((task, model, variant), _DEFAULT_OUTPUT[task])
        prompt = PROMPT_TOKENS.get((task, _prompt_key(variant)), 0) + len(question) // 4
        inp = max(1, round(prompt / len(answers)))
        responses.setdefault(qid, {})[mid] = [
            Sample(
                answer=canonical_number(a) if numeric else (None if a is None else str(a)),
                score=1.0 if c else 0.0,
                input_tokens=inp,
                output_tokens=out,
            )
            for a, c in zip(answers, correct, strict=True)
        ]
    if not questions:
        raise DatasetError(
            f"{path} has no {task!r} lines; fix: restore mot_cascade_date_gsm8k/{FILE}"
        )
    tasks = []
    for qid in sorted(questions):
        question, gold = questions[qid]
        tid = f"{task}-{qid}"
        meta: dict[str, Any] = {"qid": qid}
        if qid in no_answer:
            meta["no_answer"] = sorted(no_answer[qid])
        tasks.append(
            Task(
                id=tid,
                question=question,
                gold=canonical_number(gold) if numeric else str(gold),
                split=split_of(tid),
                group=task,
                responses=dict(sorted(responses[qid].items())),
                meta=meta,
            )
        )
    model_ids = sorted({m for r in responses.values() for m in r})
    return Dataset(
        name=f"mot-{task}",
        source=SOURCE,
        license=LICENSE,
        copyable=False,
        prices={m: PRICES[m.split("[", 1)[0]] for m in model_ids if m.split("[", 1)[0] in PRICES},
        tasks=tasks,
    )


@adapter("mot-date", "mot_cascade_date_gsm8k")
def mot_date(folder: Path) -> Dataset:
    """BBH date understanding, 369 questions: gpt-3.5-turbo, gpt-4, llama-2-13b."""
    return load_mot(folder, "date")


@adapter("mot-gsm8k", "mot_cascade_date_gsm8k")
def mot_gsm8k(folder: Path) -> Dataset:
    """GSM8K test, 1319 questions (gpt-4), first 400 (llama-2-13b)."""
    return load_mot(folder, "gsm8k")
