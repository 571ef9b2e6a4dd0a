"""ORCH: many analyses, one merge, with an EMA router learning which models to trust.

Over the 30 recorded MMLU-Pro questions of the quickstart: the EMA router ranks three models
(two recorded, one simulated) by panel score and takes the top k = 2 as the panel (the
paper's variant; with three models, k = 3 would always take all of them); the top one splits
the question into three sub-questions (or the fixed fallbacks when its reply has none), each
panel member analyses one within 500 characters, and the top one merges the analyses into a
single option letter (``?`` when unreadable). After every 5 questions, the feedback (gold
labels, the recorded costs, and the latencies from the runs' event logs) is applied by a
recorded ``ema-feedback`` step, producing the next state version.

Recorded models answer any prompt that contains a question with their one recorded response,
so offline the dispatcher's reply is rarely three sub-questions (the fixed fallbacks are used,
and the output says so) and each analysis is the model's recorded answer; with live models
every stage gets its own reply. Run::

    python examples/orch_panel.py
    orch state <state version>     # the EMA history
    orch replay <run id>
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from quickstart import MODELS, REGISTRY, items

import orch
from agents.models import ModelHub, ModelRegistry
from orch import PipelineBuilder
from routers import EMAState, Observation, ema_feedback, orch_merge, save_state
from routers import orch_observations as observations

BATCH = 5
CONFIG = {"agents": list(MODELS), "k": 2, "letters": "ABCDEFGHIJ"}


def services() -> dict[str, Any]:
    return {"models": ModelHub(ModelRegistry.from_dict(REGISTRY))}


def build_serving() -> orch.Pipeline:
    p = PipelineBuilder("orch-panel")
    merged = p.node(
        "panel",
        orch_merge.with_config(**CONFIG),
        question=p.input("question", str),
        state=p.input("state", str),
    )
    p.output("answer", merged)
    return p.build()


def build_feedback() -> orch.Pipeline:
    p = PipelineBuilder("orch-ema-feedback")
    fed = p.node(
        "feedback",
        ema_feedback,
        state=p.input("state", str),
        observations=p.input("observations", list[Observation]),
    )
    p.output("state", fed)
    return p.build()


pipeline = build_serving()
feedback = build_feedback()


def main() -> int:
    from rich.console import Console

    from traces import load_run_view, open_store

    console = Console(soft_wrap=True)
    here = Path(__file__).resolve()
    svc = services()
    pending: list[Observation] = []
    correct = 0
    cost = 0.0
    with open_store() as store:
        version = save_state(store, EMAState())
        for item in items():
            result = orch.run(
                pipeline,
                {"question": item["question"], "state": version},
                store=store,
                services=svc,
                origin={"pipeline": f"{here}:pipeline"},
            )
            result.raise_for_status()
            out = result.outputs["answer"]
            correct += out.answer == item["answer"]
            cost += out.cost_usd
            view = load_run_view(store, result.run_id)
            console.print(
                f"{item['id']:<28} panel {out.panel} ({out.decomposition} sub-questions) "
                f"tentative {[a.tentative for a in out.analyses]} -> {out.answer} "
                f"(gold {item['answer']})"
            )
            # Latency per model: the mean of this run's recorded effect latencies.
            latency = {m: sum(v) / len(v) for m, v in view.effect_latencies().items() if v}
            pending += observations(out, item["answer"], latency_ms=latency)
            if len(pending) >= BATCH * 3:
                fed = orch.run(
                    feedback,
                    {"state": version, "observations": [o.model_dump() for o in pending]},
                    store=store,
                    origin={"pipeline": f"{here}:feedback"},
                )
                fed.raise_for_status()
                version = fed.outputs["state"].version
                pending = []
                console.print(f"[bold]feedback applied -> EMA state {version[:19]}[/]")
    n = len(items())
    console.print(
        f"accuracy {correct}/{n} = {correct / n:.3f}; cost ${cost:.4f}\n"
        f"EMA history: orch state {version}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
