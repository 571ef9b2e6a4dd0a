"""Adapters for the GSM8K join and the RouteLLM labels: ``gsm8k-joined``, ``routellm-gsm8k``,
``routellm-mmlu``.

``gsm8k-joined`` reads ``gsm8k_joined/gsm8k_test_joined.jsonl``: the 1319 GSM8K test questions
with the recorded outcomes of 12 model configurations joined by qid (derived by us from the
MoT-cascade, RouteLLM and RouterDC folders; only RouteLLM states a license, so the join is
read at run time only). Model ids are the file's (``gpt-4[cot1,mot]``,
``MetaMath-Mistral-7B[routerdc]``...). A model recorded as k correct of n becomes n samples,
k scored 1.0 and n-k 0.0. When the answers are recorded (the MoT models) each sample carries
its answer and the correct ones are those equal to the gold; when the gold disagrees with the
source's k (qid 1309, where MoT's gold is 2180 and GSM8K's 2280) the answer recorded exactly
k times is the correct one. Without answers the k correct samples are placed by a
permutation seeded by a hash of task and model, so that "the first m samples" is not biased
and every run places them alike. A model with n = 0 (no extractable answer) gets one sample
with no answer scored 0.0 and is listed in ``meta["no_answer"]``; llama-2-13b is recorded
for qid 0-399 only. Tokens are estimates: the question at ~4 characters per token in, 200
tokens out per sample (the folder README's figure for a GSM8K chain of thought).

``routellm-gsm8k`` and ``routellm-mmlu`` read ``routellm_mmlu_gsm8k_2model/`` (lm-sys/RouteLLM
@ 0b64fdaf, Apache-2.0, so ``copyable``): GPT-4-1106-preview and Mixtral-8x7B-Instruct, one
sample each, scored 1.0/0.0 from the True/False columns as RouteLLM graded them. GSM8K keeps
the response texts (``answer`` is None: RouteLLM records no extracted answer) with the gold
from ``gsm8k_test_gold.jsonl`` (the number after ``####``), and token counts estimated at ~4
characters per token of the prompt and of the response. MMLU has correctness only: no gold
letter and no response, ``group`` = the subject, ``options`` A-D, input tokens estimated from
the prompt and output tokens unknown (None).

Prices (USD per million tokens in/out): gpt-4 $30/$60 (MoT's), gpt-4-1106-preview $10/$30
(OpenAI's list price); *our choice* for open models: llama-2-13b $0.20/$0.20 (as in
:mod:`orch_reproductions.adapters.mot`), Mixtral-8x7B $0.60/$0.60, the 7-8B RouterDC models
$0.10/$0.10.

Task ids are ``gsm8k-<qid>`` in both GSM8K datasets (the same question has the same id, and so
the same split, in ``mot-gsm8k`` too) and ``mmlu-<subject>-<row>``; the split is
:func:`~routers.eval.split_of` (30% train, 70% test).
"""

from __future__ import annotations

import contextlib
import csv
import json
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any, Final

from routers.eval import Dataset, DatasetError, Price, Sample, Task, adapter, split_of, unit_hash

from .mot import canonical_number

__all__ = ["JOINED_OUTPUT_TOKENS", "PRICES", "load_joined", "load_routellm_gsm8k"]

JOINED_FILE: Final = "gsm8k_test_joined.jsonl"
JOINED_SOURCE: Final = (
    "gsm8k_joined (derived by us): MurongYue/LLM_MoT_cascade @ 8db97e65, "
    "lm-sys/RouteLLM @ 0b64fdaf, shuhao02/RouterDC @ 0e63989c"
)
JOINED_LICENSE: Final = (
    "per source: RouteLLM Apache-2.0; MoT-cascade and RouterDC none stated; "
    "internal evaluation only, read at run time"
)
ROUTELLM_SOURCE: Final = (
    "lm-sys/RouteLLM @ 0b64fdafe049e596a3f5657c219329f24af24198 (routellm/evals); "
    "GSM8K (OpenAI, MIT)"
)
ROUTELLM_LICENSE: Final = "Apache-2.0 (RouteLLM); GSM8K MIT; outputs of GPT-4 and Mixtral"
JOINED_OUTPUT_TOKENS: Final = 200
"""Estimated output tokens of one GSM8K sample in ``gsm8k-joined``."""

GPT4 = "gpt-4-1106-preview"
MIXTRAL = "mixtral-8x7b-instruct"
_COLUMNS: Final = {GPT4: "gpt-4-1106-preview", MIXTRAL: "mistralai/Mixtral-8x7B-Instruct-v0.1"}

