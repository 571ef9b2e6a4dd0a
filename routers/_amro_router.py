"""AMRO-S as agents: the serving router and the off-path learner (arXiv 2603.12933).

**Serving** (:data:`amro_router`): infer the query's task-type weights w_t(q), then pick one
node per layer of the agent graph with P(j | i, q) ∝ τ(q)ᵢⱼ^α · ηⱼ^β, sampled with the step's
seeded RNG (or the argmax in exploit mode), and run the chosen nodes in layer order, each
later layer refining the answer of the one before. Serving never writes pheromones: it reads
one state version, names it in every decision, and returns a :class:`AMROResult` from which a
learning entry can be made.

**Learning** (:data:`amro_learn`): finished trajectories are sampled into a
:class:`TrajectoryBuffer`; when it is full, its batch goes through a quality gate (gold labels
in evaluation, or a judge model) and the accepted paths deposit pheromone, as one recorded
step whose output is the next state version.

*Our choices* (the paper leaves them open): a node's ability for a query is the w-weighted
mean of its per-task-type abilities, 0.5 for a task type it does not list; a later layer sees
the question and the previous layer's answer; sampling into the buffer is by a hash of the
question and a seed, so it is reproducible; the judge gate asks for a yes/no verdict.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agents.models import ChatMessage, ChatRequest, ModelHub
from orch import Context, agent
from routers._amro import (
    AMROParams,
    Candidate,
    PheromoneState,
    Trajectory,
    choose,
    deposit,
    transition,
)
from routers._extract import extractor
from routers._intent import IntentModel, LabelledExample, NearestExamples
from routers._state import register_state_format

__all__ = [
    "AMROConfig",
    "AMROLearnBatch",
    "AMROLearnConfig",
    "AMROQuery",
    "AMROResult",
    "AgentNode",
    "LearnEntry",
    "TrajectoryBuffer",
    "amro_learn",
    "amro_router",
]

DEFAULT_ABILITY = 0.5


def _finite_unit(values: dict[str, float], what: str) -> dict[str, float]:
    bad = {k: v for k, v in values.items() if not (math.isfinite(v) and 0.0 <= v <= 1.0)}
    if bad:
        raise ValueError(f"{what} must be finite numbers in [0, 1], got {bad}")
    return values


class AgentNode(BaseModel):
    """A node of the agent graph: a model in a role, with its ability prior per task type."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(min_length=1)
    model: str = Field(min_length=1)
    role: str = ""
    """Instruction for this node's stage (empty: answer the question)."""
    ability: dict[str, float] = Field(default_factory=dict)
    latency_s: float = Field(default=0.0, ge=0, allow_inf_nan=False)

    @field_validator("ability")
    @classmethod
    def _ability(cls, v: dict[str, float]) -> dict[str, float]:
        return _finite_unit(v, "ability priors")


class AMROConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    layers: list[list[AgentNode]] = Field(min_length=1)
    """One list of nodes per stage; a single layer is plain model selection."""
    params: AMROParams | None = None
    """Expected parameters: the state version carries the ones used (learning needs them
    too); when given here, a state with other parameters is refused rather than silently
    used."""
    intent_examples: list[LabelledExample] = Field(default_factory=list)
    intent_k: int = Field(default=5, ge=1)
    intent_service: str | None = None
    """Name of a service with ``infer(text) -> weights`` (an :class:`IntentModel`, e.g. a
    fine-tuned classifier) used instead of the nearest labelled examples. Its weights are
    recorded in each decision; a model behind it that is not deterministic should make its
    calls through ``ctx.effect`` to stay replayable."""
    exploit: bool = False
    """Take the most probable node instead of sampling."""
    extractor: str = "option"
    max_tokens: int = Field(default=512, gt=0)

    @model_validator(mode="after")
    def _check(self) -> AMROConfig:
        names: list[str] = []
        for i, layer in enumerate(self.layers):
            if not layer:
                raise ValueError(f"layer {i} has no agent nodes; fix: give each layer a node")
            names += [n.name for n in layer]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"agent node names must be unique across layers: {dupes}")
        if not self.intent_examples and self.intent_service is None:
            raise ValueError(
                "AMRO-S needs labelled intent examples (intent_examples) to infer task-type "
                "weights; fix: give a few (text, task) examples per task type, or name an "
                "intent_service"
            )
        extractor(self.extractor)
        return self

    def task_types(self) -> list[str]:
        return sorted({e.task for e in self.intent_examples})


