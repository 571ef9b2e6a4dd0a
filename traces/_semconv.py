"""The OpenTelemetry names orch emits, in one place.

Pinned to the OpenTelemetry GenAI semantic conventions v1.37.0 (status: development): the
operation names ``invoke_workflow`` / ``invoke_agent`` / ``chat`` / ``execute_tool`` and the
``gen_ai.*`` attributes below. ``orch.*`` attributes are ours and carry what an auditor needs
to go from a span back to the record (run id, step id, record keys).
"""

from __future__ import annotations

from typing import Final

SEMCONV_VERSION: Final = "1.37.0"
SCHEMA_URL: Final = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"

# operation names (gen_ai.operation.name; also the first word of each span name)
OP_WORKFLOW: Final = "invoke_workflow"
OP_AGENT: Final = "invoke_agent"
OP_CHAT: Final = "chat"
OP_TOOL: Final = "execute_tool"

# gen_ai.* attributes
OPERATION_NAME: Final = "gen_ai.operation.name"
PROVIDER_NAME: Final = "gen_ai.provider.name"
AGENT_NAME: Final = "gen_ai.agent.name"
AGENT_ID: Final = "gen_ai.agent.id"
AGENT_VERSION: Final = "gen_ai.agent.version"
REQUEST_MODEL: Final = "gen_ai.request.model"
REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
RESPONSE_MODEL: Final = "gen_ai.response.model"
RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
TOOL_NAME: Final = "gen_ai.tool.name"
INPUT_MESSAGES: Final = "gen_ai.input.messages"
OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
ERROR_TYPE: Final = "error.type"

# orch.* attributes
RUN_ID: Final = "orch.run.id"
ROOT_HASH: Final = "orch.run.root_hash"
PIPELINE: Final = "orch.pipeline.name"
SPEC_HASH: Final = "orch.pipeline.spec_hash"
STEP_ID: Final = "orch.step.id"
STEP_STATUS: Final = "orch.step.status"
STEP_RECORD: Final = "orch.step.record"
STEP_REASON: Final = "orch.step.reason"
EFFECT_INDEX: Final = "orch.effect.index"
EFFECT_RECORD: Final = "orch.effect.record"
EFFECT_REQUEST: Final = "orch.effect.request_hash"
COST_USD: Final = "orch.cost.usd"

# span events
DECISION_EVENT: Final = "orch.decision"