PRICES: Final = {
    "gpt-4": Price(input_per_mtok=30.0, output_per_mtok=60.0),
    "llama-2-13b": Price(input_per_mtok=0.2, output_per_mtok=0.2),
    GPT4: Price(input_per_mtok=10.0, output_per_mtok=30.0),
    MIXTRAL: Price(input_per_mtok=0.6, output_per_mtok=0.6),
    "routerdc": Price(input_per_mtok=0.1, output_per_mtok=0.1),
}
"""USD per million tokens, by base model (``routerdc``: every 7-8B RouterDC model)."""


def _price(model_id: str) -> Price | None:
    base, _, tags = model_id.partition("[")
    if "routerdc" in tags:
        return PRICES["routerdc"]
    return PRICES.get(base)


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _read_jsonl(path: Path, fix: str) -> list[dict[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror}; fix: {fix}") from None
    rows = []
    for n, line in enumerate(lines, 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise DatasetError(f"{path}:{n} is not JSON ({exc}); fix: {fix}") from None
    return rows


def _read_csv(path: Path, fix: str) -> list[dict[str, str]]:
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh))
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror}; fix: {fix}") from None


def _scores(
    task_id: str, model: str, n: int, k: int, answers: list[str | None] | None, gold: str | None
) -> list[float]:
    """Per-sample scores for k correct of n (see the module docstring)."""
    if answers is not None:
        hits = [a is not None and a == gold for a in answers]
        if sum(hits) != k:
            counts = Counter(a for a in answers if a is not None)
            exact = [a for a, c in counts.items() if c == k]
            if len(exact) == 1:
                hits = [a == exact[0] for a in answers]
        if sum(hits) == k:
            return [1.0 if h else 0.0 for h in hits]
    order = list(range(n))
    random.Random(unit_hash(f"{task_id}|{model}")).shuffle(order)
    correct = set(order[:k])
    return [1.0 if i in correct else 0.0 for i in range(n)]


def load_joined(folder: Path) -> Dataset:
    """Dataset ``gsm8k-joined`` from ``folder/gsm8k_test_joined.jsonl``."""
    path = folder / JOINED_FILE
    fix = "restore gsm8k_joined/ from the shared data (see its README)"
    tasks: list[Task] = []
    models: set[str] = set()
    for n_line, row in enumerate(_read_jsonl(path, fix), 1):
        try:
            qid, question = int(row["qid"]), str(row["question"])
            gold = canonical_number(row["gold"])
            recorded: dict[str, dict[str, Any]] = row["models"]
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(
                f"{path}:{n_line}: missing or bad field {exc}; fix: each line needs qid, "
                f"question, gold and models ({fix})"
            ) from None
        tid = f"gsm8k-{qid}"
        inp = _tokens(question)
        responses: dict[str, list[Sample]] = {}
        no_answer: list[str] = []
        for model, rec in sorted(recorded.items()):
            n, k = int(rec["n"]), int(rec["k"])
            if not 0 <= k <= n:
                raise DatasetError(f"{path}:{n_line}: {model} has k={k} of n={n}; fix: {fix}")
            raw = rec.get("answers")
            answers = None if raw is None else [canonical_number(a) for a in raw]
            if answers is not None and len(answers) != n:
                raise DatasetError(
                    f"{path}:{n_line}: {model} has {len(answers)} answers for n={n}; fix: {fix}"
                )
            if n == 0:
                no_answer.append(model)
                samples = [
                    Sample(
                        answer=None, score=0.0, input_tokens=inp, output_tokens=JOINED_OUTPUT_TOKENS
                    )
                ]
            else:
                scores = _scores(tid, model, n, k, answers, gold)
                samples = [
                    Sample(
                        answer=None if answers is None else answers[i],
                        score=scores[i],
                        input_tokens=inp,
                        output_tokens=JOINED_OUTPUT_TOKENS,
                    )
                    for i in range(n)
                ]
            responses[model] = samples
            models.add(model)
        meta: dict[str, Any] = {"qid": qid}
        if no_answer:
            meta["no_answer"] = no_answer
        tasks.append(
            Task(
                id=tid,
                question=question,
                gold=gold,
                split=split_of(tid),
                group="gsm8k",
                responses=responses,
                meta=meta,
            )
        )
    if not tasks:
        raise DatasetError(f"{path} has no questions; fix: {fix}")
    prices = {m: p for m in sorted(models) if (p := _price(m)) is not None}
    return Dataset(
        name="gsm8k-joined",
        source=JOINED_SOURCE,
        license=JOINED_LICENSE,
        copyable=False,
        prices=prices,
        tasks=tasks,
    )


def _flag(value: str | None, where: str, fix: str) -> float:
    if value == "True":
        return 1.0
    if value == "False":
        return 0.0
    raise DatasetError(f"{where}: correctness {value!r} is not True/False; fix: {fix}")


