"""Adaptive time budgets: ``allocate()`` by hand, ``TimeBudget`` on a fake clock, the latency
history's nearest-rank quantiles and priors, and properties of the allocation."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tool_servers import FakeClock

from agents.tools import (
    Estimate,
    LatencyHistory,
    TimeBudget,
    ToolBroker,
    ToolConfigError,
    allocate,
)


def est(expected: float, p95: float | None = None, timeout: float = 30.0) -> Estimate:
    return Estimate(expected, expected if p95 is None else p95, timeout, 10)


# -- allocate(), by hand ------------------------------------------------------------------------


def test_share_is_proportional_to_expected_latency_among_the_remaining_calls() -> None:
    # 10 s left; this call expects 1 s, the two after it 2 s each: its share is 10 * 1/5.
    a = allocate(10.0, est(1.0, p95=4.0), [est(2.0), est(2.0)], safety=1.5)
    assert a.fits
    assert a.share_s == pytest.approx(2.0)
    assert a.cap_s == pytest.approx(6.0)  # p95 4 * safety 1.5
    assert a.timeout_s == pytest.approx(2.0)
    assert (a.remaining_s, a.expected_s) == (10.0, 1.0)


def test_the_last_call_may_have_everything_that_is_left_up_to_its_cap() -> None:
    a = allocate(10.0, est(1.0, p95=5.0), [], safety=1.5)
    assert a.share_s == pytest.approx(10.0)
    assert a.timeout_s == pytest.approx(7.5)


def test_the_cap_is_p95_times_safety() -> None:
    a = allocate(10.0, est(1.0, p95=2.0), [], safety=1.5)
    assert a.share_s == pytest.approx(10.0)
    assert a.cap_s == pytest.approx(3.0)
    assert a.timeout_s == pytest.approx(3.0)


def test_the_cap_is_also_the_tool_timeout() -> None:
    a = allocate(10.0, est(1.0, p95=10.0, timeout=4.0), [], safety=1.5)
    assert a.cap_s == pytest.approx(4.0)  # min(10 * 1.5, 4)
    assert a.timeout_s == pytest.approx(4.0)


def test_a_call_gets_at_least_its_expectation_when_the_budget_has_it() -> None:
    # Its proportional share is 10 * 1/101, far below the 1 s it is expected to take.
    a = allocate(10.0, est(1.0, p95=2.0), [est(100.0)], safety=1.5)
    assert a.share_s == pytest.approx(10 / 101)
    assert a.timeout_s == pytest.approx(1.0)


def test_the_expectation_floor_never_exceeds_what_is_left() -> None:
    a = allocate(1.0, est(1.0, p95=2.0), [est(100.0)], safety=1.5)
    assert a.fits
    assert a.timeout_s == pytest.approx(1.0)


def test_a_call_is_refused_when_less_than_its_expectation_is_left() -> None:
    a = allocate(0.5, est(1.0, p95=2.0), [est(3.0)], safety=1.5)
    assert not a.fits
    assert (a.timeout_s, a.share_s) == (0.0, 0.0)
    assert a.remaining_s == 0.5
    assert a.expected_s == 1.0
    assert a.cap_s == pytest.approx(3.0)


def test_a_negative_remainder_counts_as_nothing_left() -> None:
    a = allocate(-3.0, est(1.0), [], safety=1.5)
    assert not a.fits
    assert a.remaining_s == 0.0


def test_evidence_is_rounded_json() -> None:
    a = allocate(1.0, est(1 / 3, p95=1.0), [est(2 / 3)], safety=1.5)
    assert a.evidence() == {
        "allocated_s": 0.3333,
        "remaining_s": 1.0,
        "share_s": 0.3333,
        "cap_s": 1.5,
        "expected_s": 0.3333,
        "fits": True,
    }


# -- TimeBudget on a fake clock -----------------------------------------------------------------


ESTIMATES = {
    "a": est(1.0, p95=4.0),
    "b": est(1.0, p95=4.0),
    "c": est(2.0, p95=8.0),
    "x": est(1.0, p95=4.0),
}


def estimate_of(name: str) -> Estimate:
    return ESTIMATES[name]


@pytest.mark.parametrize("total", [0.0, -1.0, math.inf, math.nan])
def test_a_budget_must_be_a_positive_finite_time(total: float) -> None:
    with pytest.raises(ToolConfigError, match="time budget must be > 0"):
        TimeBudget(total)


@pytest.mark.parametrize("safety", [0.5, math.nan])
def test_the_safety_factor_must_be_at_least_one(safety: float) -> None:
    with pytest.raises(ToolConfigError, match="safety factor must be >= 1"):
        TimeBudget(5.0, safety=safety)


def test_the_clock_starts_at_the_first_allocation() -> None:
    clock = FakeClock()
    budget = TimeBudget(4.0, ["a", "b"], clock=clock)
    clock.advance(100.0)  # time before the first call does not count
    assert budget.remaining_s == 4.0
    assert clock.reads == 0
    budget.take("a", ESTIMATES["a"], estimate_of)
    clock.advance(1.5)
    assert budget.remaining_s == pytest.approx(2.5)
    clock.advance(10.0)
    assert budget.remaining_s == 0.0


def _second_allocation(first_took_s: float) -> float:
    clock = FakeClock()
    budget = TimeBudget(4.0, ["a", "b"], clock=clock)
    first = budget.take("a", ESTIMATES["a"], estimate_of)
    assert first.timeout_s == pytest.approx(2.0)  # 4 * 1/2: half is kept for b
    clock.advance(first_took_s)
    return budget.take("b", ESTIMATES["b"], estimate_of).timeout_s


def test_time_a_fast_call_leaves_flows_to_the_later_calls() -> None:
    fast = _second_allocation(0.5)
    slow = _second_allocation(2.0)
    assert fast == pytest.approx(3.5)  # the 1.5 s a left unused is b's
    assert slow == pytest.approx(2.0)
    assert fast > slow


def test_the_plan_tells_each_call_what_to_leave_time_for() -> None:
    budget = TimeBudget(10.0, ["a", "b", "c"], clock=FakeClock())
    assert budget.pending("a") == ["b", "c"]
    asked: list[str] = []

    def recording(name: str) -> Estimate:
        asked.append(name)
        return estimate_of(name)

    a = budget.take("a", ESTIMATES["a"], recording)
    assert asked == ["b", "c"]
    assert a.share_s == pytest.approx(10 * 1 / 4)
    assert budget.pending("b") == ["c"]


def test_an_extra_call_leaves_time_for_the_whole_plan_and_does_not_advance_it() -> None:
    clock = FakeClock()
    budget = TimeBudget(10.0, ["a", "b"], clock=clock)
    assert budget.pending("x") == ["a", "b"]
    extra = budget.take("x", ESTIMATES["x"], estimate_of)
    assert extra.share_s == pytest.approx(10 * 1 / 3)
    assert budget.pending("a") == ["b"]  # a is still next
    budget.take("a", ESTIMATES["a"], estimate_of)
    assert budget.pending("b") == []


def test_a_retry_of_a_planned_call_is_an_extra_that_keeps_time_for_the_rest() -> None:
    clock = FakeClock()
    budget = TimeBudget(8.0, ["a", "c"], clock=clock)
    first = budget.take("a", ESTIMATES["a"], estimate_of)
    assert first.share_s == pytest.approx(8 * 1 / 3)
    clock.advance(1.0)
    retry = budget.take("a", ESTIMATES["a"], estimate_of)  # a again: c is next in the plan
    assert retry.share_s == pytest.approx(7 * 1 / 3)
    assert budget.pending("c") == []
    clock.advance(1.0)
    last = budget.take("c", ESTIMATES["c"], estimate_of)
    assert last.share_s == pytest.approx(6.0)


def test_a_refused_call_does_not_use_up_its_place_in_the_plan() -> None:
    budget = TimeBudget(0.5, ["a", "b"], clock=FakeClock())
    refused = budget.take("a", ESTIMATES["a"], estimate_of)
    assert not refused.fits
    assert budget.pending("a") == ["b"]


def test_calls_after_the_plan_are_extras_with_nothing_to_leave_time_for() -> None:
    budget = TimeBudget(10.0, ["a"], clock=FakeClock())
    budget.take("a", ESTIMATES["a"], estimate_of)
    assert budget.pending("b") == []
    assert budget.take("b", ESTIMATES["b"], estimate_of).share_s == pytest.approx(10.0)


def test_a_budget_made_by_the_broker_runs_on_the_broker_clock() -> None:
    clock = FakeClock()
    budget = ToolBroker(clock=clock).budget(10.0, ["a"])
    budget.take("a", ESTIMATES["a"], estimate_of)
    clock.advance(4.0)
    assert budget.remaining_s == pytest.approx(6.0)


# -- LatencyHistory -----------------------------------------------------------------------------


def test_quantiles_of_no_samples_are_none() -> None:
    h = LatencyHistory()
    assert len(h) == 0
    assert h.quantile(0.5) is None


@pytest.mark.parametrize(
    ("q", "expected"),
    [(0.0, 1.0), (0.2, 1.0), (0.4, 2.0), (0.5, 3.0), (0.6, 3.0), (0.95, 5.0), (1.0, 5.0)],
)
def test_quantiles_are_nearest_rank(q: float, expected: float) -> None:
    h = LatencyHistory()
    for v in (5.0, 1.0, 4.0, 2.0, 3.0):
        h.add(v)
    assert h.quantile(q) == expected  # rank ceil(q * 5), at least 1, of the sorted values


def test_p50_and_p95_of_twenty_samples() -> None:
    h = LatencyHistory()
    for v in range(20, 0, -1):
        h.add(float(v))
    assert h.quantile(0.5) == 10.0
    assert h.quantile(0.95) == 19.0


def test_only_finite_non_negative_latencies_count() -> None:
    h = LatencyHistory()
    for v in (-1.0, math.nan, math.inf, 0.25):
        h.add(v)
    assert len(h) == 1
    assert h.quantile(0.5) == 0.25


def test_a_quantile_follows_the_latencies_added_after_it_was_read() -> None:
    h = LatencyHistory()
    for v in (3.0, 1.0, 2.0):
        h.add(v)
    assert h.quantile(1.0) == 3.0
    h.add(9.0)
    assert h.quantile(1.0) == 9.0
    assert h.quantile(0.0) == 1.0


def test_the_history_keeps_the_newest_window() -> None:
    h = LatencyHistory(window=3)
    for v in (1.0, 2.0, 3.0, 100.0):
        h.add(v)
    assert len(h) == 3
    assert h.quantile(0.0) == 2.0
    assert h.quantile(0.5) == 3.0


def test_quantiles_follow_new_samples() -> None:
    h = LatencyHistory()
    h.add(1.0)
    assert h.quantile(1.0) == 1.0
    h.add(9.0)
    assert h.quantile(1.0) == 9.0


def test_below_min_samples_the_prior_and_the_timeout_stand_in() -> None:
    h = LatencyHistory(min_samples=3)
    h.add(5.0)
    h.add(6.0)
    e = h.estimate(prior_s=0.2, timeout_s=30.0, safety=1.5)
    assert (e.expected_s, e.timeout_s, e.samples) == (0.2, 30.0, 2)
    assert e.p95_s == pytest.approx(20.0)  # timeout / safety
    # ... so the cap of such a call is the tool's own timeout.
    assert allocate(100.0, e, [], 1.5).cap_s == pytest.approx(30.0)


def test_from_min_samples_the_measured_quantiles_are_used() -> None:
    h = LatencyHistory(min_samples=3)
    for v in (3.0, 1.0, 2.0):
        h.add(v)
    assert h.estimate(prior_s=0.2, timeout_s=30.0, safety=1.5) == Estimate(2.0, 3.0, 30.0, 3)


# -- properties ---------------------------------------------------------------------------------


@st.composite
def estimates(draw: st.DrawFn) -> Estimate:
    expected = draw(st.floats(min_value=1e-3, max_value=100.0))
    p95 = expected * draw(st.floats(min_value=1.0, max_value=10.0))
    timeout = expected * draw(st.floats(min_value=1.0, max_value=20.0))
    return Estimate(expected, p95, timeout, draw(st.integers(0, 100)))


remainders = st.floats(min_value=-10.0, max_value=1e4)
safeties = st.floats(min_value=1.0, max_value=4.0)
laters = st.lists(estimates(), max_size=6)


@settings(max_examples=300, deadline=None)
@given(remainders, estimates(), laters, safeties)
def test_an_allocation_never_exceeds_what_is_left_nor_the_cap(
    remaining: float, current: Estimate, later: list[Estimate], safety: float
) -> None:
    a = allocate(remaining, current, later, safety)
    assert a.cap_s == min(current.p95_s * safety, current.timeout_s)
    assert 0.0 <= a.timeout_s <= max(remaining, 0.0)
    assert a.timeout_s <= a.cap_s


@settings(max_examples=300, deadline=None)
@given(remainders, estimates(), laters, safeties)
def test_refused_exactly_when_less_than_the_expectation_is_left(
    remaining: float, current: Estimate, later: list[Estimate], safety: float
) -> None:
    a = allocate(remaining, current, later, safety)
    assert a.fits == (max(remaining, 0.0) >= current.expected_s)
    if a.fits:
        assert a.timeout_s >= current.expected_s  # at least p50, the budget having it
    else:
        assert a.timeout_s == 0.0


@settings(max_examples=300, deadline=None)
@given(remainders, remainders, estimates(), laters, safeties)
def test_shares_are_monotone_in_the_remaining_budget(
    r1: float, r2: float, current: Estimate, later: list[Estimate], safety: float
) -> None:
    low, high = sorted((r1, r2))
    a, b = allocate(low, current, later, safety), allocate(high, current, later, safety)
    assert a.share_s <= b.share_s
    assert a.timeout_s <= b.timeout_s
    assert a.fits <= b.fits


@settings(max_examples=200, deadline=None)
@given(
    st.floats(min_value=0.1, max_value=100.0),
    st.lists(st.tuples(st.sampled_from("abcx"), st.floats(0.0, 1.0)), max_size=10),
)
def test_calls_that_keep_to_their_allocations_never_overrun_the_budget(
    total: float, calls: list[tuple[str, float]]
) -> None:
    clock = FakeClock()
    budget = TimeBudget(total, ["a", "b", "c"], clock=clock)
    for name, used in calls:
        a = budget.take(name, ESTIMATES[name], estimate_of)
        if a.fits:
            clock.advance(a.timeout_s * used)
    assert budget.remaining_s >= 0.0
    assert clock.now - 1000.0 <= total * (1 + 1e-9)
