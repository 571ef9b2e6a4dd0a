"""The ACAR table's parts on a hand-made dataset (no shared data needed): the rule judge,
the fixed-mode agent (same calls and answers as ACAR in each mode), the data views, and
every figure of the table worked out by hand."""

from __future__ import annotations

import pytest
from example_modules import dataset_or_skip
from pydantic import ValidationError

from routers.acar import judge_prompt
from routers.eval import Dataset, Price, Sample, Task
from routers.eval.acar_table import (
    AS_RECORDED,
    COLUMNS,
    REFERENCE,
    ACARSetup,
    FixedModeConfig,
    RuleJudge,
    acar_fixed,
    acar_table,
    as_recorded,
    configurations,
    covering,
    judged_responses,
    measure,
    mot_per_call_costs,
    pad_samples,
    paper_table,
    render,
    rule_pick,
    table_hub,
)
from routers.eval.adapters.mot import PROMPT_TOKENS
from routers.eval.harness import evaluate, router_pipeline
from routers.extract import extractor
from traces import MemoryStore
from traces.runview import load_run_view

COST = {"probe": 0.001, "strong": 0.01, "third": 0.002}

# id: (probe samples, strong, third, gold); '' is a response with no answer.
TASKS: dict[str, tuple[list[str], str, str, str]] = {
    "t0": (["A", "A", "A"], "A", "A", "A"),  # σ=0, right
    "t1": (["B", "B", "B"], "A", "A", "A"),  # σ=0, agreement-but-wrong
    "t2": (["A", "B", "A"], "B", "B", "B"),  # σ=0.5, both verifiers overturn the probes
    "t3": (["A", "B", "A"], "B", "C", "B"),  # σ=0.5, verifiers split: probe majority stays
    "t4": (["A", "B", "C"], "D", "A", "D"),  # σ=1, probe and third outvote the strong model
    "t5": (["A", "B", "C"], "D", "E", "D"),  # σ=1, all differ: the strong model's answer
    "t6": (["A"], "A", "B", "A"),  # failed probes dropped by the source: padded -> σ=1
    "t7": (["A", "", "A"], "A", "C", "A"),  # an unreadable probe is its own answer: σ=0.5
    "t8": (["A", "B", "C"], "X", "A", "A"),  # σ=1, the strong model is wrong
}


def sample(answer: str, gold: str, model: str) -> Sample:
    return Sample(
        answer=answer or None, score=float(answer == gold), cost_usd=COST[model], text=answer
    )


def tiny() -> Dataset:
    tasks = [
        Task(
            id=tid,
            question=f"Question {tid}: what is the answer?",
            gold=gold,
            responses={
                "probe": [sample(a, gold, "probe") for a in probes],
                "strong": [sample(strong, gold, "strong")],
                "third": [sample(third, gold, "third")],
            },
        )
        for tid, (probes, strong, third, gold) in TASKS.items()
    ]
    return pad_samples(Dataset(name="tiny-acar", tasks=tasks), "probe", 3)


SETUP = ACARSetup(probe="probe", strong="strong", third="third")


def test_as_recorded_is_a_registered_extractor() -> None:
    read = extractor(AS_RECORDED)
    assert read is as_recorded
    assert read("  05/01/2021 \n") == "05/01/2021"
    assert read("2.5") == "2.5"
    assert read("") is None and read("  \n ") is None


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


def test_hub_and_configs_refuse_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="share a model id"):
        table_hub(tiny(), [RuleJudge("strong", 0), RuleJudge("strong", 1)])
    clash = Dataset(
        name="clash", tasks=[Task(id="q", question="Q", responses={"rule-judge[strong]": []})]
    )
    with pytest.raises(ValueError, match="are model ids of dataset"):
        table_hub(clash, [RuleJudge("strong", 0)])
    with pytest.raises(ValidationError, match="only the full mode can run without them"):
        FixedModeConfig(**SETUP.acar_params("strong"), mode="two-model", probes=False)


