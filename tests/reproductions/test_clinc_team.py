"""The CLINC150 TCAR team: intent agents built from a training split, runs routed by a stored
offline router state whose decisions carry the decline score, and the measures over them."""

from __future__ import annotations

import pytest

from orch.testing import aassert_replays_clean
from orch_reproductions.clinc_team import (
    ClincFigures,
    QueryRecord,
    build_team,
    details_of,
    figures,
    heldout,
    is_right,
    record_details,
    record_of,
)
from routers import OOS, TrainConfig, calibrate, classify, save_state
from routers.eval import Dataset, Task
from routers.eval._harness import evaluate
from traces import MemoryStore, load_run_view, verify_store

DOMAINS = {"balance": "banking", "transfer": "banking", "book_flight": "travel"}
DOMAINS["lost_luggage"] = "travel"
TRAIN = {
    "balance": [
        "what is my account balance",
        "how much money is in my checking account",
        "tell me my savings balance",
    ],
    "transfer": [
        "transfer money from savings to checking",
        "send fifty dollars to my brother's account",
        "move money between my accounts",
    ],
    "book_flight": [
        "book a flight to paris",
        "i need a plane ticket to boston tomorrow",
        "find me a flight to tokyo",
    ],
    "lost_luggage": [
        "the airline lost my luggage",
        "my suitcase never arrived at baggage claim",
        "where is my lost bag",
    ],
}
OOS_TRAIN = ["sing me a song", "what is the meaning of life", "tell me a joke"]
VAL = [
    ("how much is in my savings", "balance"),
    ("transfer cash to checking", "transfer"),
    ("get me a flight to rome", "book_flight"),
    ("my bag is lost", "lost_luggage"),
    ("who won the world cup", OOS),
]
TEST = [
    ("what's the balance of my checking account", "balance"),
    ("please transfer money to my savings", "transfer"),
    ("book me a flight to rome", "book_flight"),
    ("my luggage was lost by the airline", "lost_luggage"),
    ("what is the capital of peru", OOS),
    ("how do i bake sourdough bread", OOS),
]
FAST = TrainConfig(sentence=False)


def dataset() -> Dataset:
    tasks = [
        Task(id=f"train/{intent}/{n}", question=q, gold=intent, split="train")
        for intent, queries in TRAIN.items()
        for n, q in enumerate(queries)
    ]
    tasks += [
        Task(id=f"oos_train/{n}", question=q, gold=OOS, split="train")
        for n, q in enumerate(OOS_TRAIN)
    ]
    for split, rows in (("val", VAL), ("test", TEST)):
        tasks += [
            Task(id=f"{split}/{n}", question=q, gold=g, split=split)
            for n, (q, g) in enumerate(rows)
        ]
    return Dataset(name="clinc-mini", tasks=tasks)


def test_the_team_has_one_card_per_intent_and_the_oos_queries_as_out_of_scope() -> None:
    team = build_team(dataset().split("train"), DOMAINS)
    assert [c.id for c in team.cards] == ["balance", "book_flight", "lost_luggage", "transfer"]
    luggage = team.cards[2]
    assert luggage.name == "lost luggage"
    assert luggage.description == "Handles 'lost luggage' requests (travel)."
    assert luggage.examples == TRAIN["lost_luggage"]
    assert team.out_of_scope == tuple(sorted(OOS_TRAIN))
    registry = team.services()["agents"]
    assert registry.ids() == [c.id for c in team.cards]
    assert registry.out_of_scope == team.out_of_scope
    assert team.domain("transfer") == "banking" and team.domain(OOS) is None


def test_a_split_without_in_scope_queries_or_domains_is_refused() -> None:
    only_oos = Dataset(name="x", tasks=[Task(id="a", question="q", gold=OOS, split="train")])
    with pytest.raises(ValueError, match="no in-scope training queries"):
        build_team(only_oos, DOMAINS)
    with pytest.raises(ValueError, match=r"intents \['transfer'\] have no domain"):
        build_team(dataset().split("train"), {k: v for k, v in DOMAINS.items() if k != "transfer"})


def test_heldout_splits_labelled_queries_from_out_of_scope_ones() -> None:
    pairs, negatives = heldout(dataset().split("val"))
    assert pairs == [(q, g) for q, g in VAL if g != OOS]
    assert negatives == ["who won the world cup"]


