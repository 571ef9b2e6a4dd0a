"""Router overhead: decisions per second and µs per decision, with model latency excluded.

Every router runs through the real engine (records, events, decisions, a memory store) with
scripted models that answer at once, so what is timed is the engine plus the routing logic.
In the same process run, two floors are measured: a one-step run that does nothing, and one
that makes 8 model calls, giving the fixed cost of a run and the cost of a recorded call. For
each router the report gives runs/s, model calls and decisions per run, µs per decision, and
the routing cost per decision beyond the floors:

    (µs per run - µs of an empty run - calls per run x µs per call) / decisions per run

A second table times the decision logic alone (no engine): TCAR's contract parser and the
offline trained router over the 150-intent CLINC registry, σ, the AMRO-S transition and draw,
the EMA panel, and the routers trained from recorded quality (kNN on the embedding seam, the
classifier, MF and SW routers: embedding the query, predicting each model's quality and
choosing), with TF-IDF and, when the ``embed`` extra is installed, wordllama embeddings.
Run: ``python tests/benchmarks/router_overhead.py`` (``--runs N``, ``--repeat R``,
``--json FILE``). The suite never asserts on time; compare ratios.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from pydantic import BaseModel

from agents.models import (
    ChatMessage,
    ChatRequest,
    ModelHub,
    ModelInfo,
    ModelRegistry,
    ScriptedClient,
)
from agents.refiner import AgentReply
from orch import Context, Pipeline, PipelineBuilder, agent
from orch._runtime import arun
from routers import (
    AgentCard,
    AgentRegistry,
    AMROParams,
    Candidate,
    ClassifierTraining,
    EMAState,
    Embedder,
    KNNEstimator,
    MFTraining,
    Observation,
    PheromoneState,
    SWTraining,
    TCARQuery,
    TfidfEmbedder,
    TrainConfig,
    TrainedRouter,
    WordLlamaEmbedder,
    acar,
    amro_router,
    apply_feedback,
    choose,
    classifier_router,
    mf_router,
    orch_merge,
    panel,
    parse_route,
    save_state,
    sentence_embeddings_available,
    sigma,
    sw_router,
    tcar,
    tcar_router,
    train_classifier_router,
    train_mf_router,
    train_sw_router,
    train_tcar,
    transition,
)
from routers._quality import choose_by_cost, predictor
from routers.baselines import KNNExample, build_knn_index, cascade, knn_router, majority_vote
from traces import MemoryStore, StepRecord

ROOT = Path(__file__).parents[2]
MODELS = ("m1", "m2", "m3", "judge", "router")
REGISTRY = {
    "providers": {"s": {"kind": "simulated"}},
    "models": {
        m: {"provider": "s", "name": m, "input_per_mtok": 1.0, "output_per_mtok": 2.0}
        for m in MODELS
    },
}


def reply(request: ChatRequest, model: ModelInfo) -> str:
    prompt = request.messages[-1].content
    if model.name == "router":
        return "<Reason>billing fits</Reason>\n<ID>billing</ID>"
    if model.name == "judge" or prompt.startswith("Several assistants"):
        return "Response 1"
    if prompt.startswith("Split the question"):
        return "1. What concept?\n2. Which options go?\n3. Does B hold?"
    # probes disagree on odd samples, so ACAR escalates on some runs
    letters = "ABCD"
    return f"The answer is {letters[(request.sample + len(prompt)) % 4]}."


def hub() -> ModelHub:
    return ModelHub(ModelRegistry.from_dict(REGISTRY), clients={"s": ScriptedClient(reply)})


class Q(BaseModel):
    question: str


class A(BaseModel):
    text: str


@agent(name="no-call", version="1")
async def no_call(q: Q, ctx: Context) -> A:
    return A(text=q.question)


CALLS = 8


@agent(name="calls", version="1")
async def one_call(q: Q, ctx: Context) -> A:
    models: ModelHub = ctx.service("models")
    texts = []
    for i in range(CALLS):  # several calls, so the per-call cost stands out of the noise
        r = await models.chat(
            ctx,
            ChatRequest(
                model="m1", messages=[ChatMessage(role="user", content=f"{i} {q.question}")]
            ),
        )
        texts.append(r.text)
    return A(text=" ".join(texts))


@agent(name="bench-domain", version="1")
async def domain(q: TCARQuery, ctx: Context) -> AgentReply:
    return AgentReply(text=f"handled: {q.query}", answer="x")


CARDS = [
    AgentCard(id="billing", name="Billing", description="invoices refunds charges payments"),
    AgentCard(id="network", name="Network", description="wifi internet router outage"),
    AgentCard(id="travel", name="Travel", description="flights hotels luggage bookings"),
]
AMRO_CONFIG = {
    "layers": [
        [
            {"name": n, "model": n, "ability": {"math": a, "general": 1 - a}}
            for n, a in (("m1", 0.3), ("m2", 0.6), ("m3", 0.9))
        ]
    ],
    "intent_examples": [
        {"text": "solve the equation and integrate", "task": "math"},
        {"text": "compute the probability of the event", "task": "math"},
        {"text": "who wrote this famous novel", "task": "general"},
        {"text": "what is the capital of the country", "task": "general"},
    ],
}


def single(name: str, node_agent: Any, **inputs: Any) -> Pipeline:
    p = PipelineBuilder(name)
    p.node("r", node_agent, **{k: p.input(k, t) for k, t in inputs.items()})
    return p.build()


TOPICS = ["algebra", "history", "python", "poetry", "chemistry", "law", "travel"]
TRAINING = [
    KNNExample(
        query=f"training question {j} about {TOPICS[j % 7]} and topic {j % 11}",
        quality={m: ((j + i) % 3) / 2 for i, m in enumerate(("m1", "m2", "m3"))},
        cost_usd={"m1": 1e-4, "m2": 5e-4, "m3": 2e-3},
    )
    for j in range(200)
]
"""Recorded quality of three models on 200 training queries (kNN and trained routers)."""
TRAINERS: dict[str, tuple[Any, Callable[..., Any], Any]] = {
    "classifier": (classifier_router, train_classifier_router, ClassifierTraining()),
    "MF": (mf_router, train_mf_router, MFTraining()),
    "SW": (sw_router, train_sw_router, SWTraining()),
}


def tfidf() -> TfidfEmbedder:
    return TfidfEmbedder.fit([e.query for e in TRAINING], ngram_range=(1, 1))


def _asking(state: str) -> Callable[[int], dict[str, Any]]:
    def inputs(i: int) -> dict[str, Any]:
        return {"question": f"a question about {TOPICS[i % 7]}", "state": state}

    return inputs


def contenders(store: MemoryStore) -> dict[str, tuple[Pipeline, Callable[[int], dict[str, Any]]]]:
    amro_state = save_state(store, PheromoneState(params=AMROParams()))
    knn_index = save_state(store, build_knn_index(TRAINING))
    trained = {
        name: (agent, save_state(store, train(TRAINING, tfidf(), config=config)))
        for name, (agent, train, config) in TRAINERS.items()
    }
    ema_state = save_state(store, EMAState())
    q = lambda i: f"Question {i}: what is {i} plus {i * 7}? Options A B C D"  # noqa: E731
    return {
        "floor: empty run": (single("empty", no_call, question=str), lambda i: {"question": q(i)}),
        "floor: 8 model calls": (
            single("floor", one_call, question=str),
            lambda i: {"question": q(i)},
        ),
        "TCAR offline router": (
            single("tcar-offline", tcar_router, query=str),
            lambda i: {"query": f"refund the invoice charge {i}"},
        ),
        "TCAR router model": (
            single("tcar-model", tcar_router.with_config(router_model="router"), query=str),
            lambda i: {"query": f"refund the invoice charge {i}"},
        ),
        "TCAR team (route+agents+refine)": (
            single("tcar-team", tcar, query=str),
            lambda i: {"query": f"refund for lost luggage flight invoice {i}"},
        ),
        "ACAR σ-router": (
            single(
                "acar",
                acar.with_config(
                    probe_model="m1", ensemble=["m1", "m2", "m3"], judge_model="judge"
                ),
                question=str,
            ),
            lambda i: {"question": q(i)},
        ),
        "AMRO-S router": (
            single("amro", amro_router.with_config(**AMRO_CONFIG), question=str, state=str),
            lambda i: {"question": q(i), "state": amro_state},
        ),
        "baseline: majority vote of 3": (
            single("majority", majority_vote.with_config(models=["m1", "m2", "m3"]), question=str),
            lambda i: {"question": q(i)},
        ),
        "baseline: cascade (3 samples)": (
            single("cascade", cascade.with_config(weak="m1", strong="m3"), question=str),
            lambda i: {"question": q(i)},
        ),
        "baseline: kNN on the embedding seam (TF-IDF), 200 examples": (
            single("knn", knn_router, question=str, index=str),
            lambda i: {"question": f"question about topic {i % 7}", "index": knn_index},
        ),
        **{
            f"{name} router (TF-IDF), 200 examples, λ": (
                single(name, agent.with_config(lam=300.0), question=str, state=str),
                _asking(version),
            )
            for name, (agent, version) in trained.items()
        },
        "ORCH merge + EMA panel": (
            single(
                "orch", orch_merge.with_config(agents=["m1", "m2", "m3"]), question=str, state=str
            ),
            lambda i: {"question": q(i), "state": ema_state},
        ),
    }


async def time_runs(
    pipeline: Pipeline, inputs: Callable[[int], dict[str, Any]], runs: int, store: MemoryStore
) -> tuple[float, list[Any]]:
    services = {"models": hub(), "agents": AgentRegistry([(c, domain) for c in CARDS])}
    results = []
    gc.collect()
    started = time.perf_counter()
    for i in range(runs):
        result = await arun(pipeline, inputs(i), store=store, seed=i, services=services)
        results.append(result)
    elapsed = time.perf_counter() - started
    bad = [r.error for r in results if not r.ok]
    if bad:
        raise SystemExit(f"{pipeline.name}: {len(bad)} runs failed, first: {bad[0]}")
    return elapsed, results


def counts(store: MemoryStore, results: list[Any]) -> tuple[float, float]:
    decisions = calls = 0
    for r in results:
        for _, key in r.record.steps:
            rec = StepRecord.model_validate(store.get_value(key))
            decisions += len(rec.decisions)
            calls += len(rec.effects)
    return calls / len(results), decisions / len(results)


def quality_decisions() -> dict[str, Callable[[int], Any]]:
    """The decision logic of the routers trained from recorded quality, one query at a time
    as they serve: embed (a fresh text each call, so no cache helps), predict, choose."""
    embedders: dict[str, Callable[[], Embedder]] = {"TF-IDF": tfidf}
    if sentence_embeddings_available():
        embedders["wordllama"] = WordLlamaEmbedder
    cases: dict[str, Callable[[int], Any]] = {}
    for kind, make in embedders.items():
        emb = make()

        def question(i: int) -> list[str]:
            return [f"a new question {i} about {TOPICS[i % 7]} and more"]

        estimator = KNNEstimator(build_knn_index(TRAINING, embedder=emb), embedder=emb)

        def estimate(i: int, estimator: KNNEstimator = estimator) -> Any:
            return estimator.estimate(question(i)[0], 5)

        cases[f"kNN estimate ({kind}), 200 examples, k=5"] = estimate
        for name, (_, train, config) in TRAINERS.items():
            state = train(TRAINING, emb, config=config)
            serve = predictor(state, emb)

            def decide(i: int, serve: Any = serve, state: Any = state, emb: Any = emb) -> Any:
                q = serve.quality(emb.embed(question(i)))[0]
                return choose_by_cost(state.models, q, state.mean_cost_usd, 300.0)

            cases[f"{name} router decision ({kind}), 200 examples"] = decide
    return cases


def micro(repeat: int) -> dict[str, float]:
    """µs per call of the decision logic alone."""
    clinc = ROOT / "examples" / "data" / "clinc150_subset.json"
    data = json.loads(clinc.read_text())
    intents = [
        AgentCard(id=i, name=i.replace("_", " "), description=i.replace("_", " "), examples=ex)
        for d in data["domains"].values()
        for i, ex in d.items()
    ]
    offline = TrainedRouter(train_tcar(intents, config=TrainConfig(sentence=False)), intents)
    queries = [t for t, _ in data["test"]]
    rng = random.Random(0)
    state = PheromoneState()
    cands = [Candidate(name=f"m{j}", ability=0.5 + j / 10, load=j, latency_s=j) for j in range(5)]
    ema = apply_feedback(
        EMAState(),
        [
            Observation(agent=f"m{j}", ok=True, latency_ms=100.0 * j, cost_usd=1e-4, quality=j % 2)
            for j in range(10)
        ],
    )
    reply_text = "<Reason>r</Reason>\n<ID>a</ID>\n<ID>b</ID>"
    cases: dict[str, Callable[[int], Any]] = {
        "TCAR parse_route": lambda i: parse_route(reply_text, ["a", "b", "c"]),
        "TCAR trained router (TF-IDF), 150 intents": lambda i: offline.reply(
            queries[i % len(queries)], 3
        ),
        "ACAR σ of 3 probes": lambda i: sigma(["A", "B", None]),
        "AMRO-S transition + draw, 5 nodes": lambda i: choose(
            transition(state, {"math": 0.7, "general": 0.3}, "^", cands), rng
        ),
        "EMA panel of 10 agents": lambda i: panel(ema, [f"m{j}" for j in range(10)], 3),
        **quality_decisions(),
    }
    out = {}
    for name, fn in cases.items():
        n = 2000 if "router" not in name and "kNN" not in name else 300
        samples = []
        for _ in range(repeat):
            t = time.perf_counter()
            for i in range(n):
                fn(i)
            samples.append((time.perf_counter() - t) / n * 1e6)
        out[name] = statistics.median(samples)
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {
        "runs": args.runs,
        "repeat": args.repeat,
        "routers": {},
        "logic_us": {},
    }
    floors: list[float] = []
    store = MemoryStore()
    for name, (pipeline, inputs) in contenders(store).items():
        await time_runs(pipeline, inputs, max(args.runs // 10, 2), store)  # warm caches
        samples = []
        per_call = per_decision = 0.0
        for _ in range(args.repeat):
            elapsed, results = await time_runs(pipeline, inputs, args.runs, store)
            samples.append(elapsed / args.runs * 1e6)
            per_call, per_decision = counts(store, results)
        us_run = statistics.median(samples)
        row: dict[str, Any] = {
            "us_per_run": us_run,
            "runs_per_s": 1e6 / us_run,
            "calls_per_run": per_call,
            "decisions_per_run": per_decision,
        }
        if name.startswith("floor"):
            floors.append(us_run)
        if per_decision:
            run_us, call_us = floors[0], (floors[1] - floors[0]) / CALLS
            row["us_per_decision"] = us_run / per_decision
            row["decisions_per_s"] = per_decision * 1e6 / us_run
            row["routing_us_per_decision"] = (us_run - run_us - per_call * call_us) / per_decision
        report["routers"][name] = row
    report["floor_run_us"] = floors[0]
    report["floor_us_per_call"] = (floors[1] - floors[0]) / CALLS
    report["logic_us"] = micro(args.repeat)
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200, help="runs per router per repeat")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    report = anyio.run(main_async, args)
    print(f"router overhead, {args.runs} runs x {args.repeat} repeats (medians), scripted models")
    print(
        f"floors: {report['floor_run_us']:.0f} µs per one-step run with no call; "
        f"{report['floor_us_per_call']:.0f} µs more per recorded model call\n"
    )
    print(
        "| router | runs/s | calls/run | decisions/run | µs/decision | decisions/s "
        "| routing µs/decision beyond run and calls |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in report["routers"].items():
        if "us_per_decision" not in r:
            continue
        print(
            f"| {name} | {r['runs_per_s']:.0f} | {r['calls_per_run']:.2f} "
            f"| {r['decisions_per_run']:.2f} | {r['us_per_decision']:.0f} "
            f"| {r['decisions_per_s']:.0f} | {r['routing_us_per_decision']:.0f} |"
        )
    print("\n| decision logic alone | µs per call |\n|---|---:|")
    for name, us in report["logic_us"].items():
        print(f"| {name} | {us:.1f} |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
