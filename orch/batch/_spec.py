"""Describing a batch: one pipeline over many inputs, each input fixed as one future run.

:meth:`BatchSpec.create` loads the pipeline, checks and encodes every input against it (a bad
one is a :class:`~orch.errors.BatchInputError` naming its index and the fix), and fixes for
input ``i`` what every process that makes its run must agree on: its run id ``BATCH-i``, its
seed (:func:`item_seed`) and its fingerprint (``key``: spec hash, inputs, seed). The spec names
the pipeline by an absolute ``FILE.py:NAME`` and the store by an absolute location, so that
processes with other working directories, on other machines, open the same ones.

This module only describes; it never runs anything or writes to a store (see
:mod:`orch.batch._item` and :mod:`orch.batch._executor`), and must never import ``agents`` or
``routers``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orch._lease import DEFAULT_LEASE_SECONDS
from orch._loader import load_pipeline, split_target
from orch._pipeline import Pipeline
from orch._runtime import type_adapter, validate_inputs
from orch._version import __version__
from orch.errors import BatchInputError, ExecutorError, InputError
from traces import TraceError, canonical_bytes, check_run_id, default_store_location, digest

__all__ = [
    "BatchHeader",
    "BatchItem",
    "BatchSpec",
    "absolute_services_target",
    "absolute_store_location",
    "absolute_target",
    "is_module_target",
    "item_seed",
]

_BATCH_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,95}$")
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def item_seed(seed: int, index: int) -> int:
    """The run seed of input ``index``: a hash of (batch seed, index), so that seeded steps
    draw afresh for every input yet the same wherever and whenever the run is made."""
    h = hashlib.sha256(f"{seed}\x00{index}".encode()).digest()
    return int.from_bytes(h[:7], "big")


def absolute_target(target: str) -> str:
    """``FILE.py[:NAME]`` with an absolute path, as every process must import it."""
    path, name = split_target(target)
    return f"{Path(path).expanduser().resolve()}:{name}"


def is_module_target(target: str) -> bool:
    """True for ``package.module:NAME`` (imported by module name wherever it runs), False for
    ``FILE.py[:NAME]`` (imported from that path)."""
    module, sep, name = target.rpartition(":")
    return (
        bool(sep)
        and name.isidentifier()
        and not module.endswith(".py")
        and all(part.isidentifier() for part in module.split("."))
    )


def absolute_services_target(target: str) -> str:
    """``FILE.py[:NAME]`` as ``/absolute/FILE.py:NAME`` (NAME defaults to ``services``), or
    ``package.module:NAME`` as it is: a module installed in every process imports by name,
    wherever its files are."""
    if is_module_target(target):
        return target
    path, sep, name = target.rpartition(":")
    if not sep or not name.isidentifier():
        path, name = target, "services"
    return f"{Path(path).expanduser().resolve()}:{name}"


def _json_params(what: str, params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``params`` checked to be JSON (they travel to every worker and name the batch)."""
    if not params:
        return None
    try:
        canonical_bytes(dict(params))
    except TraceError as exc:
        raise ExecutorError(
            f"the {what} parameters cannot be sent to workers: {exc}; fix: give JSON values "
            "(strings, numbers, booleans, lists and objects)"
        ) from None
    return {k: params[k] for k in sorted(params)}


def absolute_store_location(location: str | None) -> str:
    """``location`` (default ``$ORCH_STORE``, else ``.orch``) with any path made absolute, so
    that processes with other working directories open the same store."""
    loc = default_store_location() if location is None else location
    if loc in ("memory:", "memory://") or not loc.strip():
        return loc
    if loc.startswith("sqlite:"):
        path = loc.removeprefix("sqlite:")
        path = path[2:] if path.startswith("//") else path
        return "sqlite://" + str(Path(path).expanduser().resolve()) if path else loc
    if loc.startswith("file://"):
        return "file://" + str(Path(loc.removeprefix("file://")).expanduser().resolve())
    if _SCHEME_RE.match(loc):
        return loc  # a server (postgresql://...): the same address from everywhere
    return str(Path(loc).expanduser().resolve())


