"""The no-op pipelines ``chain`` and ``wide`` that the benchmarks time and the hash tests pin.

Their agents do nothing but pass a number on (``noop``) or count what they gather
(``gather``), so that a run of them costs what the engine costs. What is hashed must never
change here: the agents' names and versions, the models' fields, the pipelines' names and
node ids are part of every record made from them, and ``tests/orch/test_effects_reading.py``
pins the root hashes of runs of ``chain`` and ``wide`` (each caller picks the pipeline's name
and how wide node numbers are padded, as its records always had them).

Imported by name (``from _shapes import ...``): a benchmark run as ``python
tests/benchmarks/X.py`` has this folder first on ``sys.path``, and a test puts it there.
"""

from __future__ import annotations

from pydantic import BaseModel

from orch import Context, Pipeline, PipelineBuilder, agent

__all__ = ["Many", "Num", "chain", "gather", "noop", "wide"]


class Num(BaseModel):
    x: int


class Many(BaseModel):
    xs: list[int]


@agent(name="noop", version="1")
async def noop(n: Num, ctx: Context) -> Num:
    return n


@agent(name="gather", version="1")
async def gather(m: Many, ctx: Context) -> Num:
    return Num(x=len(m.xs))


def chain(name: str, n: int, *, pad: int = 0) -> Pipeline:
    """Pipeline ``name``: input ``x``, then ``n`` ``noop`` nodes ``n0`` ... (numbers zero-padded
    to ``pad`` digits), each consuming the previous node's output."""
    p = PipelineBuilder(name)
    prev = p.node(f"n{0:0{pad}d}", noop, x=p.input("x", int))
    for i in range(1, n):
        prev = p.node(f"n{i:0{pad}d}", noop, x=prev.field("x"))
    return p.build()


def wide(name: str, n: int, *, pad: int = 0) -> Pipeline:
    """Pipeline ``name``: input ``x``, a ``noop`` node ``source``, ``n`` ``noop`` nodes ``n0``
    ... (numbers zero-padded to ``pad`` digits) each consuming its output, and a ``gather``
    node ``sink`` taking all ``n`` outputs (fan-out, fan-in)."""
    p = PipelineBuilder(name)
    src = p.node("source", noop, x=p.input("x", int))
    mids = [p.node(f"n{i:0{pad}d}", noop, x=src.field("x")) for i in range(n)]
    p.node("sink", gather, xs=[m.field("x") for m in mids])
    return p.build()
