"""AMRO-S pheromone routing, the arithmetic (arXiv 2603.12933).

A route picks one node per layer of an agent graph (one layer: plain model selection); edges
run from a node of one layer to a node of the next, from the start node ``^`` into layer 0.
For a query with task-type weights w_t(q):

* fused pheromone:   τ(q)ᵢⱼ = Σₜ w_t(q)·τᵗᵢⱼ          (one table per task type, τ₀ unseen)
* heuristic:         ηⱼ = a·abilityⱼ + b/(1 + loadⱼ) + c/(1 + latencyⱼ in s)
* transition:        P(j | i, q) ∝ τ(q)ᵢⱼ^α · ηⱼ^β    (sampled with the step's RNG, or argmax)
* learning (off the serving path, per accepted path P and task type t, on P's edges):
                     τᵗᵢⱼ ← (1 - ρ)·τᵗᵢⱼ + w_t(q)·Q / (cost(P) + ε), clamped to [τmin, τmax]

The paper gives no values for α, β, ρ, Q, the bounds or the buffer; *our choice*, as the design
notes say: α = 1, β = 2, ρ = 0.1, Q = 1, τ₀ = 1, ε = 1e-6, bounds [0.01, 10] (max-min ant
system), buffer 32. The heuristic's form and weights (a, b, c) = (0.5, 0.25, 0.25) are also
our choice. Every one is a parameter.

State is immutable and versioned: :func:`deposit` returns a new state whose ``parent`` is the
old state's key, so a decision records the exact version it read.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

from traces import hash_value

__all__ = [
    "START",
    "AMROParams",
    "Candidate",
    "PheromoneState",
    "Trajectory",
    "choose",
    "deposit",
    "fused",
    "heuristic",
    "transition",
]

START = "^"
_FROZEN = ConfigDict(frozen=True, extra="forbid")


class AMROParams(BaseModel):
    model_config = _FROZEN
    alpha: float = Field(default=1.0, ge=0)
    beta: float = Field(default=2.0, ge=0)
    rho: float = Field(default=0.1, gt=0, lt=1)
    q: float = Field(default=1.0, gt=0)
    tau0: float = Field(default=1.0, gt=0)
    epsilon: float = Field(default=1e-6, gt=0)
    tau_min: float = Field(default=0.01, gt=0)
    tau_max: float = Field(default=10.0, gt=0)
    buffer_size: int = Field(default=32, ge=1)
    heuristic_weights: tuple[float, float, float] = (0.5, 0.25, 0.25)

    @model_validator(mode="after")
    def _bounds(self) -> AMROParams:
        if not self.tau_min <= self.tau0 <= self.tau_max:
            raise ValueError(
                f"tau0={self.tau0} must lie within [tau_min, tau_max] = "
                f"[{self.tau_min}, {self.tau_max}]"
            )
        if any(w < 0 or not math.isfinite(w) for w in self.heuristic_weights):
            raise ValueError(f"heuristic weights must be finite and >= 0: {self.heuristic_weights}")
        return self


class PheromoneState(BaseModel):
    """Pheromone tables per task type: ``tables[task]["i->j"]``; unseen edges are τ₀."""

    model_config = _FROZEN
    format: str = "orch.amro-state/1"
    params: AMROParams = Field(default_factory=AMROParams)
    tables: dict[str, dict[str, float]] = Field(default_factory=dict)
    parent: str | None = None

    @property
    def version(self) -> str:
        return hash_value(self)

    def tau(self, task: str, src: str, dst: str) -> float:
        return self.tables.get(task, {}).get(f"{src}->{dst}", self.params.tau0)


class Candidate(BaseModel):
    """A node that can be chosen next, with what the heuristic needs."""

    model_config = _FROZEN
    name: str
    ability: float = Field(ge=0, le=1)
    """Normalised ability prior for the task (0..1)."""
    load: float = Field(default=0.0, ge=0)
    """Requests in flight or queued."""
    latency_s: float = Field(default=0.0, ge=0)
    """Typical response time in seconds."""


def _check_weights(weights: Mapping[str, float]) -> None:
    if not weights:
        raise ValueError("task-type weights are empty; fix: give at least one task type")
    bad = {t: w for t, w in weights.items() if not math.isfinite(w) or w < 0}
    if bad:
        raise ValueError(f"task-type weights must be finite and >= 0, got {bad}")
    total = sum(weights.values())
    if not math.isclose(total, 1.0, rel_tol=1e-9, abs_tol=1e-9):
        raise ValueError(f"task-type weights must sum to 1, got {total}; fix: normalise them")


def fused(state: PheromoneState, weights: Mapping[str, float], src: str, dst: str) -> float:
    """τ(q) on edge src->dst: the task tables mixed by the query's task-type weights."""
    _check_weights(weights)
    return sum(w * state.tau(t, src, dst) for t, w in sorted(weights.items()))


