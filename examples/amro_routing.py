"""AMRO-S ant-colony routing over 30 recorded MMLU-Pro questions, learning as it goes.

One layer of three model nodes (two recorded models and a simulated one, as in the
quickstart), so a route is a model choice. For each question the router infers task-type
weights (business or science) from a few labelled example queries, fuses the two pheromone
tables by them, and samples a model with P ∝ τ^α·η^β using the step's seeded RNG; every
decision records the weights, τ, η and probability per candidate, the draw and the state
version. Learning stays off the serving path: finished routes go into a trajectory buffer, and
each time it fills (10 entries here) a recorded ``amro-learn`` step gates them on the gold
label and deposits pheromone, producing the next state version. Run::

    python examples/amro_routing.py
    orch state <state version>     # the pheromone history
    orch replay <run id>          # any serving or learning run, offline
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
    AMROParams,
    LearnEntry,
    PheromoneState,
    TrajectoryBuffer,
    amro_learn,
    amro_router,
    save_state,
)

BUFFER = 10
# Ability priors per task type: RouterArena's mean scores for the recorded models on its
# sub_10 split (0.52 and 0.69); the simulated model is right half the time by construction.
NODES = [
    {"name": "haiku", "model": "haiku", "ability": {"business": 0.52, "science": 0.52}},
    {"name": "gemini", "model": "gemini", "ability": {"business": 0.69, "science": 0.69}},
    {"name": "sim", "model": "sim", "ability": {"business": 0.5, "science": 0.5}},
]
# A few hand-written queries per task type (not from the evaluation data).
INTENT_EXAMPLES = [
    {"text": "compute the cost, price and interest of the policy in dollars", "task": "business"},
    {"text": "the company's profit, sales, assets and liabilities this year", "task": "business"},
    {"text": "which marketing strategy or selling approach suits the consumer", "task": "business"},
    {"text": "job satisfaction, management and organisational culture at work", "task": "business"},
    {"text": "convert the units and round the total to two decimal places", "task": "business"},
    {"text": "which enzyme digests proteins in the cell and stomach", "task": "science"},
    {"text": "what happens to the molecule in this chemical reaction", "task": "science"},
    {"text": "which organism, gene or tissue has this biological function", "task": "science"},
    {"text": "the species evolved through mutation and natural selection", "task": "science"},
    {"text": "the concentration of the solution, its pH and the atoms bonded", "task": "science"},
]
# Q scaled to the cost of a call (about $1e-4 here): with the default Q = 1 every accepted
# path would deposit ~10^4 and hit the pheromone ceiling at once.
PARAMS = AMROParams(q=1e-4)
CONFIG = {"layers": [NODES], "intent_examples": INTENT_EXAMPLES, "params": PARAMS}


def services() -> dict[str, Any]:
    return {"models": ModelHub(ModelRegistry.from_dict(REGISTRY))}


def build_serving() -> orch.Pipeline:
    p = PipelineBuilder("amro-serving")
    route = p.node(
        "route",
        amro_router.with_config(**CONFIG),
        question=p.input("question", str),
        state=p.input("state", str),
    )
    p.output("answer", route)
    return p.build()


def build_learning() -> orch.Pipeline:
    p = PipelineBuilder("amro-learning")
    learn = p.node(
        "learn",
        amro_learn.with_config(gate="gold"),
        state=p.input("state", str),
        entries=p.input("entries", list[LearnEntry]),
    )
    p.output("state", learn)
    return p.build()


pipeline = build_serving()
learning = build_learning()


def main() -> int:
    from rich.console import Console

    from traces import load_run_view, open_store

    console = Console(soft_wrap=True)
    here = Path(__file__).resolve()
    svc = services()
    buffer = TrajectoryBuffer(BUFFER)
    correct = 0
    cost = 0.0
    picks: dict[str, int] = {}
    with open_store() as store:
        version = save_state(store, PheromoneState(params=PARAMS))
        console.print(f"initial pheromone state {version[:19]}")
        for k, item in enumerate(items()):
            result = orch.run(
                pipeline,
                {"question": item["question"], "state": version},
                store=store,
                seed=k,
                services=svc,
                origin={"pipeline": f"{here}:pipeline"},
            )
            result.raise_for_status()
            out = result.outputs["answer"]
            correct += out.answer == item["answer"]
            cost += out.cost_usd
            picks[out.path[0]] = picks.get(out.path[0], 0) + 1
            reason = load_run_view(store, result.run_id).steps["route"].decisions[0].reason
            console.print(
                f"{item['id']:<28} -> {out.path[0]:<6} answer {out.answer} (gold {item['answer']})"
                f"  {reason}"
            )
            batch = buffer.add(LearnEntry.from_result(item["question"], out, item["answer"]))
            if batch:
                learned = orch.run(
                    learning,
                    {"state": version, "entries": [e.model_dump(mode="json") for e in batch]},
                    store=store,
                    services=svc,
                    origin={"pipeline": f"{here}:learning"},
                )
                learned.raise_for_status()
                version = learned.outputs["state"].version
                console.print(f"[bold]learned from {len(batch)} routes -> state {version[:19]}[/]")
    n = len(items())
    console.print(
        f"accuracy {correct}/{n} = {correct / n:.3f}; cost ${cost:.4f}; picks {picks}\n"
        f"pheromone history: orch state {version}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
