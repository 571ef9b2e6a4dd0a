"""TCAR over CLINC150: ten domain agents, the offline trained router, a refining agent.

Each CLINC150 domain (banking, travel, kitchen and dining, ...) is an agent: its card has the
domain's name, a description listing its intents, and its intents' training queries as
examples; the agent itself names the intent of its domain nearest the query (exact cosine
neighbours over TF-IDF, :class:`routers.NearestIndex`), or declines when none is near. The
TCAR router, here the offline router (no keys, no model), is a classifier trained on the
cards (:func:`routers.train_tcar`, scikit-learn TF-IDF only, so it trains in a second) and
calibrated on the subset's validation split, never on the test queries: the state is stored
and the pipeline names its version. It chooses up to 3 agents or ``oos`` and writes its
probabilities as the reason; the chosen agents run in parallel and the refining agent merges
their answers (one answer, an agreement, a stated conflict, or a polite decline). No model
is called, and the test queries are never used to train or calibrate.

Data: a subset of CLINC150 (Larson et al., EMNLP 2019; CC BY 3.0, see
``examples/data/LICENSE.CLINC150-CC-BY-3.0``): 10 training queries per intent as agent
examples, 1 validation query per intent and 30 out-of-scope validation queries to calibrate
on, 2 test queries per intent and 30 out-of-scope test queries. On the 330 test queries
(one run, 2026-12-06): gold domain chosen for 0.827 of the in-scope ones, intent found by a
chosen agent 0.600 (nearest neighbours among 10 examples per intent), out-of-scope answered
``oos`` 0.733 (the subset has no out-of-scope training queries: the router declines by a
score calibrated on the 30 validation ones), 1.13 agents per routed query. The domain
agents' threshold (0.3) was chosen on the validation split too. Run::

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
from routers import (
    OOS,
    AgentCard,
    AgentRegistry,
    IntentClassifier,
    NearestIndex,
    TCARQuery,
    TfidfEmbedder,
    TrainConfig,
    save_state,
    tcar,
    train_tcar,
)

DATA = Path(__file__).parent / "data" / "clinc150_subset.json"
INTENT_MIN_SIMILARITY = 0.3
"""A domain agent declines when no training query of its domain is this similar (cosine)."""


@functools.cache
def dataset() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DATA.read_text())
    return data


@functools.cache
def domain_of() -> dict[str, str]:
    return {i: d for d, intents in dataset()["domains"].items() for i in intents}


class Domain(BaseModel):
    domain: str


@functools.cache
def _domain_index(domain: str) -> tuple[NearestIndex, list[str]]:
    texts, labels = [], []
    for intent, examples in sorted(dataset()["domains"][domain].items()):
        for text in [intent.replace("_", " "), *examples]:
            texts.append(text)
            labels.append(intent)
    embedder = TfidfEmbedder.fit(texts, analyzer="char_wb", ngram_range=(2, 5))
    return NearestIndex(embedder, texts), labels


@agent(name="clinc-domain-agent", version="2", config=Domain)
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


@functools.cache
def router_state() -> IntentClassifier:
    """The offline router: trained on the cards, calibrated on the validation split (each
    query's gold agent is its intent's domain; out-of-scope queries as negatives)."""
    val = dataset()["val"]
    return train_tcar(
        cards(),
        heldout=[(q, domain_of()[i]) for q, i in val if i != OOS],
        heldout_negatives=[q for q, i in val if i == OOS],
        config=TrainConfig(sentence=False),
    )


def pipeline() -> orch.Pipeline:
    """The pipeline (a function, so importing the file trains nothing): TCAR routed by the
    stored router state's version."""
    team = tcar.with_config(router={"router_state": router_state().version})
    p = PipelineBuilder("tcar-clinc150")
    p.output("answer", p.node("tcar", team, query=p.input("query", str)))
    return p.build()


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    from traces import open_store

    ap = argparse.ArgumentParser(description="TCAR over a CLINC150 subset, offline")
    ap.add_argument("--limit", type=int, default=0, help="N test queries spread over the split")
    ap.add_argument("--show", type=int, default=5, help="print the decisions of K queries")
    args = ap.parse_args(argv)
    console = Console(soft_wrap=True)
    data = dataset()
    # Evenly spread, so a short run sees several domains and out-of-scope queries too.
    tests = data["test"]
    if args.limit:
        tests = [tests[k * len(tests) // args.limit] for k in range(min(args.limit, len(tests)))]
    svc = services()
    pipe = pipeline()
    hits = intent_hits = oos_hits = n_in = n_oos = routed = agents_chosen = 0
    last = ""
    with open_store() as store:
        version = save_state(store, router_state())
        for k, (query, gold) in enumerate(tests):
            result = orch.run(
                pipe,
                {"query": query},
                store=store,
                services=svc,
                origin={"pipeline": f"{Path(__file__).resolve()}:pipeline"},
            )
            result.raise_for_status()
            out = result.outputs["answer"]
            chosen = out.route.chosen
            last = result.run_id
            if chosen != [OOS]:
                routed += 1
                agents_chosen += len(chosen)
            if gold == OOS:
                n_oos += 1
                oos_hits += chosen == [OOS]
            else:
                n_in += 1
                hits += domain_of()[gold] in chosen
                intent_hits += any(a.reply and a.reply.answer == gold for a in out.answers)
            if k < args.show:
                console.print(f"[bold]{query}[/]  (gold: {gold})")
                console.print(f"  route {chosen} via {out.route.via}: {out.route.reason}")
                console.print(f"  refined ({out.final.kind}): {out.final.text}\n")
    console.print(
        f"{len(tests)} queries: in-scope {n_in}, out-of-scope {n_oos}\n"
        f"domain accuracy (gold domain chosen): {hits / max(n_in, 1):.3f}\n"
        f"intent found by a chosen agent:       {intent_hits / max(n_in, 1):.3f}\n"
        f"out-of-scope answered oos:            {oos_hits / max(n_oos, 1):.3f}\n"
        f"mean agents per routed query:         {agents_chosen / max(routed, 1):.2f}\n"
        f"router state: orch state {version}\n"
        f"inspect a run: orch show {last}   replay it: orch replay {last}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