def heuristic(c: Candidate, weights: tuple[float, float, float] = (0.5, 0.25, 0.25)) -> float:
    a, b, w3 = weights
    return a * c.ability + b / (1.0 + c.load) + w3 / (1.0 + c.latency_s)


def transition(
    state: PheromoneState,
    weights: Mapping[str, float],
    src: str,
    candidates: Sequence[Candidate],
) -> list[dict[str, float | str]]:
    """Per candidate (in the order given): fused pheromone, heuristic, and probability."""
    if not candidates:
        raise ValueError("no candidates to route to; fix: give at least one agent node")
    p = state.params
    rows: list[dict[str, float | str]] = []
    for c in candidates:
        tau = fused(state, weights, src, c.name)
        eta = heuristic(c, p.heuristic_weights)
        rows.append({"name": c.name, "tau": tau, "eta": eta, "weight": tau**p.alpha * eta**p.beta})
    total = sum(float(r["weight"]) for r in rows)
    if total <= 0 or not math.isfinite(total):
        raise ValueError(f"transition weights sum to {total}; check abilities and parameters")
    for r in rows:
        r["p"] = float(r["weight"]) / total
    return rows


def choose(
    rows: Sequence[Mapping[str, float | str]], rng: random.Random | None
) -> tuple[str, float | None]:
    """Sample a candidate by probability with ``rng`` (the step's), or take the argmax when
    ``rng`` is None (ties by name). Returns (name, the uniform draw or None)."""
    if rng is None:
        top = max(float(r["p"]) for r in rows)
        best = min((r for r in rows if float(r["p"]) == top), key=lambda r: str(r["name"]))
        return str(best["name"]), None
    draw = rng.random()
    acc = 0.0
    for r in rows:
        acc += float(r["p"])
        if draw < acc:
            return str(r["name"]), draw
    return str(rows[-1]["name"]), draw  # rounding at the top end


class Trajectory(BaseModel):
    """A finished route: its task-type weights, its nodes in layer order, and its cost."""

    model_config = _FROZEN
    weights: dict[str, float]
    path: list[str] = Field(min_length=1)
    cost_usd: float = Field(ge=0)

    def edges(self) -> list[tuple[str, str]]:
        nodes = [START, *self.path]
        return list(itertools.pairwise(nodes))


def deposit(state: PheromoneState, accepted: Sequence[Trajectory]) -> PheromoneState:
    """Apply accepted trajectories in the order given; return the next state version."""
    p = state.params
    tables = {t: dict(edges) for t, edges in state.tables.items()}
    for traj in accepted:
        _check_weights(traj.weights)
        gain = p.q / (traj.cost_usd + p.epsilon)
        for task, w in sorted(traj.weights.items()):
            table = tables.setdefault(task, {})
            for src, dst in traj.edges():
                key = f"{src}->{dst}"
                old = table.get(key, p.tau0)
                new = (1 - p.rho) * old + w * gain
                table[key] = min(p.tau_max, max(p.tau_min, new))
    return PheromoneState(
        params=p,
        tables={t: dict(sorted(e.items())) for t, e in sorted(tables.items())},
        parent=state.version,
    )
