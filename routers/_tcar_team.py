"""TCAR end to end: route, run the chosen agents in parallel, refine their answers.

The :data:`tcar` agent is what a pipeline node uses. Its children, in the trace tree:
``<step>/0`` the router (with the routing Decision), ``<step>/1 .. /n`` the chosen agents run
in parallel on the query, and the last child the refining agent (with its own Decision). A
chosen agent that fails does not sink the others: its error is passed to the refiner, which
merges what is left. An ``oos`` route runs no agent and the refiner declines.
"""

from __future__ import annotations

from typing import Any, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.refiner import AgentAnswer, AgentReply, RefinedAnswer, RefineInput, RefinerConfig
from agents.refiner import refiner as refining_agent
from orch import ChildStepError, Context, agent
from routers._tcar import TCARConfig, TCARQuery, TCARRoute, tcar_router
from routers._tcar_registry import OOS, AgentRegistry

__all__ = ["TCARResult", "TCARTeamConfig", "tcar"]


class TCARTeamConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    router: TCARConfig = Field(default_factory=TCARConfig)
    refiner: RefinerConfig = Field(default_factory=RefinerConfig)


class TCARResult(BaseModel):
    route: TCARRoute
    answers: list[AgentAnswer]
    final: RefinedAnswer


def _as_reply(agent_id: str, out: BaseModel) -> AgentReply:
    if isinstance(out, AgentReply):
        return out
    try:
        return AgentReply.model_validate(out.model_dump())
    except ValidationError:
        raise TypeError(
            f"agent {agent_id!r} returned a {type(out).__name__}, which has no 'text' field; "
            "fix: make TCAR agents return agents.refiner.AgentReply (text, answer, declined)"
        ) from None


@agent(name="tcar", version="1", config=TCARTeamConfig)
async def tcar(query: TCARQuery, ctx: Context) -> TCARResult:
    """Route ``query`` to agents, run them, and refine; see the module docstring."""
    cfg: TCARTeamConfig = ctx.config
    registry: AgentRegistry = ctx.service("agents")
    route = cast(TCARRoute, await ctx.call(tcar_router.with_config(cfg.router), query))
    chosen = [] if route.chosen == [OOS] else route.chosen
    runners: list[tuple[Any, Any]] = [(registry.runner(a), query) for a in chosen]
    outputs = await ctx.parallel(runners, fail_fast=False)
    answers: list[AgentAnswer] = []
    for agent_id, out in zip(chosen, outputs, strict=True):
        if isinstance(out, ChildStepError):
            answers.append(AgentAnswer(agent=agent_id, error=str(out)))
        else:
            answers.append(AgentAnswer(agent=agent_id, reply=_as_reply(agent_id, out)))
    final = cast(
        RefinedAnswer,
        await ctx.call(
            refining_agent.with_config(cfg.refiner),
            RefineInput(query=query.query, answers=answers),
        ),
    )
    return TCARResult(route=route, answers=answers, final=final)
