"""The trained routers the router evaluations tune, and the hyper-parameters they try.

``reproductions/eval_routerbench.py`` (cost-aware, N models) and
``reproductions/eval_two_model.py`` (RouteLLM's two-model setting) both fit RouteLLM's three
trained routers (:mod:`routers`' classifier, MF and SW) on a fitting part of train and keep,
per router, the configuration that does best on the validation part. This module holds that
shared table, so the two evaluations try the same grid:

* :data:`TRAINED`: per router name, its agent, its training function and the training
  configurations tried on validation, in the order tried (ties go to the first);
* :func:`described`: a configuration's tuned hyper-parameters as they appear in labels and
  tables (``C=0.3``, ``l2=1e-05``, ``gamma=10``).

An evaluation that needs another grid should say so with a table of its own, not change
this one: the other evaluation's published figures were measured on it. This module never
fits anything and never reads data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from routers import (
    ClassifierTraining,
    MFTraining,
    SWTraining,
    classifier_router,
    mf_router,
    sw_router,
    train_classifier_router,
    train_mf_router,
    train_sw_router,
)

__all__ = ["TRAINED", "described"]

TRAINED: dict[str, tuple[Any, Callable[..., Any], list[Any]]] = {
    "classifier": (
        classifier_router,
        train_classifier_router,
        [ClassifierTraining(c=c) for c in (0.3, 1.0, 3.0)],
    ),
    "MF": (mf_router, train_mf_router, [MFTraining(l2=l2) for l2 in (1e-5, 1e-3)]),
    "SW": (sw_router, train_sw_router, [SWTraining(gamma=g) for g in (1.0, 3.0, 10.0, 30.0)]),
}
"""Router, training function and the configurations tried on validation."""

_TUNED = {"c": "C", "l2": "l2", "gamma": "gamma"}
"""The hyper-parameters :data:`TRAINED` varies (field -> name shown); the others keep their
defaults, so labels leave them out."""


def described(config: BaseModel) -> str:
    """``config``'s tuned hyper-parameters, e.g. ``C=0.3`` (the fields of :data:`_TUNED`)."""
    return ", ".join(f"{_TUNED[k]}={v:g}" for k, v in config.model_dump().items() if k in _TUNED)