_GOLD = re.compile(r"####\s*(.+?)\s*$")


def load_routellm_gsm8k(folder: Path) -> Dataset:
    """Dataset ``routellm-gsm8k`` from ``gsm8k_responses.csv`` and ``gsm8k_test_gold.jsonl``."""
    fix = "restore routellm_mmlu_gsm8k_2model/ from the shared data (see its README)"
    rows = _read_csv(folder / "gsm8k_responses.csv", fix)
    gold_rows = _read_jsonl(folder / "gsm8k_test_gold.jsonl", fix)
    if len(rows) != len(gold_rows):
        raise DatasetError(
            f"{folder}: gsm8k_responses.csv has {len(rows)} rows but gsm8k_test_gold.jsonl "
            f"{len(gold_rows)}; fix: {fix}"
        )
    tasks = []
    for qid, (row, g) in enumerate(zip(rows, gold_rows, strict=True)):
        where = f"{folder / 'gsm8k_responses.csv'} row {qid + 2}"
        question = row.get("prompt", "")
        if question != g.get("question"):
            raise DatasetError(
                f"{where}: the prompt is not question {qid} of gsm8k_test_gold.jsonl; fix: the "
                f"two files must list the GSM8K test set in the same order ({fix})"
            )
        m = _GOLD.search(str(g.get("answer", "")))
        gold = m.group(1).replace(",", "") if m else None
        if gold is not None:
            with contextlib.suppress(ValueError):  # a non-numeric gold stays as written
                gold = canonical_number(float(gold))
        responses = {}
        for model, column in sorted(_COLUMNS.items()):
            text = row.get(f"{column}_response") or ""
            responses[model] = [
                Sample(
                    text=text,
                    score=_flag(row.get(column), where, fix),
                    input_tokens=_tokens(question),
                    output_tokens=_tokens(text) if text else 0,
                )
            ]
        tid = f"gsm8k-{qid}"
        tasks.append(
            Task(
                id=tid,
                question=question,
                gold=gold,
                split=split_of(tid),
                group="gsm8k",
                responses=responses,
                meta={"qid": qid},
            )
        )
    return Dataset(
        name="routellm-gsm8k",
        source=ROUTELLM_SOURCE,
        license=ROUTELLM_LICENSE,
        copyable=True,
        prices={m: PRICES[m] for m in sorted(_COLUMNS)},
        tasks=tasks,
    )


def load_routellm_mmlu(folder: Path) -> Dataset:
    """Dataset ``routellm-mmlu`` from ``mmlu_responses/mmlu_<subject>.csv`` (57 files)."""
    fix = "restore routellm_mmlu_gsm8k_2model/mmlu_responses/ from the shared data"
    files = sorted((folder / "mmlu_responses").glob("mmlu_*.csv"))
    if not files:
        raise DatasetError(f"{folder / 'mmlu_responses'} has no mmlu_*.csv files; fix: {fix}")
    tasks = []
    for path in files:
        subject = path.stem.removeprefix("mmlu_")
        for i, row in enumerate(_read_csv(path, fix)):
            where = f"{path} row {i + 2}"
            question = row.get("prompt", "")
            tid = f"mmlu-{subject}-{i}"
            responses = {
                model: [
                    Sample(score=_flag(row.get(column), where, fix), input_tokens=_tokens(question))
                ]
                for model, column in sorted(_COLUMNS.items())
            }
            tasks.append(
                Task(
                    id=tid,
                    question=question,
                    split=split_of(tid),
                    group=subject,
                    options=["A", "B", "C", "D"],
                    responses=responses,
                )
            )
    return Dataset(
        name="routellm-mmlu",
        source=ROUTELLM_SOURCE.replace("; GSM8K (OpenAI, MIT)", "; MMLU (Hendrycks et al., MIT)"),
        license="Apache-2.0 (RouteLLM); MMLU MIT; correctness of GPT-4 and Mixtral outputs",
        copyable=True,
        prices={m: PRICES[m] for m in sorted(_COLUMNS)},
        tasks=tasks,
    )


@adapter("gsm8k-joined", "gsm8k_joined")
def gsm8k_joined(folder: Path) -> Dataset:
    return load_joined(folder)


@adapter("routellm-gsm8k", "routellm_mmlu_gsm8k_2model")
def routellm_gsm8k(folder: Path) -> Dataset:
    return load_routellm_gsm8k(folder)


@adapter("routellm-mmlu", "routellm_mmlu_gsm8k_2model")
def routellm_mmlu(folder: Path) -> Dataset:
    return load_routellm_mmlu(folder)
