"""Run diffs: inputs, steps, decisions and outputs that differ, named precisely."""

from __future__ import annotations

from pydantic import BaseModel

from orch import Context, PipelineBuilder, agent
from orch._runtime import run
from traces import MemoryStore
from traces._diff import diff_runs, value_changes


class Num(BaseModel):
    x: int


@agent(name="pick", version="1")
async def pick(n: Num, ctx: Context) -> Num:
    chosen = "big" if n.x > 5 else "small"
    ctx.decide(candidates=["big", "small"], chosen=chosen, reason=f"x={n.x}")
    return Num(x=n.x * 2)


def test_diff_of_two_inputs() -> None:
    p = PipelineBuilder("d")
    a = p.node("a", pick, x=p.input("x", int))
    p.node("b", pick, x=a.field("x"))
    pipe = p.build()
    store = MemoryStore()
    r1 = run(pipe, {"x": 1}, store=store)
    r2 = run(pipe, {"x": 7}, store=store)
    r3 = run(pipe, {"x": 1}, store=store)
    assert diff_runs(store, r1.run_id, r3.run_id).identical
    d = diff_runs(store, r1.run_id, r2.run_id)
    assert not d.identical and not d.same_root
    assert d.header == ["input x $: 1 -> 7"]
    steps = {s.step_id: s.details for s in d.steps}
    assert "decision #0 chose ['small'] -> ['big']" in steps["a"]
    assert "output $.x: 2 -> 14" in steps["a"]
    assert d.outputs == ["b $.x: 4 -> 28"]


def test_value_changes_paths() -> None:
    assert value_changes({"a": [1, 2]}, {"a": [1, 3], "b": True}) == [
        "$.a[1]: 2 -> 3",
        "$.b: (absent) -> True",
    ]
    assert value_changes(1, 1.0) == ["$: 1 -> 1.0"]
