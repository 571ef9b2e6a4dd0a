"""The CLINC150 TCAR teams: built from a training split, their agents, and the tuning
simulation, which must give what the recorded runs of the pipeline give."""

from __future__ import annotations

import itertools
import json

import pytest

from agents.refiner import AgentAnswer, AgentReply, offline_refine
from orch_reproductions.clinc_team import (
    ClincTeam,
    Simulator,
    TeamParams,
    balanced,
    build_team,
    details_of,
    outcome_of,
    predicted_label,
    tune,
)
from routers import OOS, LexicalRouter, parse_route
from routers.eval import Dataset, Task
from routers.eval._harness import evaluate
from traces import MemoryStore
from traces._runview import load_run_view

TRAIN = {
    ("banking", "balance"): [
        "what is my account balance",
        "how much money is in my checking account",
        "tell me my savings balance",
    ],
    ("banking", "transfer"): [
        "transfer money from savings to checking",
        "send fifty dollars to my brother's account",
        "move money between my accounts",
    ],
    ("travel", "book_flight"): [
        "book a flight to paris",
        "i need a plane ticket to boston tomorrow",
        "find me a flight to tokyo",
    ],
    ("travel", "lost_luggage"): [
        "the airline lost my luggage",
        "my suitcase never arrived at baggage claim",
        "where is my lost bag",
    ],
}
TEST = [
    ("what's the balance of my checking account", "balance", "banking"),
    ("please transfer money to my savings", "transfer", "banking"),
    ("book me a flight to rome", "book_flight", "travel"),
    ("my luggage was lost by the airline", "lost_luggage", "travel"),
    ("book a flight and check my balance", "balance", "banking"),
    ("what is the capital of peru", OOS, OOS),
    ("how do i bake sourdough bread", OOS, OOS),
    ("is a lost cause still a cause", OOS, OOS),
]
GRID: dict[str, list[float]] = {
    "lexical_k": [1, 3, 10],
    "lexical_min_similarity": [0.0, 0.2, 0.5],
    "lexical_ratio": [0.3, 1.0],
    "intent_k": [1, 3],
    "intent_min_similarity": [0.0, 0.4],
}


def dataset() -> Dataset:
    tasks = [
        Task(id=f"train/{n}", question=q, gold=intent, split="train", group=domain)
        for n, ((domain, intent), q) in enumerate(
            (key, q) for key, queries in TRAIN.items() for q in queries
        )
    ]
    tasks.append(Task(id="oos_train/0", question="sing me a song", gold=OOS, split="train"))
    tasks += [
        Task(id=f"test/{n}", question=q, gold=intent, split="test", group=domain)
        for n, (q, intent, domain) in enumerate(TEST)
    ]
    return Dataset(name="clinc-mini", tasks=tasks)


def team(level: str = "domain") -> ClincTeam:
    return build_team(dataset().split("train"), level)  # type: ignore[arg-type]


def test_a_domain_team_has_one_card_and_one_intent_index_per_domain() -> None:
    t = team()
    assert [c.id for c in t.cards] == ["banking", "travel"]
    banking = t.cards[0]
    assert banking.description == "Handles balance, transfer."
    assert len(banking.examples) == 6 and "sing me a song" not in banking.examples
    assert sorted(t.intents) == ["banking", "travel"]
    assert t.intents["travel"].intents == ["book_flight", "lost_luggage"]
    assert t.gold_agents("transfer") == {"banking"} and t.gold_agents(OOS) == frozenset()
    assert t.agent_domain("travel") == "travel" and t.group_of(OOS) is None


def test_an_intent_team_has_one_card_per_intent() -> None:
    t = team("intent")
    assert [c.id for c in t.cards] == ["balance", "book_flight", "lost_luggage", "transfer"]
    assert t.cards[2].description == "Handles 'lost luggage' requests (travel)."
    assert t.gold_agents("transfer") == {"transfer"}
    assert t.agent_domain("lost_luggage") == "travel" and not t.intents


def test_no_in_scope_training_queries_is_an_error() -> None:
    only_oos = Dataset(name="x", tasks=[Task(id="a", question="q", gold=OOS, split="train")])
    with pytest.raises(ValueError, match="no in-scope training queries"):
        build_team(only_oos)


@pytest.mark.parametrize("level", ["domain", "intent"])
def test_the_simulated_route_is_the_offline_routers_reply(level: str) -> None:
    t = team(level)
    tasks = dataset().split("test").tasks
    sim = Simulator(t, tasks, max_lexical_k=10, max_intent_k=3)
    ids = [c.id for c in t.cards]
    seen: set[tuple[str, ...]] = set()
    for k, m, r in itertools.product(
        GRID["lexical_k"], GRID["lexical_min_similarity"], GRID["lexical_ratio"]
    ):
        router = LexicalRouter(list(t.cards), k=int(k), min_similarity=m, ratio=r)
        params = TeamParams(lexical_k=int(k), lexical_min_similarity=m, lexical_ratio=r)
        for n, task in enumerate(tasks):
            reply, _, _ = router.reply(task.question, 3)
            want = parse_route(reply, ids).ids
            got = sim.chosen(n, params)
            assert (got or [OOS]) == want, (task.question, params)
            seen.add(tuple(got))
    # The grid reaches declines, one agent and several agents, so the check is not idle.
    assert () in seen and any(len(c) == 1 for c in seen) and any(len(c) > 1 for c in seen)