class AMROQuery(BaseModel):
    question: str
    state: str
    """The pheromone state version (artifact key) to route with."""
    load: dict[str, float] = Field(default_factory=dict)
    """Current load per node name (requests in flight), as the caller measured it."""

    @field_validator("load")
    @classmethod
    def _load(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: x for k, x in v.items() if not (math.isfinite(x) and x >= 0)}
        if bad:
            raise ValueError(f"load values must be finite and >= 0, got {bad}")
        return v


class AMROResult(BaseModel):
    answer: str | None
    response: str
    path: list[str]
    weights: dict[str, float]
    cost_usd: float
    models_invoked: list[str]
    state_version: str


_intent_cache: dict[str, NearestExamples] = {}


def _intent(cfg: AMROConfig) -> NearestExamples:
    # A pure function of the examples and k: cache by their content so each step does not
    # rebuild the index.
    key = hashlib.sha256(
        repr((cfg.intent_k, [(e.text, e.task) for e in cfg.intent_examples])).encode()
    ).hexdigest()
    found = _intent_cache.get(key)
    if found is None:
        found = NearestExamples(cfg.intent_examples, k=cfg.intent_k)
        _intent_cache[key] = found
    return found


def _ability(node: AgentNode, weights: dict[str, float]) -> float:
    return sum(w * node.ability.get(t, DEFAULT_ABILITY) for t, w in sorted(weights.items()))


def _stage_prompt(question: str, node: AgentNode, previous: str | None) -> str:
    parts = [node.role] if node.role else []
    parts.append(f"Question:\n{question}")
    if previous is not None:
        parts.append(f"The previous stage answered:\n{previous}\n\nGive your final answer.")
    return "\n\n".join(parts)


