"""Adapter of ``routerarena_sub10_2model/``: RouterArena's ``sub_10`` split, 809 queries
answered by claude-3-haiku and gemini-2.0-flash, graded, with token counts and USD cost.

Dataset ``routerarena``: one task per ``global_index`` (the task id), ``group`` its
sub-dataset prefix (``GSM8K_12`` -> ``GSM8K``, ``MMLUPro_law_123`` -> ``MMLUPro_law``; 78
groups), ``gold`` the ``ground_truth``. Each model (one ``*.jsonl`` file, named by its
``llm_selected``) has one sample: ``text`` the ``generated_answer``, ``answer`` the
``extracted_answer``, ``score`` the graded score (1/0, fractional for METEOR-scored
translation), tokens from ``token_usage`` and ``cost_usd`` the ``inference_cost``. ``meta``
keeps the grading ``metric`` (``mcq_accuracy`` for the 565 multiple-choice items). ``prices``
come from ``model_cost.json`` for the models it lists. A score outside [0, 1] (one METEOR
score of claude-3-haiku, -0.033, on ``NarrativeQA_4102``) is clamped, and the source's value
kept in ``meta["raw_scores"][model]``.

The source has no split: tasks are split by a hash of their id
(:func:`~routers.eval.split_of`, 30% train / 70% test), so the split is
the same on every machine and never moves when tasks are added.

License: Apache-2.0 (RouterArena repo; the underlying benchmark items keep their own), so
``copyable`` is True: small cuts may ship in a project with the license and source named.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from routers.eval import (
    TRAIN_FRACTION,
    Dataset,
    DatasetError,
    DataUnavailable,
    Price,
    Sample,
    Task,
    adapter,
    split_of,
)

__all__ = ["LICENSE", "SOURCE", "TRAIN_SHARE", "group_of", "read_prices", "routerarena"]

SOURCE: Final = (
    "RouterArena sub_10 cached results (Lu et al. 2025, arXiv 2510.00202; "
    "github.com/RouteWorks/RouterArena @ 4714a9ad, cached_results/, model_cost/cost.json)"
)
LICENSE: Final = "Apache-2.0 (RouterArena); benchmark items keep their own licenses"
TRAIN_SHARE: Final = TRAIN_FRACTION
PRICES_FILE: Final = "model_cost.json"
_FIX: Final = "fix: restore the file from the RouterArena snapshot (commit 4714a9ad)"


def group_of(global_index: str) -> str:
    """The sub-dataset of a RouterArena id: everything before the last ``_``."""
    head, sep, _ = global_index.rpartition("_")
    return head if sep else global_index


def read_prices(path: Path, models: list[str]) -> dict[str, Price]:
    """The $/1M-token prices of ``models`` that ``path`` (RouterArena's cost table) lists."""
    if not path.is_file():
        return {}
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
        return {
            m: Price(
                input_per_mtok=float(table[m]["input_token_price_per_million"]),
                output_per_mtok=float(table[m]["output_token_price_per_million"]),
            )
            for m in models
            if m in table
        }
    except (ValueError, TypeError, KeyError) as exc:
        raise DatasetError(f"{path} is not RouterArena's price table ({exc}); {_FIX}") from None


def _record(path: Path, line: int, text: str) -> dict[str, Any]:
    try:
        rec = json.loads(text)
    except ValueError as exc:
        raise DatasetError(f"{path} line {line} is not JSON ({exc}); {_FIX}") from None
    if not isinstance(rec, dict) or not isinstance(rec.get("global_index"), str):
        raise DatasetError(f"{path} line {line} has no global_index; {_FIX}")
    return rec


def _score(value: Any, path: Path, line: int) -> tuple[float | None, float | None]:
    """The score clamped into [0, 1], and the source's value when it had to be clamped (one
    METEOR score in the snapshot is -0.033)."""
    if value is None:
        return None, None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DatasetError(f"{path} line {line}: score {value!r} is not a number; {_FIX}")
    score = min(1.0, max(0.0, float(value)))
    return score, (None if score == value else float(value))


def _sample(rec: dict[str, Any], score: float | None, path: Path, line: int) -> Sample:
    ev = rec.get("evaluation_result") or {}
    usage = rec.get("token_usage") or {}
    try:
        return Sample(
            text=rec.get("generated_answer") or "",
            answer=ev.get("extracted_answer"),
            score=score,
            input_tokens=usage.get("input_tokens"),
            output_tokens=usage.get("output_tokens"),
            cost_usd=ev.get("inference_cost"),
        )
    except ValueError as exc:
        raise DatasetError(f"{path} line {line} has a malformed result ({exc}); {_FIX}") from None


@adapter("routerarena", "routerarena_sub10_2model")
def routerarena(folder: Path) -> Dataset:
    """Dataset ``routerarena`` (809 queries, 2 models) from ``folder``."""
    files = sorted(folder.glob("*.jsonl"))
    if not files:
        raise DataUnavailable(
            f"{folder} has no RouterArena *.jsonl results; fix: copy cached_results/*.jsonl "
            "of RouteWorks/RouterArena (commit 4714a9ad) into it"
        )
    questions: dict[str, str] = {}
    golds: dict[str, str | None] = {}
    metrics: dict[str, str | None] = {}
    responses: dict[str, dict[str, list[Sample]]] = {}
    raw_scores: dict[str, dict[str, float]] = {}
    for path in files:
        with path.open(encoding="utf-8") as fh:
            for line, text in enumerate(fh, 1):
                if not text.strip():
                    continue
                rec = _record(path, line, text)
                model = str(rec.get("llm_selected") or path.stem)
                tid: str = rec["global_index"]
                ev = rec.get("evaluation_result") or {}
                gold = ev.get("ground_truth")
                gold = None if gold is None else str(gold)
                question = rec.get("question") or ""
                if tid not in questions:
                    questions[tid], golds[tid], metrics[tid] = question, gold, ev.get("metric")
                    responses[tid] = {}
                elif questions[tid] != question or (gold is not None and golds[tid] != gold):
                    raise DatasetError(
                        f"{path} line {line}: {tid} has another question or ground_truth than "
                        f"in the other files; {_FIX}"
                    )
                if model in responses[tid]:
                    raise DatasetError(f"{path} line {line}: {tid} appears twice; {_FIX}")
                score, raw = _score(ev.get("score"), path, line)
                if raw is not None:
                    raw_scores.setdefault(tid, {})[model] = raw
                responses[tid][model] = [_sample(rec, score, path, line)]
    tasks = [
        Task(
            id=tid,
            question=question,
            gold=golds[tid],
            split=split_of(tid, TRAIN_SHARE),
            group=group_of(tid),
            responses=responses[tid],
            meta={"metric": metrics[tid]}
            | ({"raw_scores": raw_scores[tid]} if tid in raw_scores else {}),
        )
        for tid, question in questions.items()
    ]
    models = sorted({m for r in responses.values() for m in r})
    return Dataset(
        name="routerarena",
        source=SOURCE,
        license=LICENSE,
        copyable=True,
        prices=read_prices(folder / PRICES_FILE, models),
        tasks=tasks,
    )
