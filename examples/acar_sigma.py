"""ACAR σ-escalation over the 30 recorded MMLU-Pro questions.

A probe model (the seeded simulated model, sampled 3 times at temperature 0.7) answers first;
σ = (distinct answers - 1) / (N - 1) decides how far to escalate: σ = 0 keeps the agreed answer
(one model), σ = 0.5 asks the two other models to verify (majority policy), σ = 1 runs the full
ensemble and a judge picks one response. Every decision records σ, the probe answers, the mode,
the models invoked, the answer and the cost.

The judge here is scripted, not a model: it always picks the response of the ensemble member
with the best prior reliability (gemini, RouterArena's mean score 0.69 against haiku's 0.52),
so the example runs with no keys. Run::

    python examples/acar_sigma.py
    orch show <run id>   /   orch replay <run id>
"""

from __future__ import annotations

import copy
import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from quickstart import DATA, REGISTRY, items

import orch
from agents.models import ModelHub, ModelRegistry, ScriptedClient
from orch import PipelineBuilder
from routers import acar

ENSEMBLE = ["sim", "haiku", "gemini"]
CONFIG = {
    "probe_model": "sim",
    "ensemble": ENSEMBLE,
    "judge_model": "judge",
    "n_probes": 3,
    "extractor": "option",
}


def registry() -> dict[str, Any]:
    reg = copy.deepcopy(REGISTRY)
    reg["providers"]["judge"] = {"kind": "simulated", "options": {"data": str(DATA)}}
    reg["models"]["judge"] = {"provider": "judge", "name": "reliability-judge"}
    return reg


def services() -> dict[str, Any]:
    best = f"Response {ENSEMBLE.index('gemini') + 1}"
    judge = ScriptedClient(lambda _request, _model: best)
    return {"models": ModelHub(ModelRegistry.from_dict(registry()), clients={"judge": judge})}


def build() -> orch.Pipeline:
    p = PipelineBuilder("acar-sigma")
    route = p.node("acar", acar.with_config(**CONFIG), question=p.input("question", str))
    p.output("answer", route)
    return p.build()


pipeline = build()


def main() -> int:
    from rich.console import Console

    from traces import open_store

    console = Console(soft_wrap=True)
    here = Path(__file__).resolve()
    svc = services()
    modes: Counter[str] = Counter()
    correct = agreement_but_wrong = 0
    cost = 0.0
    last = ""
    with open_store() as store:
        for item in items():
            result = orch.run(
                pipeline,
                {"question": item["question"]},
                store=store,
                services=svc,
                origin={"pipeline": f"{here}:pipeline"},
            )
            result.raise_for_status()
            out = result.outputs["answer"]
            last = result.run_id
            modes[out.mode] += 1
            right = out.answer == item["answer"]
            correct += right
            agreement_but_wrong += out.sigma == 0 and not right
            cost += out.cost_usd
            console.print(
                f"{item['id']:<28} probes {out.probe_answers} σ={out.sigma:.1f} {out.mode:<9} "
                f"-> {out.answer} (gold {item['answer']}) via {out.models_invoked}"
            )
    n = len(items())
    console.print(
        f"accuracy {correct}/{n} = {correct / n:.3f}; cost ${cost:.4f}; modes "
        + ", ".join(f"{m} {modes[m] / n:.0%}" for m in ("single", "two-model", "full"))
        + f"; agreement-but-wrong {agreement_but_wrong / n:.1%}\n"
        f"inspect: orch show {last}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
