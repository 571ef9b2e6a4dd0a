"""The data views for the MoT recordings: padding dropped samples, the tasks every model
answered (on a hand-made dataset), and every call paying its whole prompt (also on the
shared DATE recordings, skipped when they are absent)."""

from __future__ import annotations

import pytest
from acar_tiny import COST, tiny
from example_modules import dataset_or_skip

from orch_reproductions.adapters.mot import PROMPT_TOKENS
from orch_reproductions.mot_views import covering, mot_per_call_costs, pad_samples
from routers.eval import Dataset, Sample, Task


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
