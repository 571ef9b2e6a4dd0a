"""Root hashes depend on pipeline, inputs and seed only: never on completion order."""

from __future__ import annotations

from pathlib import Path

import anyio
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from orch import Context, Pipeline, PipelineBuilder, Selection, agent, arun
from orch._loader import load_pipeline
from orch.testing import ShuffledCompletion, assert_order_independent
from traces import MemoryStore


class Num(BaseModel):
    x: int


class Many(BaseModel):
    xs: list[int]


class Route(Selection):
    pass


@agent(name="noisy", version="1")
async def noisy(n: Num, ctx: Context) -> Num:
    return Num(x=n.x + ctx.rng.randrange(100))


@agent(name="spread", version="1")
async def spread(n: Num, ctx: Context) -> Num:
    outs = await ctx.map(noisy, [Num(x=n.x + i) for i in range(6)])
    best = max(range(len(outs)), key=lambda i: (outs[i].x, i))
    ctx.decide(
        candidates=[str(i) for i in range(len(outs))],
        chosen=str(best),
        reason="highest",
        scores={str(i): o.x for i, o in enumerate(outs)},
    )
    return outs[best]


@agent(name="gather", version="1")
async def gather(m: Many, ctx: Context) -> Num:
    return Num(x=sum(m.xs))


@agent(name="route", version="1")
async def route(n: Num, ctx: Context) -> Route:
    return Route(branches=["hi" if n.x > 150 else "lo"])


def wide(width: int) -> Pipeline:
    p = PipelineBuilder(f"wide-{width}")
    x = p.input("x", int)
    mids = [p.node(f"m{i}", spread if i % 2 else noisy, x=x) for i in range(width)]
    g = p.node("gather", gather, xs=[m.field("x") for m in mids])
    r = p.node("route", route, x=g.field("x"))
    p.node("hi", noisy, x=g.field("x"), when=r.selects("hi"))
    p.node("lo", noisy, x=g.field("x"), when=r.selects("lo"))
    return p.build()


PIPELINES = {w: wide(w) for w in (2, 5, 9)}


async def test_same_inputs_and_seed_give_the_same_root_hash_twice() -> None:
    pipe = PIPELINES[5]
    a = await arun(pipe, {"x": 3}, store=MemoryStore(), seed=11)
    b = await arun(pipe, {"x": 3}, store=MemoryStore(), seed=11)
    assert a.root_hash == b.root_hash
    assert a.run_id != b.run_id  # the run id is metadata, outside the root hash


@settings(max_examples=25, deadline=None)
@given(
    width=st.sampled_from(sorted(PIPELINES)),
    x=st.integers(min_value=-50, max_value=50),
    seed=st.integers(min_value=0, max_value=2**32),
    shuffle=st.integers(min_value=0, max_value=2**32),
    limit=st.sampled_from([1, 2, 64]),
)
def test_shuffled_completion_order_gives_the_same_root_hash(
    width: int, x: int, seed: int, shuffle: int, limit: int
) -> None:
    pipe = PIPELINES[width]

    async def both() -> None:
        plain = await arun(pipe, {"x": x}, store=MemoryStore(), seed=seed)
        perturb = ShuffledCompletion(shuffle, max_delay=0.003)
        shuffled = await arun(
            pipe,
            {"x": x},
            store=MemoryStore(),
            seed=seed,
            perturb=perturb,
            max_concurrency=limit,
        )
        assert shuffled.root_hash == plain.root_hash
        assert shuffled.outputs == plain.outputs
        assert len(perturb.order) == len(plain.record.steps) - 1  # every step but the skipped

    anyio.run(both)


async def test_completion_order_really_is_shuffled() -> None:
    """Guard against a vacuous property: different shuffle seeds give different orders."""
    orders = set()
    for s in range(4):
        perturb = ShuffledCompletion(s, max_delay=0.003)
        await arun(PIPELINES[9], {"x": 1}, store=MemoryStore(), perturb=perturb)
        orders.add(tuple(perturb.order))
    assert len(orders) > 1


async def test_assert_order_independent_helper() -> None:
    result = await assert_order_independent(PIPELINES[5], {"x": 2}, seed=4, shuffles=3)
    assert result.ok


async def test_different_seed_changes_the_root_hash() -> None:
    a = await arun(PIPELINES[2], {"x": 1}, store=MemoryStore(), seed=1)
    b = await arun(PIPELINES[2], {"x": 1}, store=MemoryStore(), seed=2)
    assert a.root_hash != b.root_hash


