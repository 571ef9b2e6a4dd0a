"""Claims across processes: racing processes on one store, each claim won exactly once.

The conformance suite races threads of one process; here separate processes race, as workers
of a batch on one machine (or on several, sharing the directory or database) do. The
PostgreSQL store runs the same race in ``test_pgstore.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from claim_racer import assert_one_winner_each, race

from traces import ArtifactStore, MemoryStore
from traces._open import open_store


@pytest.mark.parametrize("kind", ["directory", "sqlite"])
def test_racing_processes_win_each_claim_once(kind: str, tmp_path: Path) -> None:
    location = str(tmp_path / "store") if kind == "directory" else f"sqlite:///{tmp_path}/s.db"
    open_store(location).close()  # created before the race, as a batch's client does
    won = race(location, tmp_path / "go")
    with open_store(location) as store:
        assert_one_winner_each(store, won)


def test_a_store_without_claims_says_how_to_add_them() -> None:
    class Plain(MemoryStore):
        supports_claims = False
        read_claim = ArtifactStore.read_claim
        swap_claim = ArtifactStore.swap_claim

    store = Plain()
    with pytest.raises(NotImplementedError, match="fix: implement read_claim and swap_claim"):
        store.swap_claim("input-1", None, b"x")