@agent(name="amro-router", version="2", config=AMROConfig)
async def amro_router(query: AMROQuery, ctx: Context) -> AMROResult:
    """Route with the pheromone state ``query.state``; see the module docstring."""
    cfg: AMROConfig = ctx.config
    hub: ModelHub = ctx.service("models")
    state = ctx.load(query.state, PheromoneState)
    if cfg.params is not None and cfg.params != state.params:
        raise ValueError(
            f"pheromone state {query.state[:19]} has parameters {state.params.model_dump()}, "
            f"but the router is configured with {cfg.params.model_dump()}; fix: route with a "
            "state made with these parameters, or drop params from the router config"
        )
    if cfg.intent_service is not None:
        model: IntentModel = ctx.service(cfg.intent_service)
        weights = dict(sorted(model.infer(query.question).items()))
    else:
        weights = _intent(cfg).infer(query.question)
    unknown_load = sorted(set(query.load) - {n.name for layer in cfg.layers for n in layer})
    if unknown_load:
        raise ValueError(f"load given for unknown nodes {unknown_load}; fix: use node names")
    rng = None if cfg.exploit else ctx.rng
    path: list[AgentNode] = []
    previous = "^"
    for depth, layer in enumerate(cfg.layers):
        candidates = [
            Candidate(
                name=n.name,
                ability=_ability(n, weights),
                load=query.load.get(n.name, 0.0),
                latency_s=n.latency_s,
            )
            for n in layer
        ]
        rows = transition(state, weights, previous, candidates)
        chosen, draw = choose(rows, rng)
        p_chosen = next(float(r["p"]) for r in rows if r["name"] == chosen)
        ctx.decide(
            candidates=[n.name for n in layer],
            chosen=chosen,
            scores={str(r["name"]): float(r["p"]) for r in rows},
            reason=(
                f"layer {depth} from {previous!r}: "
                + ("argmax" if draw is None else f"draw {draw:.4f}")
                + f" chose {chosen!r} (p={p_chosen:.3f})"
                f"; task weights " + ", ".join(f"{t} {w:.2f}" for t, w in sorted(weights.items()))
            ),
            parameters={
                "layer": depth,
                "from": previous,
                "exploit": cfg.exploit,
                **state.params.model_dump(mode="json"),
            },
            state_version=query.state,
            evidence={
                "weights": weights,
                "candidates": [
                    {**r, "ability": c.ability, "load": c.load, "latency_s": c.latency_s}
                    for r, c in zip(rows, candidates, strict=True)
                ],
                "draw": draw,
            },
        )
        node = next(n for n in layer if n.name == chosen)
        path.append(node)
        previous = chosen

    text: str | None = None
    cost = 0.0
    for node in path:
        request = ChatRequest(
            model=node.model,
            messages=[ChatMessage(role="user", content=_stage_prompt(query.question, node, text))],
            max_tokens=cfg.max_tokens,
        )
        response = await hub.chat(ctx, request)
        cost += hub.registry.model(node.model).cost(response.usage)
        text = response.text
    assert text is not None  # at least one layer
    return AMROResult(
        answer=extractor(cfg.extractor)(text),
        response=text,
        path=[n.name for n in path],
        weights=weights,
        cost_usd=cost,
        models_invoked=[n.model for n in path],
        state_version=query.state,
    )


# -- learning, off the serving path ----------------------------------------------------------


class LearnEntry(BaseModel):
    """A finished trajectory waiting for the quality gate."""

    model_config = ConfigDict(frozen=True)
    question: str
    weights: dict[str, float]
    path: list[str] = Field(min_length=1)
    cost_usd: float = Field(ge=0, allow_inf_nan=False)
    answer: str | None
    response: str = ""
    gold: str | None = None

    @classmethod
    def from_result(cls, question: str, result: AMROResult, gold: str | None = None) -> LearnEntry:
        return cls(
            question=question,
            weights=result.weights,
            path=result.path,
            cost_usd=result.cost_usd,
            answer=result.answer,
            response=result.response,
            gold=gold,
        )


