"""Routing agents: ACAR σ-escalation (done); TCAR, AMRO-S, ORCH/EMA and baselines (coming).

See ``../shared/design/ROUTERS.md`` in the design notes for each paper's algorithm.
"""

from __future__ import annotations

from .acar import ACARConfig, ACARResult, Task, acar, escalation_mode, sigma
from .extract import EXTRACTORS, CodeEquivalence, extractor, number, option_letter, short_text

__all__ = [
    "EXTRACTORS",
    "ACARConfig",
    "ACARResult",
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
