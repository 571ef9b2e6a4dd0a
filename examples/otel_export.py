"""Export a recorded run to an OpenTelemetry collector (or print the spans).

    pip install -e '.[otel]'                   # the OTLP exporter (optional extra)
    python examples/quickstart.py              # make some runs
    python examples/otel_export.py RUN_ID [http://127.0.0.1:4318/v1/traces]

Spans follow the GenAI semantic conventions (``traces._semconv``): ``invoke_workflow`` for the
run, ``invoke_agent`` per step, ``chat`` per model call, with decisions as span events. Their
ids derive from the run's root hash, so exporting a clean replay gives the same trace.
Without the OTLP exporter installed, the spans are printed to the console instead.
"""

from __future__ import annotations

import sys

from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter

from traces import open_store
from traces.otel import export_run


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__)
        return 2
    exporter: SpanExporter
    if len(argv) > 2:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            print("the OTLP exporter is not installed: pip install -e '.[otel]'")
            return 2
        exporter = OTLPSpanExporter(endpoint=argv[2])
    else:
        exporter = ConsoleSpanExporter()
    with open_store() as store:
        run_id = store.resolve_run(argv[1])
        # The quickstart's model ids and their providers (from its registry).
        providers = {"haiku": "recorded", "gemini": "recorded", "sim": "simulated"}
        n = export_run(store, run_id, exporter, providers=providers)
    exporter.shutdown()
    print(f"exported {n} spans of run {run_id}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