def test_pad_samples_and_covering() -> None:
    data = tiny()
    t6 = next(t for t in data.tasks if t.id == "t6")
    assert [s.answer for s in t6.responses["probe"]] == ["A", None, None]
    assert [s.score for s in t6.responses["probe"]] == [1.0, 0.0, 0.0]
    assert t6.responses["probe"][2].cost_usd == COST["probe"]
    assert t6.meta == {"padded": {"probe": 2}}
    assert [t.id for t in data.tasks if "padded" in t.meta] == ["t6"]
    assert len(next(t for t in data.tasks if t.id == "t0").responses["probe"]) == 3
    with pytest.raises(ValueError, match="n must be >= 1"):
        pad_samples(data, "probe", 0)
    assert len(covering(data, ["probe", "strong"])) == 9
    assert covering(data, ["probe", "nobody"]).tasks == []


def test_mot_per_call_costs_charge_every_call_its_prompt() -> None:
    q = "x" * 400  # 100 question tokens at the adapter's 4 characters per token
    spread = [Sample(answer="1", score=1.0, input_tokens=37, output_tokens=40)] * 3
    data = Dataset(
        name="mot-date",
        tasks=[Task(id="date-1", question=q, responses={"gpt-4[cot1]": spread})],
    )
    out = mot_per_call_costs(data)
    tokens = [s.input_tokens for s in out.tasks[0].responses["gpt-4[cot1]"]]
    assert tokens == [PROMPT_TOKENS[("date", "cot1")] + 100] * 3 == [520] * 3
    assert [s.output_tokens for s in out.tasks[0].responses["gpt-4[cot1]"]] == [40] * 3
    with pytest.raises(ValueError, match="is not a MoT dataset"):
        mot_per_call_costs(data.model_copy(update={"name": "routerbench"}))


def test_mot_per_call_costs_leave_one_sample_files_as_the_adapter_has_them() -> None:
    data = dataset_or_skip("mot-date")
    test = data.split("test").select(limit=20)
    again = mot_per_call_costs(test)
    for before, after in zip(test.tasks, again.tasks, strict=True):
        # A greedy file has one sample per question, which carries the whole prompt already.
        one = "gpt-4[greedy_cot1]"
        assert after.responses[one][0].input_tokens == before.responses[one][0].input_tokens
        # A 20-sample file spread its prompt over the samples; now each call pays all of it.
        many = before.responses["gpt-3.5-turbo[cot1]"]
        per_call = after.responses["gpt-3.5-turbo[cot1]"][0].input_tokens
        assert per_call == pytest.approx(sum(s.input_tokens or 0 for s in many), abs=len(many))


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
            router_pipeline(acar_fixed.with_config(**params, mode=mode), f"fixed-{mode}"),
            data,
            store,
            services={"models": hub},
        )
        for a, f in zip(acar_run.results, fixed.results, strict=True):
            assert f.mode == mode and f.sigma == a.sigma
            if a.mode == mode:
                assert (f.answer, f.calls, f.score) == (a.answer, a.calls, a.score)
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


