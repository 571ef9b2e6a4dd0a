"""What serving routers share within one process: checked states and query embeddings.

A routing agent reads its trained state by version (``ctx.load``) on every run. Two things
are worth doing once per process, and both are keyed by content hashes, so neither can
change a decision:

* :func:`checked_state`: the state read from the run's store, checked once against the
  version that names it (a store nobody vouches for may hold other bytes under a key; the
  check is that the state, re-encoded, hashes to its version). A state that does not is
  refused with a :class:`~routers.errors.RouterStateError` naming the version.
* :func:`serving_embedder`: one :class:`~routers._embed.CachedEmbedder` per embedder
  fingerprint, so the kNN, classifier, MF and SW routers serving the same query with the
  same embedder embed it once. Both embedders of :mod:`routers._embed` give a text the same
  row alone or in a batch (TF-IDF rows are computed per text; wordllama's mean over a text's
  tokens ignores the padding of its batch), which is what makes a shared cache safe for
  replay: a fresh process that embeds in another order reads the same numbers.

:func:`cosines` is the per-query product both use: one query's dot products with many
L2-normalised rows, computed row by row without BLAS (scikit-learn's ``linear_kernel``
validates its arguments on every call, which costs more than the product for one query, and
a BLAS matrix-vector product waits on its thread pool when the machine is busy).

This module must never hold anything not named by a hash, and never train.
"""

from __future__ import annotations

import threading
from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from pydantic import BaseModel

from orch import Context
from routers._embed import CachedEmbedder, CombinedSpec, Features, TfidfSpec, WordLlamaSpec
from routers._embed import embedder_from_spec as _from_spec
from routers.errors import RouterStateError
from traces import hash_value

__all__ = ["checked_state", "cosines", "serving_embedder"]

StateT = TypeVar("StateT", bound=BaseModel)
_CHECKED: dict[tuple[str, type[BaseModel]], BaseModel] = {}
_CHECKED_MAX = 32
_EMBEDDERS: dict[str, CachedEmbedder] = {}
_lock = threading.Lock()


def checked_state(ctx: Context, version: str, cls: type[StateT]) -> StateT:
    """The state ``version`` of the run's store as ``cls``, refused unless it hashes to
    ``version`` (checked once per process)."""
    found = _CHECKED.get((version, cls))
    if found is not None:
        return found  # type: ignore[return-value]
    state = ctx.load(version, cls)
    if hash_value(state) != version:
        raise RouterStateError(
            f"router state {version} does not hash to its version; fix: the store is damaged "
            "or tampered with, restore the state or retrain it"
        )
    with _lock:
        if len(_CHECKED) >= _CHECKED_MAX:
            _CHECKED.pop(next(iter(_CHECKED)))
        _CHECKED[(version, cls)] = state
    return state


def serving_embedder(spec: TfidfSpec | WordLlamaSpec | CombinedSpec) -> CachedEmbedder:
    """The process's cached embedder for ``spec`` (rebuilt from the spec alone): what the
    serving routers embed with. Hashes the spec: call it once per state, not per query. An
    evaluation that trains with it finds the training texts embedded when the routers serve
    (the SW router and the kNN index embed theirs on first use)."""
    key = hash_value(spec)
    with _lock:
        found = _EMBEDDERS.get(key)
    if found is None:
        found = CachedEmbedder(_from_spec(spec))
        with _lock:
            if len(_EMBEDDERS) >= 8:
                _EMBEDDERS.pop(next(iter(_EMBEDDERS)))
            found = _EMBEDDERS.setdefault(key, found)
    return found


def cosines(queries: Features, rows: Any) -> NDArray[np.float64]:
    """(queries, rows) dot products of feature rows (dense or sparse, L2-normalised: the
    cosine similarities); ``rows`` as an embedder gave them."""
    if sp.issparse(rows) or sp.issparse(queries):
        left = rows if sp.issparse(rows) else sp.csr_matrix(rows)
        right = queries if sp.issparse(queries) else sp.csr_matrix(queries)
        return np.asarray((left @ right.T).toarray().T, dtype=np.float64)
    dense = np.asarray(rows)
    if queries.shape[0] == 1:
        # Products and a sum per row, without BLAS: each row's cosine is the same whatever
        # the number of BLAS threads, and one query never waits on a thread pool.
        row = (dense * np.asarray(queries)[0]).sum(axis=1, dtype=np.float64)
        return np.asarray(row, dtype=np.float64)[None, :]
    return np.asarray(np.asarray(queries) @ dense.T, dtype=np.float64)
