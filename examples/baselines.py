"""The baselines side by side on the 30 recorded MMLU-Pro questions of the quickstart.

Single models, a seeded random router, a majority vote (fixed tie order), a cascade (the
simulated model sampled 3 times, escalating to gemini unless all agree), a kNN router and the
oracle, each run through the engine with its decisions recorded. The kNN index is built from
the first 15 questions (each recorded model's correctness and recorded cost) and saved as a
versioned router state; every router is then scored on the other 15, which the index never
saw. Run::

    python examples/baselines.py
    orch show <run id>   /   orch replay <run id>
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from quickstart import REGISTRY, items

import orch
from agents.models import ModelHub, ModelRegistry
from orch import PipelineBuilder
from routers import (
    KNNExample,
    build_knn_index,
    cascade,
    knn_router,
    majority_vote,
    option_letter,
    oracle,
    random_router,
    save_state,
    single,
)

RECORDED = {"haiku": "claude-3-haiku-20240307", "gemini": "gemini-2.0-flash-001"}
TRAIN = 15


def services() -> dict[str, Any]:
    return {"models": ModelHub(ModelRegistry.from_dict(REGISTRY))}


def _pipeline(name: str, node_agent: Any, **inputs: Any) -> orch.Pipeline:
    p = PipelineBuilder(f"baseline-{name}")
    p.output("routed", p.node("route", node_agent, **{k: p.input(k, t) for k, t in inputs.items()}))
    return p.build()


# One module attribute per pipeline, so `orch replay RUN` can find each again.
haiku_alone = _pipeline("haiku", single.with_config(model="haiku"), question=str)
gemini_alone = _pipeline("gemini", single.with_config(model="gemini"), question=str)
sim_alone = _pipeline("sim", single.with_config(model="sim"), question=str)
random_choice = _pipeline(
    "random", random_router.with_config(models=["haiku", "gemini", "sim"]), question=str
)
majority = _pipeline(
    "majority", majority_vote.with_config(models=["gemini", "haiku", "sim"]), question=str
)
cascaded = _pipeline("cascade", cascade.with_config(weak="sim", strong="gemini"), question=str)
knn = _pipeline("knn", knn_router.with_config(k=5, lam=1.0), question=str, index=str)
oracle_choice = _pipeline(
    "oracle", oracle.with_config(models=["haiku", "gemini", "sim"]), question=str, gold=str
)
pipeline = majority
ROUTERS = {
    "haiku alone": "haiku_alone",
    "gemini alone": "gemini_alone",
    "sim alone": "sim_alone",
    "random": "random_choice",
    "majority vote": "majority",
    "cascade sim -> gemini": "cascaded",
    "kNN (λ = 1)": "knn",
    "oracle": "oracle_choice",
}


def knn_examples(train: list[dict[str, Any]]) -> list[KNNExample]:
    out = []
    for item in train:
        quality, cost = {}, {}
        for name, recorded in RECORDED.items():
            response = item["responses"][recorded][0]
            quality[name] = 1.0 if option_letter(response["text"]) == item["answer"] else 0.0
            cost[name] = float(response["cost_usd"])
        out.append(KNNExample(query=item["question"], quality=quality, cost_usd=cost))
    return out


def main() -> int:
    from rich.console import Console
    from rich.table import Table

    from traces import open_store

    here = Path(__file__).resolve()
    data = items()
    train, test = data[:TRAIN], data[TRAIN:]
    svc = services()
    table = Table(title=f"baselines on {len(test)} held-out questions (kNN trained on {TRAIN})")
    for col in ("router", "accuracy", "cost $", "models per question", "example run"):
        table.add_column(col)
    with open_store() as store:
        index = save_state(store, build_knn_index(knn_examples(train)))
        for name, attr in ROUTERS.items():
            pipe: orch.Pipeline = globals()[attr]
            correct = calls = 0
            cost = 0.0
            last = ""
            for k, item in enumerate(test):
                inputs: dict[str, Any] = {"question": item["question"]}
                if "index" in pipe.inputs:
                    inputs["index"] = index
                if "gold" in pipe.inputs:
                    inputs["gold"] = item["answer"]
                result = orch.run(
                    pipe,
                    inputs,
                    store=store,
                    seed=k,
                    services=svc,
                    origin={"pipeline": f"{here}:{attr}"},
                )
                result.raise_for_status()
                routed = result.outputs["routed"]
                correct += routed.answer == item["answer"]
                cost += routed.cost_usd
                calls += len(routed.models_invoked)
                last = result.run_id
            table.add_row(
                name,
                f"{correct / len(test):.3f}",
                f"{cost:.5f}",
                f"{calls / len(test):.2f}",
                last,
            )
    Console().print(table)
    Console().print(f"kNN index state: orch state {index}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
