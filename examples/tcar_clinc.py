"""TCAR over CLINC150: ten domain agents, the offline reasoning router, a refining agent.

Each CLINC150 domain (banking, travel, kitchen and dining, ...) is an agent: its card has the
domain's name, a description listing its intents, and a few example queries; the agent itself
names the intent within its domain that is nearest the query (or declines). The TCAR router,
here the offline lexical router (no keys, no model), chooses up to 3 agents or ``oos`` and
writes its evidence as the reason; the chosen agents run in parallel and the refining agent
merges their answers (one answer, an agreement, a stated conflict, or a polite decline).

Data: a subset of CLINC150 (Larson et al., EMNLP 2019; CC BY 3.0, see
``examples/data/LICENSE.CLINC150-CC-BY-3.0``): 10 training queries per intent as agent
examples, 2 test queries per intent and 30 out-of-scope test queries. The router's thresholds
were tuned on the subset's validation split, never on the test queries. Run::

    python examples/tcar_clinc.py [--limit N] [--show K]
    orch show <run id>   /   orch replay <run id>
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

import orch
from agents.refiner import AgentReply
from orch import Context, PipelineBuilder, agent
from routers import OOS, AgentCard, AgentRegistry, LexicalIndex, TCARQuery, tcar

DATA = Path(__file__).parent / "data" / "clinc150_subset.json"
# Tuned on the subset's validation split (in-scope recall 0.87, oos 0.23, 1.15 agents).
ROUTER = {"lexical_k": 10, "lexical_min_similarity": 0.35, "lexical_ratio": 0.7}
INTENT_MIN_SIMILARITY = 0.2


@functools.cache
def dataset() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DATA.read_text())
    return data


class Domain(BaseModel):
    domain: str


@functools.cache
def _domain_index(domain: str) -> tuple[LexicalIndex, list[str]]:
    intents = dataset()["domains"][domain]
    texts, labels = [], []
    for intent, examples in sorted(intents.items()):
        for text in [intent.replace("_", " "), *examples]:
            texts.append(text)
            labels.append(intent)
    return LexicalIndex(texts), labels


@agent(name="clinc-domain-agent", version="1", config=Domain)
async def domain_agent(q: TCARQuery, ctx: Context) -> AgentReply:
    """Name the intent of this domain nearest the query, or decline."""
    domain = ctx.config.domain
    index, labels = _domain_index(domain)
    (i, sim), *_ = index.nearest(q.query, 1)
    if sim < INTENT_MIN_SIMILARITY:
        return AgentReply(text=f"{domain}: not a {domain} request", declined=True)
    intent = labels[i]
    return AgentReply(
        text=f"{domain}: this is '{intent.replace('_', ' ')}' (similarity {sim:.2f})",
        answer=intent,
    )


def cards() -> list[AgentCard]:
    out = []
    for domain, intents in sorted(dataset()["domains"].items()):
        out.append(
            AgentCard(
                id=domain,
                name=domain.replace("_", " "),
                description="Handles "
                + ", ".join(i.replace("_", " ") for i in sorted(intents))
                + ".",
                examples=[t for examples in intents.values() for t in examples],
            )
        )
    return out


def services() -> dict[str, Any]:
    """The agent registry (the CLI calls this for ``orch replay``)."""
    return {"agents": AgentRegistry([(c, domain_agent.with_config(domain=c.id)) for c in cards()])}


def build() -> orch.Pipeline:
    p = PipelineBuilder("tcar-clinc150")
    p.output("answer", p.node("tcar", tcar.with_config(router=ROUTER), query=p.input("query", str)))
    return p.build()


pipeline = build()


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    from traces import open_store

    ap = argparse.ArgumentParser(description="TCAR over a CLINC150 subset, offline")
    ap.add_argument("--limit", type=int, default=0, help="only the first N test queries")
    ap.add_argument("--show", type=int, default=5, help="print the decisions of K queries")
    args = ap.parse_args(argv)
    console = Console(soft_wrap=True)
    data = dataset()
    domain_of = {i: d for d, intents in data["domains"].items() for i in intents}
    tests = data["test"][: args.limit or None]
    svc = services()
    hits = intent_hits = oos_hits = n_in = n_oos = agents_chosen = multi = 0
    last = ""
    with open_store() as store:
        for k, (query, gold) in enumerate(tests):
            result = orch.run(
                pipeline,
                {"query": query},
                store=store,
                services=svc,
                origin={"pipeline": f"{Path(__file__).resolve()}:pipeline"},
            )
            result.raise_for_status()
            out = result.outputs["answer"]
            chosen = out.route.chosen
            last = result.run_id
            if gold == OOS:
                n_oos += 1
                oos_hits += chosen == [OOS]
            else:
                n_in += 1
                hits += domain_of[gold] in chosen
                intent_hits += any(a.reply and a.reply.answer == gold for a in out.answers)
                agents_chosen += len([c for c in chosen if c != OOS])
                multi += len(chosen) > 1
            if k < args.show:
                console.print(f"[bold]{query}[/]  (gold: {gold})")
                console.print(f"  route {chosen} via {out.route.via}: {out.route.reason}")
                console.print(f"  refined ({out.final.kind}): {out.final.text}\n")
    console.print(
        f"{len(tests)} queries: in-scope {n_in}, out-of-scope {n_oos}\n"
        f"domain accuracy (gold agent chosen): {hits / max(n_in, 1):.3f}\n"
        f"intent found by a chosen agent:      {intent_hits / max(n_in, 1):.3f}\n"
        f"out-of-scope answered oos:           {oos_hits / max(n_oos, 1):.3f}\n"
        f"mean agents chosen (in-scope):       {agents_chosen / max(n_in, 1):.2f}; "
        f"more than one agent: {multi / max(n_in, 1):.3f}\n"
        f"inspect a run: orch show {last}   replay it: orch replay {last}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
