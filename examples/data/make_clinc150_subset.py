"""Cut the CLINC150 subset shipped in ``clinc150_subset.json`` from the shared data.

CLINC150 (Larson et al., EMNLP 2019; github.com/clinc/oos-eval, commit 828f8093) is licensed
CC BY 3.0. The subset keeps, per intent, the first ``--train`` training queries (agent
examples for the offline router), the first ``--test`` test queries and ``--val`` validation
queries, plus the first ``--oos`` out-of-scope test queries and as many out-of-scope
validation queries. Run from the repository root::

    python examples/data/make_clinc150_subset.py ../shared/data/clinc150
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

OUT = Path(__file__).parent / "clinc150_subset.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path, help="folder with data_full.json and domains.json")
    ap.add_argument("--train", type=int, default=10)
    ap.add_argument("--test", type=int, default=2)
    ap.add_argument("--oos", type=int, default=30)
    ap.add_argument("--val", type=int, default=1)
    args = ap.parse_args()
    full = json.loads((args.source / "data_full.json").read_text())
    domains = json.loads((args.source / "domains.json").read_text())

    def first(split: str, per_intent: int) -> dict[str, list[str]]:
        kept: dict[str, list[str]] = {}
        for text, intent in full[split]:
            bucket = kept.setdefault(intent, [])
            if len(bucket) < per_intent:
                bucket.append(text)
        return kept

    train, test, val = first("train", args.train), first("test", args.test), first("val", args.val)
    subset = {
        "format": "orch.clinc150-subset/1",
        "source": "github.com/clinc/oos-eval@828f8093 data/data_full.json, data/domains.json",
        "license": "CC BY 3.0 (LICENSE.CLINC150-CC-BY-3.0); Larson et al., EMNLP 2019",
        "domains": {
            d: {i: train[i] for i in sorted(intents)} for d, intents in sorted(domains.items())
        },
        "test": [[t, i] for d in sorted(domains) for i in sorted(domains[d]) for t in test[i]]
        + [[t, "oos"] for t, _ in full["oos_test"][: args.oos]],
        "val": [[t, i] for d in sorted(domains) for i in sorted(domains[d]) for t in val[i]]
        + [[t, "oos"] for t, _ in full["oos_val"][: args.oos]],
    }
    OUT.write_text(json.dumps(subset, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT}: {len(subset['test'])} test, {len(subset['val'])} val queries")


if __name__ == "__main__":
    main()
