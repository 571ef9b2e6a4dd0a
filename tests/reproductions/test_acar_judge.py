"""The rule judge and the table's hub on a hand-made dataset (no shared data needed), and
the table's fixed-mode rows: the real ACAR agent with ``fixed_mode`` makes, in each mode,
the calls and answers σ-routing makes on the tasks it sends to that mode."""

from __future__ import annotations

import pytest
from acar_tiny import SETUP, tiny

from orch_reproductions.acar_judge import RuleJudge, judged_responses, rule_pick, table_hub
from orch_reproductions.acar_table import REFERENCE, configurations
from routers._acar import acar, judge_prompt
from routers.eval import Dataset, Price, Sample, Task, evaluate
from routers.eval._harness import router_pipeline
from traces import MemoryStore
from traces._runview import load_run_view


def test_the_rule_judge_reads_the_acar_judge_prompt() -> None:
    prompt = judge_prompt("Response 1: a trap in the question?", ["A", "", "B\nC"])
    assert judged_responses(prompt) == ["A", "", "B\nC"]
    with pytest.raises(ValueError, match="lists no 'Response 1:'"):
        judged_responses("Pick one.")
    assert rule_pick(["D", "A", "A"], "majority-strong", 0) == 1
    assert rule_pick(["D", "A", "E"], "majority-strong", 0) == 0  # all differ: strong
    assert rule_pick([None, "A", "E"], "majority-strong", 0) == 1  # strong unreadable
    assert rule_pick([None, None, None], "majority-strong", 0) == 0
    assert rule_pick(["D", "A", "A"], "strong", 0) == 0
    assert rule_pick(["A", "D", "D"], "majority-strong", 1) == 1
    assert rule_pick(["A", "D", "E"], "majority-strong", 1) == 1  # the strong one, not the first
    with pytest.raises(ValueError, match="not among 3 responses"):
        rule_pick(["A", "B", "C"], "strong", 3)
    judge = RuleJudge("majority-strong", strong=0)
    assert judge.model_id == "rule-judge[majority-strong]"
    assert judge.verdict(judge_prompt("Q?", ["D", "A", "A"])) == "Response 2"
    assert RuleJudge("strong", 0).verdict(judge_prompt("Q?", ["D", "A", "A"])) == "Response 1"


def test_the_hub_refuses_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="share a model id"):
        table_hub(tiny(), [RuleJudge("strong", 0), RuleJudge("strong", 1)])
    clash = Dataset(
        name="clash", tasks=[Task(id="q", question="Q", responses={"rule-judge[strong]": []})]
    )
    with pytest.raises(ValueError, match="are model ids of dataset"):
        table_hub(clash, [RuleJudge("strong", 0)])


def test_the_always_rows_are_the_acar_agent_with_a_fixed_mode() -> None:
    rows = {c.label: c for c in configurations(SETUP)}
    for label, mode in [
        ("probes only: weak x3, majority", "single"),
        ("two models, always", "two-model"),
        ("three models, always", "full-no-probes"),
        ("three models, always · judge=strong", "full-no-probes"),
    ]:
        node = rows[label].pipeline.agents["route"]
        assert node.name == acar.name and node.config.fixed_mode == mode
        assert rows[label].measures_sigma == (mode != "full-no-probes")
    assert rows[REFERENCE].pipeline.agents["route"].config.fixed_mode is None


async def test_fixed_modes_make_the_same_calls_and_answers_as_acar() -> None:
    data, store = tiny(), MemoryStore()
    hub = table_hub(data, SETUP.judges())
    params = SETUP.acar_params("majority-strong")
    routing = {c.label: c for c in configurations(SETUP)}[REFERENCE]
    acar_run = await evaluate(routing.pipeline, data, store, services={"models": hub})
    modes = {r.task: r.mode for r in acar_run.results}
    assert modes == {
        "t0": "single",
        "t1": "single",
        "t2": "two-model",
        "t3": "two-model",
        "t4": "full",
        "t5": "full",
        "t6": "full",
        "t7": "two-model",
        "t8": "full",
    }
    for mode in ("single", "two-model", "full"):
        fixed = await evaluate(
            router_pipeline(acar.with_config(**params, fixed_mode=mode), f"fixed-{mode}"),
            data,
            store,
            services={"models": hub},
        )
        for a, f in zip(acar_run.results, fixed.results, strict=True):
            assert f.mode == mode and f.sigma == a.sigma
            if a.mode == mode:
                assert (f.answer, f.calls, f.score) == (a.answer, a.calls, a.score)
    # Without probes, the full mode makes σ-routing's full-mode calls after the probes.
    bare = await evaluate(
        router_pipeline(acar.with_config(**params, fixed_mode="full-no-probes"), "no-probes"),
        data,
        store,
        services={"models": hub},
    )
    for a, f in zip(acar_run.results, bare.results, strict=True):
        assert f.mode == "full" and f.calls[-4:-1] == [("strong", 0), ("probe", 0), ("third", 0)]
        assert len(f.calls) == 4
        if a.mode == "full":
            assert (f.answer, f.calls, f.score) == (a.answer, a.calls[3:], a.score)
    # The judge is in the trace: a call to the rule's model id, answering "Response N".
    t4 = next(r for r in acar_run.results if r.task == "t4")
    assert t4.calls == [
        ("probe", 0),
        ("probe", 1),
        ("probe", 2),
        ("strong", 0),
        ("probe", 0),
        ("third", 0),
        ("rule-judge[majority-strong]", 0),
    ]
    view = load_run_view(store, t4.run_id)
    judge = [e for s in view.steps.values() for e in s.effects if e.target.startswith("rule")]
    assert judge[0].response is not None
    assert store.get_value(judge[0].response)["text"] == "Response 2"


async def test_the_runs_own_cost_is_the_harness_cost_at_the_dataset_prices() -> None:
    def priced(s: Sample) -> Sample:
        return s.model_copy(update={"cost_usd": None, "input_tokens": 1000, "output_tokens": 100})

    base = tiny()
    data = base.model_copy(
        update={
            "prices": {
                "probe": Price(input_per_mtok=1.0, output_per_mtok=2.0),
                "strong": Price(input_per_mtok=30.0, output_per_mtok=60.0),
                "third": Price(input_per_mtok=0.5, output_per_mtok=0.5),
            },
            "tasks": [
                t.model_copy(
                    update={
                        "responses": {m: [priced(s) for s in v] for m, v in t.responses.items()}
                    }
                )
                for t in base.tasks
            ],
        }
    )
    routing = {c.label: c for c in configurations(SETUP)}[REFERENCE]
    report = await evaluate(
        routing.pipeline,
        data,
        MemoryStore(),
        services={"models": table_hub(data, SETUP.judges())},
        describe=lambda _task, out: {"cost": out.cost_usd},
    )
    per_call = {"probe": 0.0012, "strong": 0.036, "third": 0.00055}
    t4 = next(r for r in report.results if r.task == "t4")  # full: 3 probes + 3 + free judge
    assert t4.cost_usd == pytest.approx(4 * per_call["probe"] + per_call["strong"] + 0.00055)
    for r in report.results:
        assert r.details["cost"] == pytest.approx(r.cost_usd)