def test_is_right() -> None:
    assert is_right("balance", ["transfer", "balance"]) and not is_right("balance", ["transfer"])
    assert not is_right("balance", [OOS])
    assert is_right(OOS, [OOS]) and not is_right(OOS, ["balance"])


async def test_runs_route_with_the_stored_state_and_record_its_decline_score() -> None:
    data = dataset()
    team = build_team(data.split("train"), DOMAINS)
    state = calibrate(team.train(FAST), *heldout(data.split("val")))
    assert state.has_oos and state.decline_below is not None
    store = MemoryStore()
    version = save_state(store, state)
    pipeline = team.pipeline(version)
    report = await evaluate(
        pipeline,
        data,
        store,
        split="test",
        parallel=3,
        services=team.services(),
        grader=lambda task, out, calls: float(is_right(task.gold or OOS, out.route.chosen)),
        describe=details_of,
    )
    assert report.failed == 0 and len(report.results) == len(TEST)
    scored = classify(state, [q for q, _ in TEST])
    routes = set()
    for (_, gold), result, c in zip(TEST, report.results, scored, strict=True):
        view = load_run_view(store, result.run_id)
        decisions = [
            d
            for s in view.steps.values()
            if s.record.agent.name == "tcar-router"
            for d in s.decisions
        ]
        assert len(decisions) == 1
        d = decisions[0]
        assert d.state_version == version and d.parameters["router_state"] == version
        assert d.evidence["offline"]["decline_score"] == pytest.approx(c.decline_score, abs=1e-6)
        assert d.chosen == (c.chosen or [OOS]) == result.details["chosen"]
        assert result.details["gold"] == gold and result.details["via"] == "offline"
        assert result.score == float(is_right(gold, d.chosen))
        agents = [s for s in view.steps.values() if s.record.agent.name == "clinc150-intent-agent"]
        assert len(agents) == len(c.chosen)  # none when declined
        routes.add(tuple(d.chosen))
    # Runs both declined and routed, so each path of the check ran.
    assert (OOS,) in routes and any(r != (OOS,) for r in routes)
    assert verify_store(store).ok
    for result in report.results[:2]:
        await aassert_replays_clean(
            result.run_id, store=store, pipeline=pipeline, services=team.services()
        )


RECORDS = [
    QueryRecord("a", ("a",), 2.0, False),  # right
    QueryRecord("b", ("a", "b"), 1.5, False),  # right, two agents, top in the gold domain
    QueryRecord("c", ("c",), 0.5, True),  # gold in the set, but declined
    QueryRecord("d", ("a",), 1.0, False),  # wrong intent, wrong domain
    QueryRecord(OOS, ("a",), -1.0, True),  # declined: right
    QueryRecord(OOS, ("b",), 1.2, False),  # routed: wrong
]
TOY_DOMAINS = {"a": "x", "b": "x", "c": "y", "d": "y"}


def test_figures_of_the_runs_as_they_declined() -> None:
    f = figures(RECORDS, TOY_DOMAINS)
    assert f == ClincFigures(
        queries=6,
        in_scope=4,
        gold_in_set=0.75,
        domain=0.75,
        mean_agents=5 / 4,
        auroc=6 / 8,  # oos scores -1.0 and 1.2 against in-scope 2.0, 1.5, 0.5, 1.0
        oos_recall=0.5,
        in_scope_accuracy=0.5,
        accuracy=3 / 6,
    )


def test_figures_at_another_threshold_decline_by_the_score() -> None:
    f = figures(RECORDS, TOY_DOMAINS, threshold=1.3)
    # Declined now: c (0.5), d (1.0) and both oos (-1.0, 1.2); routed: a and b.
    assert (f.oos_recall, f.in_scope_accuracy, f.accuracy) == (1.0, 0.5, 4 / 6)
    assert f.mean_agents == 1.5
    assert (f.gold_in_set, f.domain, f.auroc) == (0.75, 0.75, 0.75)  # the threshold aside
    none = figures(RECORDS[:4], TOY_DOMAINS, threshold=float("-inf"))
    assert none.auroc is None and none.oos_recall is None and none.in_scope_accuracy == 0.75


def test_a_record_round_trips_through_the_run_details() -> None:
    for r in RECORDS:
        assert record_of({"gold": r.gold, "chosen": [], **record_details(r)}) == r