class TrajectoryBuffer:
    """Collects finished trajectories; :meth:`add` returns a full batch when it fills.

    Sampling into the buffer keeps a trajectory when a hash of (seed, question) falls below
    ``sample_rate``, so which ones are kept never depends on timing or arrival order.
    """

    def __init__(self, capacity: int = 32, *, sample_rate: float = 1.0, seed: int = 0) -> None:
        if capacity < 1:
            raise ValueError(f"buffer capacity is {capacity}; fix: use capacity >= 1")
        if not 0.0 < sample_rate <= 1.0:
            raise ValueError(f"sample_rate is {sample_rate}; fix: use 0 < sample_rate <= 1")
        self.capacity, self.sample_rate, self.seed = capacity, sample_rate, seed
        self.pending: list[LearnEntry] = []

    def sampled(self, entry: LearnEntry) -> bool:
        digest = hashlib.sha256(f"{self.seed}\x00{entry.question}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.sample_rate

    def add(self, entry: LearnEntry) -> list[LearnEntry] | None:
        if not self.sampled(entry):
            return None
        self.pending.append(entry)
        if len(self.pending) < self.capacity:
            return None
        batch, self.pending = self.pending, []
        return batch

    def flush(self) -> list[LearnEntry]:
        """The partial batch (at the end of an evaluation)."""
        batch, self.pending = self.pending, []
        return batch


class AMROLearnConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    gate: Literal["gold", "judge"] = "gold"
    judge_model: str | None = None
    extractor: str = "option"

    @model_validator(mode="after")
    def _check(self) -> AMROLearnConfig:
        if self.gate == "judge" and not self.judge_model:
            raise ValueError("gate 'judge' needs judge_model; fix: name the judge model")
        extractor(self.extractor)
        return self


class AMROLearnBatch(BaseModel):
    state: str
    """The version the batch's deposits apply to."""
    entries: list[LearnEntry] = Field(min_length=1)


_YES = re.compile(r"\b(yes|correct)\b", re.I)
_NO = re.compile(r"\b(no|incorrect|wrong)\b", re.I)


def _judge_prompt(entry: LearnEntry) -> str:
    return (
        "Is the response below a correct answer to the question? Reply 'yes' or 'no' only.\n\n"
        f"Question:\n{entry.question}\n\nResponse:\n{entry.response or entry.answer}"
    )


@agent(name="amro-learn", version="1", config=AMROLearnConfig)
async def amro_learn(batch: AMROLearnBatch, ctx: Context) -> PheromoneState:
    """Quality-gate a full buffer and deposit pheromone: the output is the next version."""
    cfg: AMROLearnConfig = ctx.config
    state = ctx.load(batch.state, PheromoneState)
    verdicts: list[bool] = []
    if cfg.gate == "gold":
        missing = [i for i, e in enumerate(batch.entries) if e.gold is None]
        if missing:
            raise ValueError(
                f"the gold-label quality gate has no gold label for entries {missing}; fix: "
                "give every entry its gold answer, or use gate='judge'"
            )
        verdicts = [e.answer is not None and e.answer == e.gold for e in batch.entries]
    else:
        hub: ModelHub = ctx.service("models")
        assert cfg.judge_model is not None
        # The verdicts are asked at once and recorded in entry order (ctx.gather).
        replies = await ctx.gather(
            *(
                hub.chat(
                    ctx,
                    ChatRequest(
                        model=cfg.judge_model,
                        messages=[ChatMessage(role="user", content=_judge_prompt(entry))],
                        max_tokens=8,
                    ),
                )
                for entry in batch.entries
            )
        )
        # An unreadable verdict rejects: never reinforce a path nobody vouched for.
        verdicts = [bool(_YES.search(r.text)) and not _NO.search(r.text) for r in replies]
    ids = [f"#{i}" for i in range(len(batch.entries))]
    accepted = [e for e, ok in zip(batch.entries, verdicts, strict=True) if ok]
    ctx.decide(
        candidates=ids,
        chosen=[i for i, ok in zip(ids, verdicts, strict=True) if ok],
        reason=(
            f"quality gate '{cfg.gate}' accepted {len(accepted)} of {len(ids)} trajectories; "
            "accepted paths deposit Q/(cost+ε) weighted by task type"
        ),
        parameters={"gate": cfg.gate, "judge_model": cfg.judge_model},
        state_version=batch.state,
        evidence={
            "entries": [
                {"path": e.path, "cost_usd": e.cost_usd, "answer": e.answer, "accepted": ok}
                for e, ok in zip(batch.entries, verdicts, strict=True)
            ]
        },
    )
    return deposit(
        state,
        [Trajectory(weights=e.weights, path=e.path, cost_usd=e.cost_usd) for e in accepted],
    )


def _summary(state: PheromoneState) -> str:
    edges = sum(len(t) for t in state.tables.values())
    tops = []
    for task, table in sorted(state.tables.items()):
        if table:
            edge, tau = max(sorted(table.items()), key=lambda kv: kv[1])
            tops.append(f"{task}: {edge} {tau:.3g}")
    return f"pheromones, {len(state.tables)} task tables, {edges} edges; strongest " + (
        "; ".join(tops) or "none (all τ₀)"
    )


register_state_format("orch.amro-state/1", PheromoneState, _summary)
