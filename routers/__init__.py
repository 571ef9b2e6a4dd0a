"""Routing agents from the five papers, the baselines, and their versioned state.

* TCAR reasoning router with agent registry, offline lexical router and refining team
  (:mod:`routers.tcar`, :mod:`routers.tcar_lexical`, :mod:`routers.tcar_team`);
* ACAR σ-escalation (:mod:`routers.acar`);
* AMRO-S pheromone arithmetic, serving router and off-path learner (:mod:`routers.amro`,
  :mod:`routers.amro_router`, :mod:`routers.intent`);
* ORCH many analyses, one merge, with the EMA router (:mod:`routers.orch_merge`,
  :mod:`routers.ema`);
* baselines (:mod:`routers.baselines`) and router state versions (:mod:`routers.state`).

See ``../shared/design/ROUTERS.md`` in the design notes for each paper's algorithm.
"""

from __future__ import annotations

from .acar import ACARConfig, ACARResult, Task, acar, escalation_mode, sigma
from .amro import AMROParams, Candidate, PheromoneState, Trajectory, choose, deposit, transition
from .amro_router import (
    AgentNode,
    AMROConfig,
    AMROLearnBatch,
    AMROLearnConfig,
    AMROQuery,
    AMROResult,
    LearnEntry,
    TrajectoryBuffer,
    amro_learn,
    amro_router,
)
from .baselines import (
    AgreementCascadeConfig,
    CascadeConfig,
    KNNConfig,
    KNNExample,
    KNNIndex,
    KNNQuery,
    MajorityConfig,
    ModelsConfig,
    Query,
    Routed,
    SingleConfig,
    agreement_cascade,
    build_knn_index,
    cascade,
    knn_router,
    majority_vote,
    oracle,
    random_router,
    single,
)
from .ema import (
    AgentStats,
    EMAFeedback,
    EMAState,
    Observation,
    apply_feedback,
    ema_feedback,
    panel,
    panel_score,
)
from .extract import EXTRACTORS, CodeEquivalence, extractor, number, option_letter, short_text
from .intent import IntentModel, LabelledExample, NearestExamples
from .lexical import LexicalIndex
from .orch_merge import OrchConfig, OrchMergeResult, OrchQuestion, orch_merge, parse_merge
from .orch_merge import observations as orch_observations
from .state import StateVersion, load_state, register_state_format, save_state, state_history
from .tcar import (
    OOS,
    AgentCard,
    AgentRegistry,
    TCARConfig,
    TCARQuery,
    TCARRoute,
    parse_route,
    tcar_router,
)
from .tcar_lexical import LexicalRouter
from .tcar_team import TCARResult, TCARTeamConfig, tcar

__all__ = [
    "AgreementCascadeConfig",
    "CascadeConfig",
    "KNNConfig",
    "KNNExample",
    "KNNIndex",
    "KNNQuery",
    "MajorityConfig",
    "ModelsConfig",
    "Query",
    "Routed",
    "SingleConfig",
    "agreement_cascade",
    "build_knn_index",
    "cascade",
    "knn_router",
    "majority_vote",
    "oracle",
    "random_router",
    "single",
    "EXTRACTORS",
    "OOS",
    "ACARConfig",
    "ACARResult",
    "AMROConfig",
    "AMROLearnBatch",
    "AMROLearnConfig",
    "AMROParams",
    "AMROQuery",
    "AMROResult",
    "AgentCard",
    "AgentNode",
    "AgentRegistry",
    "AgentStats",
    "Candidate",
    "CodeEquivalence",
    "EMAFeedback",
    "EMAState",
    "IntentModel",
    "LabelledExample",
    "LearnEntry",
    "LexicalIndex",
    "LexicalRouter",
    "NearestExamples",
    "Observation",
    "OrchConfig",
    "OrchMergeResult",
    "OrchQuestion",
    "PheromoneState",
    "StateVersion",
    "TCARConfig",
    "TCARQuery",
    "TCARResult",
    "TCARRoute",
    "TCARTeamConfig",
    "Task",
    "Trajectory",
    "TrajectoryBuffer",
    "acar",
    "amro_learn",
    "amro_router",
    "apply_feedback",
    "choose",
    "deposit",
    "ema_feedback",
    "escalation_mode",
    "extractor",
    "load_state",
    "number",
    "option_letter",
    "orch_merge",
    "orch_observations",
    "panel",
    "panel_score",
    "parse_merge",
    "parse_route",
    "register_state_format",
    "save_state",
    "short_text",
    "sigma",
    "state_history",
    "tcar",
    "tcar_router",
    "transition",
]