@pytest.mark.anyio
@pytest.mark.parametrize("level", ["domain", "intent"])
async def test_the_simulation_gives_what_the_recorded_runs_give(level: str) -> None:
    t = team(level)
    data = dataset()
    tasks = data.split("test").tasks
    sim = Simulator(t, tasks, max_lexical_k=10, max_intent_k=3)
    grid = GRID if level == "domain" else {n: GRID[n] for n in list(GRID)[:3]}
    labels: set[str | None] = set()
    kinds: set[str] = set()
    points = list(itertools.product(*grid.values()))
    for values in points[:: max(1, len(points) // 12)]:
        params = TeamParams(**dict(zip(grid, values, strict=True)))
        report = await evaluate(
            t.pipeline(params),
            data,
            MemoryStore(),
            split="test",
            parallel=3,
            services=t.services(params),
            describe=lambda task, out: details_of(t, task, out),
        )
        assert report.failed == 0
        for n, r in enumerate(report.results):
            assert json.loads(json.dumps(r.details)) == r.details
            assert outcome_of(r.details) == sim.outcome(n, params), (r.task, params)
            labels.add(r.details["predicted"])
            kinds.add(r.details["final"])
    # Runs reached every kind of final answer, so the comparison covers each path.
    assert {OOS, None} <= labels and labels - {OOS, None}
    assert {"single", "declined", "conflict"} <= kinds


async def test_the_domain_agent_names_an_intent_and_records_why() -> None:
    t = team()
    store = MemoryStore()
    params = TeamParams(lexical_min_similarity=0.0, intent_k=1, intent_min_similarity=0.3)
    report = await evaluate(
        t.pipeline(params),
        dataset(),
        store,
        split="test",
        limit=4,
        services=t.services(params),
        grader=lambda task, out, calls: float(predicted_label(out.final, out.answers) == task.gold),
    )
    assert [r.score for r in report.results] == [1.0, 1.0, 1.0, 1.0]
    view = load_run_view(store, report.results[0].run_id)
    decisions = [
        d
        for step in view.steps.values()
        if step.record.agent.name == "clinc150-domain-agent"
        for d in step.decisions
    ]
    assert len(decisions) == 1
    d = decisions[0]
    assert d.chosen == ["balance"] and d.candidates == ["balance", "transfer"]
    assert d.parameters == {"k": 1, "min_similarity": 0.3}
    assert d.evidence["index_version"] == t.intents["banking"].version
    assert d.evidence["nearest"][0]["intent"] == "balance"


def test_the_final_label_of_a_refined_answer() -> None:
    def label(*answers: AgentAnswer) -> str | None:
        final, _ = offline_refine("q", list(answers))
        return predicted_label(final, list(answers))

    yes = AgentAnswer(agent="banking", reply=AgentReply(text="balance", answer="balance"))
    other = AgentAnswer(agent="travel", reply=AgentReply(text="flight", answer="book_flight"))
    same = AgentAnswer(agent="travel", reply=AgentReply(text="balance", answer="balance"))
    no = AgentAnswer(agent="travel", reply=AgentReply(text="not mine", declined=True))
    free = AgentAnswer(agent="travel", reply=AgentReply(text="some words"))
    broken = AgentAnswer(agent="travel", error="boom")
    assert label() == OOS and label(no) == OOS and label(broken, no) == OOS
    assert label(yes) == "balance" and label(yes, no) == "balance"
    assert label(yes, same) == "balance"  # integrated: they agree
    assert label(yes, other) is None  # a stated conflict
    assert label(free) is None and label(yes, free) is None


def test_tune_ranks_every_grid_point_best_first_ties_to_grid_order() -> None:
    t = team()
    sim = Simulator(t, dataset().split("test").tasks, max_lexical_k=10, max_intent_k=3)
    grid = {"lexical_min_similarity": [0.0, 0.2, 0.5, 0.9], "intent_min_similarity": [0.0, 0.4]}
    rows = tune(sim, grid, base=TeamParams(lexical_k=3, intent_k=3))
    assert len(rows) == 8
    scores = [balanced(s) for _, s in rows]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1]
    order = [(p.lexical_min_similarity, p.intent_min_similarity) for p, _ in rows]
    grid_order = list(itertools.product(*grid.values()))
    for a, b in itertools.pairwise(range(8)):
        if scores[a] == scores[b]:
            assert grid_order.index(order[a]) < grid_order.index(order[b])
    assert all(p.lexical_k == 3 and p.intent_k == 3 for p, _ in rows)
    with pytest.raises(ValueError, match="max_intent_k"):
        sim.outcome(0, TeamParams(intent_k=5, lexical_k=3))
    with pytest.raises(ValueError, match="max_lexical_k"):
        sim.outcome(0, TeamParams(lexical_k=11, intent_k=3))