@dataclass(frozen=True)
class BatchItem:
    """One input of a batch: what a worker needs to make (or find) its run."""

    index: int
    run_id: str
    """The first attempt's run id, ``BATCH-INDEX``; later attempts add ``.rN``."""
    inputs: dict[str, Any]
    """The pipeline inputs as validated and dumped to JSON (what the run records)."""
    seed: int
    key: str
    """Fingerprint of (spec hash, inputs, seed): a run found under this input's id must carry
    it, or it belongs to another batch that reused the id."""


@dataclass(frozen=True)
class BatchHeader:
    """What every run of a batch shares (sent once with each chunk of items)."""

    batch_id: str
    pipeline: str
    """``/absolute/FILE.py:NAME``: importable at that path in every process that runs it."""
    spec_hash: str
    """The pipeline's spec hash where the batch was made; a worker that loads another refuses."""
    store: str
    services: str | None
    max_concurrency: int
    orch_version: str = __version__
    params: dict[str, Any] | None = None
    """Keyword arguments of the pipeline function (a sweep's setting), or None."""
    services_params: dict[str, Any] | None = None
    """Keyword arguments of the services function, or None."""
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    """How long a process working on an input may go without renewing its lease before
    another takes the input over (see :mod:`orch._lease`)."""


@dataclass(frozen=True)
class BatchSpec:
    """A pipeline over many inputs. Build it with :meth:`create`, which checks everything."""

    batch_id: str
    pipeline: str
    spec_hash: str
    store: str
    items: tuple[BatchItem, ...]
    services: str | None = None
    """``/absolute/FILE.py:NAME`` or ``package.module:NAME``: a mapping, or a function
    returning one, of the objects agents reach with ``ctx.service``; None means the pipeline
    file's own ``services``, as ``orch run`` uses."""
    seed: int = 0
    max_concurrency: int = 64
    """Steps at once within each run."""
    params: dict[str, Any] | None = None
    """Keyword arguments the pipeline function is called with (JSON), or None."""
    services_params: dict[str, Any] | None = None
    """Keyword arguments the services function is called with (JSON), or None."""
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    """An input's lease time: after a worker dies, its inputs wait this long (unrenewed)
    before another process takes them over."""

    @property
    def inputs(self) -> list[dict[str, Any]]:
        return [item.inputs for item in self.items]

    @property
    def seeds(self) -> list[int]:
        return [item.seed for item in self.items]

    def header(self) -> BatchHeader:
        return BatchHeader(
            self.batch_id,
            self.pipeline,
            self.spec_hash,
            self.store,
            self.services,
            self.max_concurrency,
            params=self.params,
            services_params=self.services_params,
            lease_seconds=self.lease_seconds,
        )

    @classmethod
    def create(
        cls,
        pipeline: str,
        inputs: Sequence[Mapping[str, Any]],
        *,
        store: str | None = None,
        services: str | None = None,
        seed: int = 0,
        seeds: Sequence[int] | None = None,
        batch_id: str | None = None,
        max_concurrency: int = 64,
        params: Mapping[str, Any] | None = None,
        services_params: Mapping[str, Any] | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> BatchSpec:
        """Load ``pipeline`` (``FILE.py[:NAME]``), check every input against it, and fix the
        run ids and seeds. Raises :class:`~orch.errors.BatchInputError` naming the first bad
        input.

        ``params`` are keyword arguments of the pipeline function (one setting of a sweep),
        ``services`` is ``FILE.py[:NAME]`` or ``package.module:NAME`` and ``services_params``
        the keyword arguments its function takes; all must be JSON, as every worker gets them.

        Without ``seeds``, input ``i`` runs with :func:`item_seed` ``(seed, i)``. Without
        ``batch_id``, the id is derived from the spec hash, inputs, seeds and services
        parameters, so submitting the same batch again finds its runs instead of making new
        ones (give a new id to run it afresh)."""
        target = absolute_target(pipeline)
        params = _json_params("pipeline", params)
        services_params = _json_params("services", services_params)
        if services_params is not None and services is None:
            raise ExecutorError(
                "services parameters were given without services; fix: name the services "
                "function that takes them (FILE.py:NAME or package.module:NAME)"
            )
        pipe = load_pipeline(target, params)
        _check_shape(len(inputs), seeds, max_concurrency, lease_seconds)
        run_seeds = (
            list(seeds) if seeds is not None else [item_seed(seed, i) for i in range(len(inputs))]
        )
        batch_id, items = _fix_items(pipe, inputs, run_seeds, batch_id, services_params)
        return cls(
            batch_id=batch_id,
            pipeline=target,
            spec_hash=pipe.spec_hash,
            store=absolute_store_location(store),
            items=items,
            services=None if services is None else absolute_services_target(services),
            seed=seed,
            max_concurrency=max_concurrency,
            params=params,
            services_params=services_params,
            lease_seconds=lease_seconds,
        )


def _check_shape(
    n_inputs: int, seeds: Sequence[int] | None, max_concurrency: int, lease_seconds: float
) -> None:
    """The batch's size, seeds and limits, checked before any input is."""
    if not n_inputs:
        raise ExecutorError("the batch has no inputs; fix: give at least one set of inputs")
    if seeds is not None and len(seeds) != n_inputs:
        raise ExecutorError(
            f"the batch has {n_inputs} inputs but {len(seeds)} seeds; fix: give one "
            "seed per input, or none (each then derives from the batch seed)"
        )
    if max_concurrency < 1:
        raise ExecutorError(f"max_concurrency is {max_concurrency}; fix: use 1 or more")
    if not 0.1 <= lease_seconds <= 86400:
        raise ExecutorError(
            f"lease_seconds is {lease_seconds}; fix: give a lease time from 0.1 to 86400 "
            f"seconds (default {DEFAULT_LEASE_SECONDS:g})"
        )


def _fix_items(
    pipe: Pipeline,
    inputs: Sequence[Mapping[str, Any]],
    seeds: list[int],
    batch_id: str | None,
    services_params: dict[str, Any] | None,
) -> tuple[str, tuple[BatchItem, ...]]:
    """Each input fixed as one future run (encoded, fingerprinted, given its run id), and
    the batch id they share: ``batch_id``, or one derived from what the runs receive."""
    encoded = [_encode_inputs(pipe, i, values) for i, values in enumerate(inputs)]
    keys = [
        _item_key(pipe.spec_hash, i, enc, s)
        for i, (enc, s) in enumerate(zip(encoded, seeds, strict=True))
    ]
    if batch_id is None:
        # The services' parameters (a dataset's name, say) change what runs receive, so
        # they name another batch; services themselves are code, like the pipeline's.
        named: Any = keys if services_params is None else [keys, services_params]
        batch_id = "batch-" + digest(canonical_bytes(named)).partition(":")[2][:12]
    elif not _BATCH_ID_RE.match(batch_id):
        raise ExecutorError(
            f"batch id {batch_id!r} cannot name runs; fix: use up to 96 letters, digits, "
            "'-' or '_', starting with a letter or digit"
        )
    width = max(5, len(str(len(inputs) - 1)))
    items = tuple(
        BatchItem(i, check_run_id(f"{batch_id}-{i:0{width}d}"), enc, s, k)
        for i, (enc, s, k) in enumerate(zip(encoded, seeds, keys, strict=True))
    )
    return batch_id, items


def _encode_inputs(pipe: Pipeline, index: int, values: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(values, Mapping):
        raise BatchInputError(
            index,
            f"input #{index} is a {type(values).__name__}, not a mapping of input name to "
            f"value; fix: give e.g. {{{', '.join(repr(n) + ': ...' for n in pipe.inputs)}}}",
        )
    try:
        checked = validate_inputs(pipe, values)
        return {
            name: type_adapter(pipe.inputs[name]).dump_python(value, mode="json")
            for name, value in sorted(checked.items())
        }
    except InputError as exc:
        raise BatchInputError(index, f"input #{index}: {exc}") from None


def _item_key(spec_hash: str, index: int, inputs: dict[str, Any], seed: int) -> str:
    try:
        return digest(canonical_bytes({"spec_hash": spec_hash, "inputs": inputs, "seed": seed}))
    except TraceError as exc:  # a non-finite float, say: the run could not record it either
        raise BatchInputError(index, f"input #{index} cannot be recorded: {exc}") from None
