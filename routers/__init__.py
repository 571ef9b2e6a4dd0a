"""Routing agents: ACAR σ-escalation, the ORCH EMA statistics and the AMRO-S pheromone
arithmetic (done); TCAR, the AMRO-S and ORCH router agents and the baselines (coming).

See ``../shared/design/ROUTERS.md`` in the design notes for each paper's algorithm.
"""

from __future__ import annotations

from .acar import ACARConfig, ACARResult, Task, acar, escalation_mode, sigma
from .amro import AMROParams, Candidate, PheromoneState, Trajectory, choose, deposit, transition
from .ema import AgentStats, EMAState, Observation, apply_feedback, panel, panel_score
from .extract import EXTRACTORS, CodeEquivalence, extractor, number, option_letter, short_text

__all__ = [
    "EXTRACTORS",
    "ACARConfig",
    "ACARResult",
    "AMROParams",
    "Candidate",
    "PheromoneState",
    "Trajectory",
    "choose",
    "deposit",
    "transition",
    "AgentStats",
    "EMAState",
    "Observation",
    "apply_feedback",
    "panel",
    "panel_score",
    "CodeEquivalence",
    "Task",
    "acar",
    "escalation_mode",
    "extractor",
    "number",
    "option_letter",
    "short_text",
    "sigma",
]
