"""The ORCH EMA router's statistics and panel choice (arXiv 2602.01797).

Per agent, exponential moving averages (alpha = 0.2) of quality (0/1 correctness from feedback),
latency (ms), cost (USD) and stability (1 when the call succeeded, else 0). The first
observation of a metric initialises it; until then the defaults stand in: quality 0.5,
latency 2000 ms, cost 0, stability 0.9. The panel score is::

    q + 0.1·stab - 0.3·min(lat / 5000, 3) - 0.1·min(cost / 0.002, 3)

and the panel is the top k agents (k = 3 by default); the top agent is dispatcher and merger.
Ties are broken by agent name, so the ranking never depends on dict or arrival order.

**Exploration** (:class:`PanelExploration`, off by default; *our addition*, the paper's
panel never explores): a model that has never been observed keeps the default score and
may never enter a panel of good models, so it is never observed. :func:`explore_panel` lets it
in two ways, both deterministic:

* an *optimism bonus*: agents are ranked by ``panel score + bonus / sqrt(1 + n)``, n being
  the agent's observations (the most any of its metrics has had), so the less an agent has
  been observed the more it is lifted;
* *epsilon-greedy*: for each task a draw ``u`` in [0, 1) is taken from a hash of the seed and
  the task (never from global randomness), and when ``u < epsilon`` the panel's last seat
  goes to one of the least-observed agents outside it (picked by the same hash).

The same state, task and seed always give the same panel, so a replay makes the same choice.

The state is an immutable value: :func:`apply_feedback` returns a new state whose ``parent``
is the key of the old one, so a run can record exactly which version it read, and a batch of
feedback applied in input order always yields the same version. Feedback values (latency
included) come from recorded steps, never from a clock read here.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator

from orch import Context, agent
from routers._state import register_state_format
from traces import hash_value

__all__ = [
    "DEFAULTS",
    "AgentStats",
    "EMAFeedback",
    "EMAState",
    "Observation",
    "PanelChoice",
    "PanelExploration",
    "apply_feedback",
    "ema_feedback",
    "explore_panel",
    "observed",
    "panel",
    "panel_score",
]

ALPHA = 0.2
DEFAULTS = {"quality": 0.5, "latency_ms": 2000.0, "cost_usd": 0.0, "stability": 0.9}
_METRICS = tuple(DEFAULTS)
_FROZEN = ConfigDict(frozen=True, extra="forbid")


class AgentStats(BaseModel):
    """EMAs of one agent; ``counts`` says how many observations fed each metric."""

    model_config = _FROZEN
    quality: float = DEFAULTS["quality"]
    latency_ms: float = DEFAULTS["latency_ms"]
    cost_usd: float = DEFAULTS["cost_usd"]
    stability: float = DEFAULTS["stability"]
    counts: dict[str, int] = Field(default_factory=dict)


class Observation(BaseModel):
    """What is known about one call of one agent; a metric left None is not updated.

    A finished call gives ``ok``, latency and cost at once; its ``quality`` can come with it
    (gold labels) or later, as a quality-only observation (delayed feedback, a judge).
    """

    model_config = _FROZEN
    agent: str
    ok: bool | None = None
    latency_ms: float | None = Field(default=None, ge=0)
    """None when unknown: the latency EMA is left as it is."""
    cost_usd: float | None = Field(default=None, ge=0)
    quality: float | None = Field(default=None, ge=0, le=1)

    @field_validator("latency_ms", "cost_usd", "quality")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v


class EMAState(BaseModel):
    """A version of the router's state: stats per agent and the key of the previous version."""

    model_config = _FROZEN
    format: str = "orch.ema-state/1"
    alpha: float = Field(default=ALPHA, gt=0, le=1)
    agents: dict[str, AgentStats] = Field(default_factory=dict)
    parent: str | None = None
    """Key of the state this one was derived from (None for the initial state)."""

    @property
    def version(self) -> str:
        """This state's key: what a run records as the state version it read."""
        return hash_value(self)

    def stats(self, agent: str) -> AgentStats:
        return self.agents.get(agent, AgentStats())


def _ema(old: float, new: float, n: int, alpha: float) -> float:
    return new if n == 0 else alpha * new + (1 - alpha) * old


def _observe(stats: AgentStats, obs: Observation, alpha: float) -> AgentStats:
    values = {
        "latency_ms": obs.latency_ms,
        "cost_usd": obs.cost_usd,
        "stability": None if obs.ok is None else 1.0 if obs.ok else 0.0,
        "quality": obs.quality,
    }
    update: dict[str, object] = {}
    counts = dict(stats.counts)
    for metric in _METRICS:
        value = values[metric]
        if value is None:
            continue
        n = counts.get(metric, 0)
        update[metric] = _ema(getattr(stats, metric), float(value), n, alpha)
        counts[metric] = n + 1
    update["counts"] = dict(sorted(counts.items()))
    return stats.model_copy(update=update)


def apply_feedback(state: EMAState, observations: Iterable[Observation]) -> EMAState:
    """A new state with ``observations`` applied in the order given (callers pass a batch
    in input order, whatever order its runs finished in)."""
    agents = dict(state.agents)
    for obs in observations:
        agents[obs.agent] = _observe(agents.get(obs.agent, AgentStats()), obs, state.alpha)
    return EMAState(alpha=state.alpha, agents=dict(sorted(agents.items())), parent=state.version)


