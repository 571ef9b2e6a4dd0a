"""Routing agents: ACAR σ-escalation and the ORCH EMA statistics (done); TCAR, AMRO-S, the
ORCH merge pipeline and baselines (coming).

See ``../shared/design/ROUTERS.md`` in the design notes for each paper's algorithm.
"""

from __future__ import annotations

from .acar import ACARConfig, ACARResult, Task, acar, escalation_mode, sigma
from .ema import AgentStats, EMAState, Observation, apply_feedback, panel, panel_score
from .extract import EXTRACTORS, CodeEquivalence, extractor, number, option_letter, short_text

__all__ = [
    "EXTRACTORS",
    "ACARConfig",
    "ACARResult",
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
