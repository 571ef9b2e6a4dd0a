"""Routing agents from the five papers, the baselines, and their versioned state.

* TCAR reasoning router with agent registry, offline trained router and refining team
  (:mod:`routers._tcar`, :mod:`routers._tcar_trained`, :mod:`routers._tcar_team`);
* ACAR σ-escalation (:mod:`routers._acar`);
* AMRO-S pheromone arithmetic, serving router and off-path learner (:mod:`routers._amro`,
  :mod:`routers._amro_router`, :mod:`routers._intent`);
* ORCH many analyses, one merge, with the EMA router (:mod:`routers._orch_merge`,
  :mod:`routers._ema`);
* baselines (:mod:`routers.baselines`, every name of its ``__all__`` re-exported here) and
  router state versions (:mod:`routers._state`);
* trained routing: the embedding seam (:mod:`routers._embed`), trained classifiers as router
  state (:mod:`routers._classifier`, arrays in :mod:`routers._arrays`) and exact nearest
  neighbours (:mod:`routers._neighbours`);
* trained model routers from recorded evaluation data: classifier, matrix factorisation and
  similarity-weighted ranking (:mod:`routers._quality`, :mod:`routers._quality_classifier`,
  :mod:`routers._quality_mf`, :mod:`routers._quality_sw`, agents in
  :mod:`routers._quality_router`; serving caches in :mod:`routers._served`);
* evaluation on recorded data (:mod:`routers.eval`) and the package's exceptions
  (:mod:`routers.errors`).

``docs/routers.md`` shows how to wire each router and what it records;
``docs/writing-routers.md`` how to write one (decisions, state, feedback, evaluation).
"""

from __future__ import annotations

from routers import baselines
from routers._acar import (
    ACARConfig,
    ACARResult,
    FixedMode,
    Task,
    acar,
    escalation_mode,
    majority,
    sigma,
)
from routers._amro import (
    AMROParams,
    Candidate,
    PheromoneState,
    Trajectory,
    choose,
    deposit,
    transition,
)
from routers._amro_router import (
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
from routers._arrays import ArrayData
from routers._classifier import (
    IntentClassifier,
    TrainConfig,
    add_labels,
    calibrate,
    classify,
    remove_labels,
    train_classifier,
)
from routers._ema import (
    AgentStats,
    EMAFeedback,
    EMAState,
    Observation,
    PanelChoice,
    PanelExploration,
    apply_feedback,
    ema_feedback,
    explore_panel,
    panel,
    panel_score,
)
from routers._embed import (
    CachedEmbedder,
    CombinedEmbedder,
    Embedder,
    TextStatsEmbedder,
    TfidfEmbedder,
    WordLlamaEmbedder,
    default_embedder,
    embedder_from_spec,
    sentence_embeddings_available,
)
from routers._extract import (
    AS_RECORDED,
    EXTRACTORS,
    CodeEquivalence,
    extractor,
    number,
    option_letter,
    short_text,
)
from routers._intent import IntentModel, LabelledExample, NearestExamples
from routers._neighbours import NearestIndex
from routers._orch_merge import OrchConfig, OrchMergeResult, OrchQuestion, orch_merge, parse_merge
from routers._orch_merge import observations as orch_observations
from routers._quality import (
    calibrate_threshold,
    predict_quality,
    threshold_for_share,
    two_model_scores,
)
from routers._quality_classifier import (
    ClassifierRouterState,
    ClassifierTraining,
    train_classifier_router,
)
from routers._quality_mf import MFRouterState, MFTraining, train_mf_router
from routers._quality_router import (
    QualityQuery,
    QualityRouterConfig,
    classifier_router,
    mf_router,
    sw_router,
)
from routers._quality_sw import SWRouterState, SWTraining, train_sw_router
from routers._served import serving_embedder
from routers._state import (
    StateVersion,
    load_state,
    register_state_format,
    save_state,
    state_history,
)
from routers._tcar import TCARConfig, TCARQuery, TCARRoute, parse_route, tcar_router
from routers._tcar_registry import OOS, AgentCard, AgentRegistry
from routers._tcar_team import TCARResult, TCARTeamConfig, tcar
from routers._tcar_trained import TrainedRouter, card_examples, state_for_cards, train_tcar
from routers.baselines import *  # noqa: F403 - the face offers every baseline: baselines.__all__
from routers.errors import (
    DatasetError,
    DatasetPluginError,
    DataUnavailable,
    EmbedderUnavailable,
    RouterStateError,
)

__all__ = [
    # what other packages, the reproductions and the examples use
    "AS_RECORDED",
    "FixedMode",
    "majority",
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
    "DataUnavailable",
    "DatasetError",
    "DatasetPluginError",
    "EMAFeedback",
    "EMAState",
    "IntentModel",
    "LabelledExample",
    "LearnEntry",
    "NearestIndex",
    "ClassifierRouterState",
    "ClassifierTraining",
    "MFRouterState",
    "MFTraining",
    "QualityQuery",
    "QualityRouterConfig",
    "SWRouterState",
    "SWTraining",
    "calibrate_threshold",
    "classifier_router",
    "mf_router",
    "predict_quality",
    "serving_embedder",
    "sw_router",
    "threshold_for_share",
    "train_classifier_router",
    "train_mf_router",
    "train_sw_router",
    "two_model_scores",
    "PanelChoice",
    "PanelExploration",
    "explore_panel",
    "RouterStateError",
    "EmbedderUnavailable",
    "ArrayData",
    "CachedEmbedder",
    "CombinedEmbedder",
    "Embedder",
    "TextStatsEmbedder",
    "TfidfEmbedder",
    "WordLlamaEmbedder",
    "default_embedder",
    "embedder_from_spec",
    "sentence_embeddings_available",
    "IntentClassifier",
    "TrainConfig",
    "add_labels",
    "calibrate",
    "classify",
    "remove_labels",
    "train_classifier",
    "TrainedRouter",
    "card_examples",
    "state_for_cards",
    "train_tcar",
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
__all__ += baselines.__all__
