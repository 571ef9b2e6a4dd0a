"""The set measures of TCAR-style routing and CLINC's out-of-scope measures, against values
computed by hand, the empty-set convention, and properties."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routers.eval._setmetrics import (
    OOS,
    RoutedOutcome,
    SetScore,
    label_macro_average,
    micro_average,
    sample_average,
    set_score,
    summarize,
)


def approx(s: SetScore | None, p: float, r: float, f: float) -> bool:
    assert s is not None
    return bool(
        s.precision == pytest.approx(p)
        and s.recall == pytest.approx(r)
        and s.f1 == pytest.approx(f)
    )


def test_set_score_by_hand() -> None:
    assert approx(set_score(["a"], ["a"]), 1, 1, 1)
    assert approx(set_score(["a", "b"], ["a"]), 0.5, 1, 2 / 3)
    assert approx(set_score(["a", "b", "c"], ["a", "b"]), 2 / 3, 1, 0.8)
    assert approx(set_score(["a"], ["a", "b"]), 1, 0.5, 2 / 3)
    assert approx(set_score(["b"], ["a"]), 0, 0, 0)
    # Duplicates do not count twice: a set is a set.
    assert approx(set_score(["a", "a", "b"], ["a"]), 0.5, 1, 2 / 3)


def test_empty_sets_score_as_the_label_oos() -> None:
    # A correct decline is perfect, a wrong decline or a missed decline is worth nothing.
    assert approx(set_score([], []), 1, 1, 1)
    assert approx(set_score([], ["a"]), 0, 0, 0)
    assert approx(set_score(["a", "b"], []), 0, 0, 0)
    for p, g in [([], []), ([], ["a"]), (["a"], []), (["a", "b"], [])]:
        as_label = set_score(p or [OOS], g or [OOS])
        assert set_score(p, g) == as_label


def test_averages_by_hand() -> None:
    pairs: list[tuple[list[str], list[str]]] = [(["a", "b"], ["a"]), ([], []), (["c"], ["a"])]
    per = [set_score(p, g) for p, g in pairs]
    assert approx(sample_average(per), 0.5, 2 / 3, (2 / 3 + 1 + 0) / 3)
    # Pooled: predicted {a,b},{oos},{c}; gold {a},{oos},{a}: 2 hits of 4 chosen and 3 wanted.
    assert approx(micro_average(pairs), 0.5, 2 / 3, 4 / 7)
    # Per label: a (P 1, R 1/2), b (0, 0), c (0, 0), oos (1, 1).
    assert approx(label_macro_average(pairs), 0.5, 0.375, (2 / 3 + 1) / 4)
    assert sample_average([]) is None
    assert micro_average([]) is None
    assert label_macro_average([]) is None


def outcomes() -> list[RoutedOutcome]:
    return [
        # right domain, right intent
        RoutedOutcome.of(
            ["banking"],
            ["banking"],
            "balance",
            "balance",
            gold_group="banking",
            top_group="banking",
            predicted_group="banking",
        ),
        # two agents, the gold one second; the refiner stated a conflict
        RoutedOutcome.of(
            ["travel"],
            ["banking", "travel"],
            "book_flight",
            None,
            gold_group="travel",
            top_group="banking",
        ),
        # an in-scope query declined by the router
        RoutedOutcome.of(["work"], [OOS], "pto_balance", OOS, gold_group="work"),
        # out of scope, declined by the router
        RoutedOutcome.of([], [OOS], OOS, OOS),
        # out of scope, routed, declined by the agent
        RoutedOutcome.of([], ["meta"], OOS, OOS, top_group="meta"),
        # out of scope, answered with an intent
        RoutedOutcome.of([], ["home"], OOS, "smart_home", top_group="home", predicted_group="home"),
    ]


def test_summary_by_hand() -> None:
    s = summarize(outcomes())
    assert (s.tasks, s.in_scope, s.out_of_scope) == (6, 3, 3)
    # Per query P/R/F1: (1,1,1) (1/2,1,2/3) (0,0,0) (1,1,1) (0,0,0) (0,0,0).
    assert approx(s.set_mean, 2.5 / 6, 3 / 6, (1 + 2 / 3 + 1) / 6)
    assert approx(s.set_mean_in_scope, 1.5 / 3, 2 / 3, (1 + 2 / 3) / 3)
    assert s.route_accuracy == pytest.approx(3 / 6)
    assert s.route_accuracy_in_scope == pytest.approx(2 / 3)
    assert s.top_accuracy == pytest.approx(1 / 3)
    assert s.domain_accuracy == pytest.approx(1 / 3)
    assert s.answer_domain_accuracy == pytest.approx(1 / 3)
    assert s.route_oos_recall == pytest.approx(1 / 3)
    assert s.mean_agents == pytest.approx(5 / 6)
    assert s.mean_agents_in_scope == pytest.approx(1.0)
    assert s.mean_agents_routed == pytest.approx(5 / 4)
    assert s.multi_agent_share == pytest.approx(1 / 6)
    assert s.accuracy == pytest.approx(3 / 6)
    assert s.in_scope_accuracy == pytest.approx(1 / 3)
    assert s.oos_recall == pytest.approx(2 / 3)
    assert s.false_decline_rate == pytest.approx(1 / 3)
    assert s.oos_precision == pytest.approx(2 / 3)
    assert s.no_answer_share == pytest.approx(1 / 6)
    data = s.as_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["set_mean"] == {"precision": 0.416667, "recall": 0.5, "f1": 0.444444}


def test_routed_outcome_reads_oos_routes_as_empty_sets() -> None:
    o = RoutedOutcome.of([OOS], [OOS], OOS, OOS)
    assert o.gold_agents == frozenset() and o.chosen == () and not o.in_scope
    assert RoutedOutcome.of(["a"], ["b", "a"], "x", None).chosen == ("b", "a")


def test_a_summary_of_nothing_and_of_one_side_only() -> None:
    empty = summarize([])
    assert empty.tasks == 0 and empty.set_mean is None and empty.accuracy is None
    only_oos = summarize([RoutedOutcome.of([], [], OOS, OOS)])
    assert only_oos.in_scope_accuracy is None and only_oos.false_decline_rate is None
    assert only_oos.oos_recall == 1.0 and only_oos.mean_agents_routed is None
    assert only_oos.domain_accuracy is None


labels = st.sets(st.sampled_from(["a", "b", "c", "d"]), max_size=4)


@given(labels, labels)
def test_set_scores_are_bounded_and_f1_is_symmetric(p: set[str], g: set[str]) -> None:
    s, t = set_score(p, g), set_score(g, p)
    assert 0 <= s.precision <= 1 and 0 <= s.recall <= 1 and 0 <= s.f1 <= 1
    assert s.f1 == pytest.approx(t.f1)
    assert s.precision == pytest.approx(t.recall) and s.recall == pytest.approx(t.precision)
    assert (s.f1 == 1.0) == (p == g)


@given(st.lists(st.tuples(labels, labels), min_size=1, max_size=8))
def test_micro_equals_sample_average_when_every_set_is_a_singleton_or_empty(
    pairs: list[tuple[set[str], set[str]]],
) -> None:
    single = [({sorted(p)[0]} if p else set(), {sorted(g)[0]} if g else set()) for p, g in pairs]
    micro = micro_average(single)
    mean = sample_average([set_score(p, g) for p, g in single])
    assert micro is not None and mean is not None
    # One label each side: every query has precision = recall = F1 = hit, so all agree.
    assert micro.f1 == pytest.approx(mean.f1)
    assert micro.precision == pytest.approx(mean.precision)
