"""Adapter of ``clinc150/``: CLINC150 intent classification with out-of-scope queries
(Larson et al., EMNLP 2019), the gold-labelled query set the reasoning router (TCAR) is
evaluated on.

Dataset ``clinc150``: one task per query of ``data_full.json``, with ``gold`` its intent
(``oos`` for out-of-scope), ``group`` the intent's domain from ``domains.json`` (``oos`` for
out-of-scope) and ``split`` from the part it is in (``train``/``oos_train`` -> train,
``val``/``oos_val`` -> val, ``test``/``oos_test`` -> test). ``options`` are the 150 intents
in ``domains.json`` order, then ``oos``. Task ids are ``"{part}/{n}"`` (``test/0``,
``oos_test/17``), n counting from 0 within the part. There are no model responses.

License: CC BY 3.0 (``LICENSE.CC-BY-3.0`` beside the data), so ``copyable`` is True: small
cuts may ship in a project with the attribution.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from routers.eval import Dataset, DatasetError, DataUnavailable, Split, Task, adapter

__all__ = ["LICENSE", "OOS", "PARTS", "SOURCE", "clinc150", "read_domains"]

SOURCE: Final = (
    "CLINC150 (Larson et al., EMNLP 2019; github.com/clinc/oos-eval @ 828f8093, "
    "data/data_full.json, data/domains.json)"
)
LICENSE: Final = "CC BY 3.0"
OOS: Final = "oos"
PARTS: Final[dict[str, Split]] = {
    "train": "train",
    "val": "val",
    "test": "test",
    "oos_train": "train",
    "oos_val": "val",
    "oos_test": "test",
}
"""part of data_full.json -> split."""
_FIX: Final = "fix: restore it from github.com/clinc/oos-eval (commit 828f8093)"


def _json(path: Path) -> Any:
    if not path.is_file():
        raise DataUnavailable(f"{path} is missing; {_FIX}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DatasetError(f"{path} is not JSON ({exc}); {_FIX}") from None


def read_domains(path: Path) -> dict[str, str]:
    """intent -> domain, from CLINC's ``domains.json`` (domain -> list of intents)."""
    data = _json(path)
    if not isinstance(data, dict) or not all(
        isinstance(v, list) and all(isinstance(i, str) for i in v) for v in data.values()
    ):
        raise DatasetError(f"{path} is not a domain -> [intent] table; {_FIX}")
    domain_of: dict[str, str] = {}
    for domain, intents in data.items():
        for intent in intents:
            if intent in domain_of:
                raise DatasetError(f"{path} puts intent {intent!r} in two domains; {_FIX}")
            domain_of[intent] = domain
    return domain_of


@adapter("clinc150", "clinc150")
def clinc150(folder: Path) -> Dataset:
    """Dataset ``clinc150`` (23,700 queries: 150 intents in 10 domains, plus ``oos``)."""
    domain_of = read_domains(folder / "domains.json")
    path = folder / "data_full.json"
    data = _json(path)
    if not isinstance(data, dict) or not set(PARTS) <= set(data):
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise DatasetError(f"{path} lacks the parts {sorted(PARTS)} (has {found}); {_FIX}")
    options = [*domain_of, OOS]
    tasks: list[Task] = []
    for part, split in PARTS.items():
        for n, item in enumerate(data[part]):
            if not (
                isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)
            ):
                raise DatasetError(f"{path} {part}[{n}] is not [query, intent]; {_FIX}")
            query, intent = item
            if intent == OOS:
                group = OOS
            elif intent in domain_of:
                group = domain_of[intent]
            else:
                raise DatasetError(
                    f"{path} {part}[{n}] has intent {intent!r}, which domains.json lacks; {_FIX}"
                )
            tasks.append(
                Task(
                    id=f"{part}/{n}",
                    question=query,
                    gold=intent,
                    split=split,
                    group=group,
                    options=options,
                )
            )
    return Dataset(name="clinc150", source=SOURCE, license=LICENSE, copyable=True, tasks=tasks)
