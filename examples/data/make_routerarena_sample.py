"""Cut the quickstart's recorded answers from the RouterArena data (Apache-2.0).

Reads ``../shared/data/routerarena_sub10_2model/`` (RouteWorks/RouterArena @ 4714a9ad, the
``sub_10`` split: claude-3-haiku and gemini-2.0-flash answers with token counts and scores)
and writes ``routerarena_mmlupro_30.json`` next to this file: the first 30 MMLU-Pro
multiple-choice items by id, each with the question as asked, its options, the gold letter,
and both models' recorded answers and token usage, in the ``orch.recorded-responses/1``
format that :class:`agents.models.RecordedClient` serves.

The output is committed; run this only to regenerate it::

    python examples/data/make_routerarena_sample.py [PATH_TO_SHARED_DATA]
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).parent
DEFAULT = HERE.parents[1] / ".." / "shared" / "data" / "routerarena_sub10_2model"
MODELS = ("claude-3-haiku-20240307", "gemini-2.0-flash-001")
N_ITEMS = 30
OPTION = re.compile(r"^([A-J])\. ", re.MULTILINE)


def main(argv: list[str]) -> int:
    src = Path(argv[1]) if len(argv) > 1 else DEFAULT
    if not src.is_dir():
        print(f"source data not found at {src}; nothing to do")
        return 0
    rows = {
        m: {r["global_index"]: r for r in map(json.loads, (src / f"{m}.jsonl").open())}
        for m in MODELS
    }
    ids = sorted(
        i for i in rows[MODELS[0]] if i.startswith("MMLUPro_") and all(i in rows[m] for m in MODELS)
    )[:N_ITEMS]
    items = []
    for i in ids:
        first = rows[MODELS[0]][i]
        truth = first["evaluation_result"]["ground_truth"]
        items.append(
            {
                "id": i,
                "question": first["question"],
                "answer": chr(ord("A") + int(truth)),  # RouterArena stores the option index
                "options": OPTION.findall(first["question"]),
                "responses": {
                    m: [
                        {
                            "text": rows[m][i]["generated_answer"],
                            "input_tokens": rows[m][i]["token_usage"]["input_tokens"],
                            "output_tokens": rows[m][i]["token_usage"]["output_tokens"],
                            "cost_usd": rows[m][i]["evaluation_result"]["inference_cost"],
                        }
                    ]
                    for m in MODELS
                },
            }
        )
    out = {
        "format": "orch.recorded-responses/1",
        "source": "RouteWorks/RouterArena @ 4714a9ad73e897a1241e73a86c9297fed2e871d8, "
        "cached_results sub_10 split (first 30 MMLU-Pro items by global_index)",
        "license": "Apache-2.0 (see LICENSE.RouterArena-Apache-2.0); MMLU-Pro items keep "
        "their own license (MIT)",
        "items": items,
    }
    (HERE / "routerarena_mmlupro_30.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {len(items)} items")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