async def test_the_table_on_the_tiny_dataset_is_what_the_hand_count_says() -> None:
    measured = await measure(tiny(), SETUP, MemoryStore(), parallel=3)
    table = {str(row[0]): row for row in measured.tables()[0].rows}
    assert list(table) == [
        "single: weak (probe)",
        "single: third (third)",
        "single: strong (strong)",
        "probes only: weak x3, majority",
        "two models, always",
        "three models, always",
        REFERENCE,
        "three models, always · judge=strong",
        "σ-routing · judge=strong",
    ]
    col = {c: i for i, c in enumerate(COLUMNS)}

    def get(label: str, column: str) -> object:
        return table[label][col[column]]

    accuracy = {label: get(label, "accuracy") for label in table}
    assert accuracy == {
        "single: weak (probe)": round(4 / 9, 3),  # t0 t6 t7 t8
        "single: third (third)": round(4 / 9, 3),  # t0 t1 t2 t8
        "single: strong (strong)": round(8 / 9, 3),
        "probes only: weak x3, majority": round(4 / 9, 3),
        "two models, always": round(6 / 9, 3),
        "three models, always": round(8 / 9, 3),
        REFERENCE: round(6 / 9, 3),
        "three models, always · judge=strong": round(8 / 9, 3),
        "σ-routing · judge=strong": round(6 / 9, 3),
    }
    # Calls: 3 probes (single), +2 verifiers (two-model), +3 ensemble (full); the rule judge
    # is not a model call. Cost: probe $0.001, strong $0.01, third $0.002 per call.
    assert get(REFERENCE, "calls/task") == round((2 * 3 + 3 * 5 + 4 * 6) / 9, 2) == 5.0
    assert get("three models, always", "calls/task") == 3.0
    assert get("two models, always", "calls/task") == 5.0
    assert get(REFERENCE, "$ total") == pytest.approx(2 * 0.003 + 3 * 0.015 + 4 * 0.016)
    assert get("three models, always", "$ total") == pytest.approx(9 * 0.013)
    assert get("two models, always", "$/task") == pytest.approx(0.015)
    assert get("single: weak (probe)", "$ total") == pytest.approx(0.009)
    shares = [get(REFERENCE, m) for m in ("single", "two-model", "full")]
    assert shares == [round(2 / 9, 3), round(3 / 9, 3), round(4 / 9, 3)]
    assert [get("two models, always", m) for m in ("single", "two-model", "full")] == [
        None,
        1.0,
        None,
    ]
    assert get("single: strong (strong)", "single") is None
    # Agreement-but-wrong: t1 (probes agree on B, gold A), for every row that samples probes.
    assert get(REFERENCE, "agree-but-wrong") == round(1 / 9, 3)
    assert get("probes only: weak x3, majority", "agree-but-wrong") == round(1 / 9, 3)
    assert get("two models, always", "agree-but-wrong") == 0.0  # both verifiers outvote B
    assert get("three models, always", "agree-but-wrong") is None  # no probes, no σ
    assert measured.recoverable() == (1, 1)
    # McNemar against σ-routing: three always is right alone on t1 and t3, never the reverse.
    assert get(REFERENCE, "p vs σ-routing") is None
    assert get("three models, always", "p vs σ-routing") == 0.5
    mcn = {str(row[0]): row for row in measured.tables()[1].rows}
    assert REFERENCE not in mcn
    assert mcn["three models, always"] == ["three models, always", 9, round(8 / 9, 3), 2, 0, 0.5]
    # The two judge rules are wrong on different tasks: majority on t4, strong on t8.
    wrong = {
        label: sorted(r.task for r in measured.report(label).results if r.score < 1.0)
        for label in (REFERENCE, "σ-routing · judge=strong")
    }
    assert wrong == {REFERENCE: ["t1", "t3", "t4"], "σ-routing · judge=strong": ["t1", "t3", "t8"]}


async def test_measure_names_a_missing_role_model() -> None:
    with pytest.raises(ValueError, match=r"has no model \['nobody'\]"):
        await measure(
            tiny(), ACARSetup(probe="probe", strong="nobody", third="third"), MemoryStore()
        )


def test_tables_render_as_plain_text() -> None:
    text = render(paper_table())
    lines = text.splitlines()
    assert lines[0].startswith("ACAR paper, as reported")
    assert lines[1].split() == [
        "configuration",
        "accuracy",
        "$",
        "total",
        "single",
        "two-model",
        "full",
    ]
    assert "σ-routing                0.556    20.34   0.329      0.213  0.458" in text
    assert lines[3].split()[-3:] == ["—", "—", "—"]
    assert lines[-1].startswith("note: 1,510 tasks")
    with pytest.raises(ValueError, match="at least one configuration"):
        acar_table([], title="empty")


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