def panel_score(stats: AgentStats) -> float:
    """q + 0.1·stab - 0.3·min(lat/5000, 3) - 0.1·min(cost/0.002, 3)."""
    return (
        stats.quality
        + 0.1 * stats.stability
        - 0.3 * min(stats.latency_ms / 5000, 3)
        - 0.1 * min(stats.cost_usd / 0.002, 3)
    )


def panel(state: EMAState, agents: Sequence[str], k: int = 3) -> list[tuple[str, float]]:
    """The top ``k`` of ``agents`` by panel score, best first (ties by name)."""
    if not agents:
        raise ValueError("the EMA router needs at least one agent; fix: register agents")
    if k < 1:
        raise ValueError(f"panel size k is {k}; fix: use k >= 1")
    scored = sorted(
        ((a, panel_score(state.stats(a))) for a in set(agents)), key=lambda t: (-t[1], t[0])
    )
    return scored[:k]


def observed(stats: AgentStats) -> int:
    """How many times an agent was observed: the most observations any metric has had."""
    return max(stats.counts.values(), default=0)


class PanelExploration(BaseModel):
    """How :func:`explore_panel` explores (see the module docstring)."""

    model_config = _FROZEN
    epsilon: float = Field(default=0.1, ge=0, le=1)
    """The chance, per task, that the panel's last seat goes to a least-observed agent
    outside the panel (drawn from a hash of ``seed`` and the task)."""
    bonus: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    """Optimism: ``bonus / sqrt(1 + observations)`` is added to an agent's panel score while
    the panel is ranked (0: none)."""
    seed: int = 0
    """Seeds the epsilon draws: another seed explores on other tasks."""


class PanelChoice(BaseModel):
    """A panel chosen with exploration, and why."""

    model_config = _FROZEN
    members: list[tuple[str, float]]
    """(agent, panel score), in panel order: the first dispatches and merges."""
    explored: dict[str, str]
    """Members that are in the panel by exploration, each with the reason."""
    draw: float
    """This task's epsilon draw, in [0, 1): exploration by draw happened when below epsilon."""
    ranking: dict[str, float]
    """Every candidate's ranking score: its panel score plus its optimism bonus."""


def _task_draw(seed: int, task: str) -> tuple[float, int]:
    digest = hashlib.sha256(f"orch.ema-explore\x00{seed}\x00{task}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64, int.from_bytes(digest[8:16], "big")


def explore_panel(
    state: EMAState,
    agents: Sequence[str],
    k: int,
    explore: PanelExploration,
    task: str,
) -> PanelChoice:
    """The panel of :func:`panel`, exploring as ``explore`` says for ``task`` (a string that
    names the task: the same task always draws the same). With ``epsilon`` and ``bonus`` both
    0 it is :func:`panel`'s, with nothing explored."""
    plain = panel(state, agents, k)
    candidates = sorted(set(agents))
    counts = {a: observed(state.stats(a)) for a in candidates}
    scores = {a: panel_score(state.stats(a)) for a in candidates}
    lift = {a: explore.bonus / math.sqrt(1 + counts[a]) for a in candidates}
    ranking = {a: scores[a] + lift[a] for a in candidates}
    members = sorted(candidates, key=lambda a: (-ranking[a], a))[: len(plain)]
    in_plain = {a for a, _ in plain}
    explored = {
        a: (
            f"optimism bonus +{lift[a]:.3f} ({counts[a]} observations) lifts its score "
            f"{scores[a]:+.3f} to {ranking[a]:+.3f}"
        )
        for a in members
        if a not in in_plain
    }
    draw, pick = _task_draw(explore.seed, task)
    outside = [a for a in candidates if a not in members]
    if draw < explore.epsilon and outside:
        fewest = min(counts[a] for a in outside)
        pool = [a for a in outside if counts[a] == fewest]
        chosen = pool[pick % len(pool)]
        explored.pop(members[-1], None)
        members[-1] = chosen
        explored[chosen] = (
            f"epsilon draw {draw:.4f} < {explore.epsilon}: the last seat goes to {chosen}, "
            f"one of the {len(pool)} least-observed agents outside the panel "
            f"({fewest} observations)"
        )
    return PanelChoice(
        members=[(a, scores[a]) for a in members],
        explored=explored,
        draw=draw,
        ranking=ranking,
    )


def _summary(state: EMAState) -> str:
    ranked = sorted(
        ((a, panel_score(s)) for a, s in state.agents.items()), key=lambda t: (-t[1], t[0])
    )
    shown = ", ".join(f"{a} {score:+.3f}" for a, score in ranked[:5])
    more = f" (+{len(ranked) - 5} more)" if len(ranked) > 5 else ""
    return f"EMA state, {len(state.agents)} agents; panel scores: {shown or 'none'}{more}"


register_state_format("orch.ema-state/1", EMAState, _summary)


class EMAFeedback(BaseModel):
    """A batch of feedback for one state version, in input order."""

    state: str
    """The version (artifact key) the feedback applies to."""
    observations: list[Observation]


@agent(name="ema-feedback", version="1")
async def ema_feedback(batch: EMAFeedback, ctx: Context) -> EMAState:
    """Apply a batch of feedback as a recorded step; the output is the next state version.

    Its key (the step's output artifact) is the new version, and its ``parent`` is the
    version read, so the update is as auditable as a routing decision.
    """
    state = ctx.load(batch.state, EMAState)
    return apply_feedback(state, batch.observations)