# -- the diamond fixture and a wide fan-out of ctx.parallel children -----------------------------

FIXTURE = str(Path(__file__).parents[1] / "fixtures" / "pipelines.py")
DIAMOND = load_pipeline(f"{FIXTURE}:pipeline")


@agent(name="fan", version="1")
async def fan(n: Num, ctx: Context) -> Many:
    outs = await ctx.parallel([(noisy, Num(x=n.x + i)) for i in range(8)])
    return Many(xs=[o.x for o in outs])


class Lists(BaseModel):
    xss: list[list[int]]


@agent(name="flatten", version="1")
async def flatten(m: Lists, ctx: Context) -> Many:
    return Many(xs=[x for xs in m.xss for x in xs])


def fan_out(width: int) -> Pipeline:
    p = PipelineBuilder(f"fan-{width}")
    x = p.input("x", int)
    fans = [p.node(f"f{i}", fan, x=x) for i in range(width)]
    p.node("flatten", flatten, xss=[f.field("xs") for f in fans])
    return p.build()


FAN = fan_out(6)


def _same_hash_shuffled(pipe: Pipeline, inputs: dict[str, int], seed: int, shuffle: int) -> None:
    async def both() -> None:
        plain = await arun(pipe, inputs, store=MemoryStore(), seed=seed)
        perturb = ShuffledCompletion(shuffle, max_delay=0.002)
        shuffled = await arun(pipe, inputs, store=MemoryStore(), seed=seed, perturb=perturb)
        assert plain.ok and shuffled.ok
        assert shuffled.root_hash == plain.root_hash
        assert len(perturb.order) == len(plain.record.steps)

    anyio.run(both)


@settings(max_examples=25, deadline=None)
@given(
    x=st.integers(min_value=-1000, max_value=1000),
    seed=st.integers(min_value=0, max_value=2**32),
    shuffle=st.integers(min_value=0, max_value=2**32),
)
def test_diamond_root_hash_ignores_completion_order(x: int, seed: int, shuffle: int) -> None:
    _same_hash_shuffled(DIAMOND, {"x": x}, seed, shuffle)


@settings(max_examples=25, deadline=None)
@given(
    x=st.integers(min_value=-1000, max_value=1000),
    seed=st.integers(min_value=0, max_value=2**32),
    shuffle=st.integers(min_value=0, max_value=2**32),
)
def test_parallel_children_root_hash_ignores_completion_order(
    x: int, seed: int, shuffle: int
) -> None:
    _same_hash_shuffled(FAN, {"x": x}, seed, shuffle)


async def test_diamond_twice_gives_the_same_root_hash() -> None:
    a = await arun(DIAMOND, {"x": 3}, store=MemoryStore(), seed=5)
    b = await arun(DIAMOND, {"x": 3}, store=MemoryStore(), seed=5)
    c = await arun(DIAMOND, {"x": 4}, store=MemoryStore(), seed=5)
    assert a.root_hash == b.root_hash
    assert a.record == b.record
    assert c.root_hash != a.root_hash  # other inputs, other record


async def test_seed_changes_the_hash_only_through_rng() -> None:
    """The diamond draws no randomness: its outputs do not change with the seed, but the seed
    is recorded, so the root hash does; the fan-out's outputs change with the seed."""
    d1 = await arun(DIAMOND, {"x": 3}, store=MemoryStore(), seed=1)
    d2 = await arun(DIAMOND, {"x": 3}, store=MemoryStore(), seed=2)
    assert d1.outputs["sum"].x == d2.outputs["sum"].x
    assert d1.record.steps_root == d2.record.steps_root
    f1 = await arun(FAN, {"x": 3}, store=MemoryStore(), seed=1)
    f2 = await arun(FAN, {"x": 3}, store=MemoryStore(), seed=2)
    assert f1.outputs != f2.outputs
    assert f1.record.steps_root != f2.record.steps_root
    assert f1.root_hash != f2.root_hash


async def test_fan_out_children_really_complete_in_shuffled_orders() -> None:
    orders = set()
    for s in range(3):
        perturb = ShuffledCompletion(s, max_delay=0.002)
        await arun(FAN, {"x": 0}, store=MemoryStore(), perturb=perturb)
        orders.add(tuple(perturb.order))
        assert sorted(perturb.order) == sorted(
            [f"f{i}" for i in range(6)]
            + [f"f{i}/{j}" for i in range(6) for j in range(8)]
            + ["flatten"]
        )
    assert len(orders) > 1
