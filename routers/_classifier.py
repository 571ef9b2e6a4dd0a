"""A trained text classifier as router state: labels, embedder and weights, no code.

:class:`IntentClassifier` is what a trained router keeps: the embedder that turns a query into
features (its spec, :mod:`routers._embed`), one linear layer over them (a multinomial logistic
regression fitted with scikit-learn, stored as float32 arrays, :mod:`routers._arrays`), the
rule that picks a set of labels, and the rule that declines a query as out of scope. Loading
one validates plain JSON and copies bytes; scoring is a matrix product in numpy, so a replay on
another machine reads the same numbers the recording did.

:func:`train_classifier` is deterministic: examples are sorted before fitting, the solver is
seeded, and BLAS runs on one thread during the fit (thread count changes the last bits of a
fitted weight, which would change the state's hash). The training set's hash is in the state.

*Our choices*: out-of-scope examples, when given, train an extra ``oos`` class, and the decline
score is the best in-scope logit minus the ``oos`` logit (without negatives: how far the top
probability is above a uniform guess); a set adds the next labels whose probability reaches
``set_ratio`` times the top one, up to ``max_set``; both the ratio and the decline threshold
are tuned on a held-out set when one is given (:func:`calibrate`), never on the data a figure
is reported on.

*Groups*: when the labels belong to groups (an agent's domain, say), a second linear layer over
the same features, the :class:`GroupHead`, learns which group a query is about; it reorders the
set, never its members: the top choice is the member with the best ``log p(label) + weight *
log p(group of label)``, with ``weight`` tuned on held-out data (:func:`calibrate`). A label is
often confused with a similar one of another group, and the group head, trained on every
example of a group at once, tells those apart more often than the label's own row does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from routers._arrays import ArrayData
from routers._embed import (
    CombinedEmbedder,
    CombinedSpec,
    Embedder,
    EmbedderSpec,
    Features,
    TfidfSpec,
    WordLlamaSpec,
    default_embedder,
    embedder_from_spec,
)
from routers._state import register_state_format
from routers.errors import RouterStateError
from traces import hash_value

__all__ = [
    "CLASSIFIER_FORMAT",
    "OOS_LABEL",
    "Classified",
    "GroupChoice",
    "GroupHead",
    "IntentClassifier",
    "LinearLayer",
    "TrainConfig",
    "best_threshold",
    "add_labels",
    "calibrate",
    "label_sets",
    "regroup",
    "remove_labels",
    "classify",
    "training_set_hash",
    "train_classifier",
]

CLASSIFIER_FORMAT = "orch.intent-classifier/1"
OOS_LABEL = "oos"
GROUP_C = 10.0
"""The group head's inverse regularisation (CLINC150 val: flat from 3 to 100; 10 the middle)."""
GROUP_WEIGHT = 0.25
"""The group term's weight before calibration (:func:`calibrate` tunes it)."""
_GROUP_GRID = [round(0.05 * i, 2) for i in range(21)]
_FROZEN = ConfigDict(frozen=True, extra="forbid")


class LinearLayer(BaseModel):
    """``logits = x · weightᵀ + bias``: ``weight`` is (labels, features), float32."""

    model_config = _FROZEN
    weight: ArrayData
    bias: ArrayData


class TrainConfig(BaseModel):
    """How a classifier is trained; recorded in its state."""

    model_config = _FROZEN
    c: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    """Inverse regularisation strength of the logistic regression."""
    max_iter: int = Field(default=2000, ge=10)
    seed: int = 0
    sentence: bool | None = None
    """Add sentence embeddings (the embed extra): None = when installed."""
    min_df: int = Field(default=2, ge=1)
    set_ratio: float = Field(default=0.5, gt=0, le=1, allow_inf_nan=False)
    """Add a label to the set when its probability is at least this times the top one
    (tuned by :func:`calibrate`)."""
    max_set: int = Field(default=3, ge=1)
    max_mean_set: float = Field(default=1.3, ge=1, allow_inf_nan=False)
    """When calibrating: the largest mean set size the ratio may give on held-out data."""
    min_confidence: float = Field(default=0.5, ge=0, lt=1, allow_inf_nan=False)
    """Without out-of-scope examples or calibration: decline when the top probability's
    confidence, (p - 1/K) / (1 - 1/K) over K labels, is below this."""


DeclineFeature = Literal["gap", "energy", "top_probability", "nearest"]


class DeclineCalibrator(BaseModel):
    """The decline score as a weighted sum of per-query features, fitted on held-out in-scope
    queries against held-out out-of-scope ones (:func:`calibrate`).

    ``gap``: best in-scope logit minus the ``oos`` logit; ``energy``: log-sum-exp of the
    in-scope logits; ``top_probability``: the best in-scope probability; ``nearest``: the
    largest cosine between the query's sentence vector and the training texts'."""

    model_config = _FROZEN
    features: list[DeclineFeature] = Field(min_length=1)
    weights: list[float]
    bias: float


class Neighbours(BaseModel):
    """The training texts' sentence vectors (float32, L2-normalised) and their labels."""

    model_config = _FROZEN
    rows: ArrayData
    labels: list[str]


class GroupHead(BaseModel):
    """Which group a query is about: a linear layer over the classifier's features, one row per
    group (sorted), plus a last ``oos`` row when the classifier has one, and the group of each
    label it knows. A label it does not know (onboarded later into a new group) turns the
    reordering off for the queries whose set holds it."""

    model_config = _FROZEN
    groups: list[str] = Field(min_length=2)
    label_groups: dict[str, str]
    layer: LinearLayer
    c: float = Field(gt=0, allow_inf_nan=False)
    """Inverse regularisation it was fitted with."""
    weight: float = Field(default=GROUP_WEIGHT, ge=0, allow_inf_nan=False)
    """How much the group's log-probability counts next to the label's (0: not at all)."""


class IntentClassifier(BaseModel):
    """A trained classifier's state (versioned like all router state)."""

    model_config = _FROZEN
    format: Literal["orch.intent-classifier/1"] = "orch.intent-classifier/1"
    labels: list[str]
    """In-scope labels, sorted; the layer has one more row, last, when ``has_oos``."""
    has_oos: bool
    embedder: EmbedderSpec
    layer: LinearLayer
    set_ratio: float
    max_set: int
    decline_below: float | None
    """Decline when the decline score is below this (None: never). Trained with
    out-of-scope examples it starts at 0 (the ``oos`` class wins), without at
    ``config.min_confidence``; :func:`calibrate` tunes it."""
    config: TrainConfig
    training_set: str
    """Hash of the sorted (text, label) pairs and negative texts it was fitted on."""
    examples: int
    label_sets: dict[str, str]
    """Per label, the hash of its training texts: what tells a changed label from a kept one."""
    added: list[str] = Field(default_factory=list)
    """Labels added after training by the fast path (:func:`add_labels`), not by a fit."""
    calibrator: DeclineCalibrator | None = None
    neighbours: Neighbours | None = None
    """Kept when the embedder has a sentence part: the ``nearest`` decline feature."""
    parent: str | None = None
    groups: GroupHead | None = None
    """Trained when the labels have groups; None is not written out, so states without a
    group head keep the bytes (and versions) they had before group heads existed."""

    @model_serializer(mode="wrap")
    def _without_no_groups(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if self.groups is None and isinstance(data, dict):
            data.pop("groups", None)
        return data

    @property
    def version(self) -> str:
        return hash_value(self)


def label_sets(examples: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Per label, the hash of its (sorted, distinct) training texts."""
    texts: dict[str, set[str]] = {}
    for text, label in examples:
        if text.strip():
            texts.setdefault(label, set()).add(text)
    return {label: hash_value(sorted(t)) for label, t in sorted(texts.items())}


def training_set_hash(examples: Sequence[tuple[str, str]], negatives: Sequence[str]) -> str:
    """The hash a state records for its training data (order-independent)."""
    return hash_value(
        {"examples": sorted([t, y] for t, y in examples), "negatives": sorted(negatives)}
    )


@dataclass(frozen=True)
class GroupChoice:
    """What the group head said about one query: the group of the set's top choice and its
    probability (None when the reordering was off: a member's group is unknown to the head),
    the head's own best group, and the label that was first by probability when the group
    term put another ahead of it."""

    group: str | None
    probability: float | None
    best: str
    best_probability: float
    weight: float
    moved: str | None


@dataclass(frozen=True)
class Classified:
    """One query's scores: probabilities over in-scope labels (sorted by label), the chosen
    set (best first; empty when declined), the decline score and whether it declined, and
    the group head's view when the state has one."""

    probabilities: dict[str, float]
    chosen: list[str]
    decline_score: float
    declined: bool
    ranked: list[tuple[str, float]]
    group: GroupChoice | None = None


class _Loaded:
    """A state's arrays decoded once, with its embedder (built from the recorded spec)."""

    def __init__(self, state: IntentClassifier, embedder: Embedder | None) -> None:
        self.state = state
        self.embedder = embedder or embedder_from_spec(state.embedder)
        if self.embedder.spec != state.embedder:
            raise RouterStateError(
                "the embedder given is not the one this classifier was trained with; fix: "
                "pass none (it is rebuilt from the state) or the recorded one"
            )
        self.sentence_part = _sentence_part(state.embedder)
        self.neighbours = (
            None
            if state.neighbours is None
            else np.array(state.neighbours.rows.to_numpy(), dtype=np.float32)
        )
        self.weight_t = np.array(state.layer.weight.to_numpy(), dtype=np.float32).T.copy()
        self.bias = state.layer.bias.to_numpy().astype(np.float64)
        rows = len(state.labels) + int(state.has_oos)
        if self.weight_t.shape != (self.embedder.dim, rows) or self.bias.shape != (rows,):
            raise RouterStateError(
                f"classifier layer has shape {self.weight_t.shape[::-1]} for {rows} labels and "
                f"{self.embedder.dim} features; fix: the state is damaged, retrain it"
            )
        self.group_weight_t: NDArray[np.float32] | None = None
        self.group_bias: NDArray[np.float64] | None = None
        head = state.groups
        if head is not None:
            self.group_weight_t = np.array(head.layer.weight.to_numpy(), dtype=np.float32).T.copy()
            self.group_bias = head.layer.bias.to_numpy().astype(np.float64)
            rows = len(head.groups) + int(state.has_oos)
            if self.group_weight_t.shape != (self.embedder.dim, rows) or (
                self.group_bias.shape != (rows,)
            ):
                raise RouterStateError(
                    f"group layer has shape {self.group_weight_t.shape[::-1]} for {rows} "
                    f"groups and {self.embedder.dim} features; fix: the state is damaged, "
                    "retrain it"
                )

    def logits(self, features: Features) -> NDArray[np.float64]:
        out = features @ self.weight_t
        return np.asarray(out, dtype=np.float64) + self.bias

    def group_logits(self, features: Features) -> NDArray[np.float64] | None:
        if self.group_weight_t is None or self.group_bias is None:
            return None
        out = features @ self.group_weight_t
        return np.asarray(out, dtype=np.float64) + self.group_bias

    def view(self, texts: Sequence[str]) -> _View:
        """The texts' logits and, when the embedder has a sentence part, their sentence rows
        (and the group head's logits when there is one)."""
        emb = self.embedder
        if self.sentence_part is not None and isinstance(emb, CombinedEmbedder):
            parts = emb.embed_parts(texts)
            sentence = np.asarray(parts[self.sentence_part], dtype=np.float32)
            x = emb.join(parts)
            return _View(self.logits(x), sentence, self.group_logits(x))
        x = emb.embed(texts)
        return _View(self.logits(x), None, self.group_logits(x))


@dataclass(frozen=True)
class _View:
    logits: NDArray[np.float64]
    sentence: NDArray[np.float32] | None
    group_logits: NDArray[np.float64] | None = None


def _sentence_part(spec: TfidfSpec | WordLlamaSpec | CombinedSpec) -> int | None:
    if isinstance(spec, CombinedSpec):
        kinds = [p.spec.kind for p in spec.parts]
        return kinds.index("wordllama") if "wordllama" in kinds else None
    return None


_CACHE: dict[str, _Loaded] = {}


def _loaded(state: IntentClassifier, embedder: Embedder | None = None) -> _Loaded:
    # The same object asks again and again (a router serving queries): found by identity,
    # without hashing a state of tens of megabytes per query. Otherwise by version: a pure
    # function of the state, so the cache cannot change a result.
    hit = _BY_ID.get(id(state))
    if hit is not None and hit[0] is state and (embedder is None or hit[1].embedder is embedder):
        return hit[1]
    key = state.version
    found = _CACHE.get(key)
    if found is None or (embedder is not None and found.embedder is not embedder):
        found = _Loaded(state, embedder)
        if len(_CACHE) >= 8:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = found
    if len(_BY_ID) >= 8:
        _BY_ID.pop(next(iter(_BY_ID)))
    _BY_ID[id(state)] = (state, found)
    return found


_BY_ID: dict[int, tuple[IntentClassifier, _Loaded]] = {}


def _softmax(z: NDArray[np.float64]) -> NDArray[np.float64]:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: NDArray[np.float64] = e / e.sum(axis=1, keepdims=True)
    return out


def _sets(probs: NDArray[np.float64], ratio: float, max_set: int) -> list[list[int]]:
    out = []
    for row in probs:
        # Stable order: ties go to the earlier (sorted) label.
        order = np.argsort(-row, kind="stable")[:max_set]
        top = row[order[0]]
        out.append([int(i) for i in order if row[i] >= ratio * top])
    return out


def _features(
    state: IntentClassifier, loaded: _Loaded, view: _View, names: Sequence[str]
) -> NDArray[np.float64]:
    """The decline features ``names`` of each row of ``view`` (rows x features)."""
    k = len(state.labels)
    inscope = view.logits[:, :k]
    top = inscope.max(axis=1)
    cols = []
    for name in names:
        if name == "gap":
            cols.append(top - view.logits[:, k] if state.has_oos else np.zeros(len(top)))
        elif name == "energy":
            cols.append(top + np.log(np.exp(inscope - top[:, None]).sum(axis=1)))
        elif name == "top_probability":
            cols.append(_softmax(inscope).max(axis=1))
        elif loaded.neighbours is not None and view.sentence is not None:  # nearest
            sims = view.sentence @ loaded.neighbours.T
            cols.append(np.asarray(sims, dtype=np.float64).max(axis=1))
        else:
            cols.append(np.zeros(len(top)))
    return np.column_stack(cols) if cols else np.zeros((len(top), 0))


def _scores(
    state: IntentClassifier, loaded: _Loaded, view: _View, ratio: float
) -> tuple[NDArray[np.float64], list[list[int]], NDArray[np.float64]]:
    """In-scope probabilities (renormalised without ``oos``), each row's set, and the
    decline scores."""
    k = len(state.labels)
    logits = view.logits
    inscope = logits[:, :k]
    probs = _softmax(inscope)
    sets = _sets(probs, ratio, state.max_set)
    cal = state.calibrator
    if cal is not None:
        feats = _features(state, loaded, view, cal.features)
        decline = feats @ np.asarray(cal.weights, dtype=np.float64) + cal.bias
    elif state.has_oos:
        decline = inscope.max(axis=1) - logits[:, k]
    else:
        # How far the set's probability is above what a uniform guess gives a set that size
        # (0 to 1): a query the labels say nothing about spreads its mass evenly.
        decline = np.array(
            [
                (row[s].sum() - len(s) / k) / (1 - len(s) / k) if len(s) < k else float(k == 1)
                for row, s in zip(probs, sets, strict=True)
            ]
        )
    return probs, sets, decline


def _log_softmax(z: NDArray[np.float64]) -> NDArray[np.float64]:
    z = z - z.max(axis=1, keepdims=True)
    out: NDArray[np.float64] = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return out


def _group_order(
    state: IntentClassifier,
    probs: NDArray[np.float64],
    sets: list[list[int]],
    group_logits: NDArray[np.float64],
    weight: float,
) -> tuple[list[list[int]], list[GroupChoice]]:
    """Each set reordered by ``log p(label) + weight * log p(group)`` (ties keep the
    probability order), and what the group head said; see the module docstring."""
    head = state.groups
    assert head is not None
    names = head.groups
    index = {g: i for i, g in enumerate(names)}
    # Groups over in-scope rows only (the oos row renormalised away, as for the labels).
    log_groups = _log_softmax(group_logits[:, : len(names)])
    of = [index.get(head.label_groups.get(lab, ""), -1) for lab in state.labels]
    out_sets: list[list[int]] = []
    out_info: list[GroupChoice] = []
    for row, members, lg in zip(probs, sets, log_groups, strict=True):
        best = int(np.argmax(lg))
        if any(of[i] < 0 for i in members):
            # A member the head cannot place (onboarded into a new group): no reordering.
            out_sets.append(members)
            out_info.append(
                GroupChoice(None, None, names[best], float(np.exp(lg[best])), weight, None)
            )
            continue
        score = [float(np.log(max(row[i], 1e-300))) + weight * float(lg[of[i]]) for i in members]
        order = sorted(range(len(members)), key=lambda j: (-score[j], j))
        new = [members[j] for j in order]
        group = of[new[0]]
        out_sets.append(new)
        out_info.append(
            GroupChoice(
                group=names[group],
                probability=float(np.exp(lg[group])),
                best=names[best],
                best_probability=float(np.exp(lg[best])),
                weight=weight,
                moved=state.labels[members[0]] if new[0] != members[0] else None,
            )
        )
    return out_sets, out_info


def classify(
    state: IntentClassifier,
    texts: Sequence[str],
    *,
    embedder: Embedder | None = None,
    decline_below: float | Literal["state"] | None = "state",
) -> list[Classified]:
    """Score ``texts``; ``decline_below`` overrides the state's threshold (for sweeps)."""
    loaded = _loaded(state, embedder)
    view = loaded.view(texts)
    probs, sets, decline = _scores(state, loaded, view, state.set_ratio)
    infos: list[GroupChoice | None] = [None] * len(sets)
    if state.groups is not None and view.group_logits is not None:
        sets, found = _group_order(state, probs, sets, view.group_logits, state.groups.weight)
        infos = list(found)
    threshold = state.decline_below if decline_below == "state" else decline_below
    out = []
    for row, score, chosen, info in zip(probs, decline, sets, infos, strict=True):
        declined = threshold is not None and bool(score < threshold)
        ranked = sorted(
            ((state.labels[i], float(row[i])) for i in range(len(row))),
            key=lambda kv: (-kv[1], kv[0]),
        )
        out.append(
            Classified(
                probabilities={lab: float(p) for lab, p in zip(state.labels, row, strict=True)},
                chosen=[] if declined else [state.labels[i] for i in chosen],
                decline_score=float(score),
                declined=declined,
                ranked=ranked,
                group=info,
            )
        )
    return out


def _fit_layer(
    features: Features, y: NDArray[np.int64], n_classes: int, config: TrainConfig
) -> LinearLayer:
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    model = LogisticRegression(
        C=config.c, max_iter=config.max_iter, random_state=config.seed, tol=1e-4
    )
    with threadpool_limits(limits=1):
        model.fit(features, y)
    coef, intercept = model.coef_, model.intercept_
    if list(model.classes_) != list(range(n_classes)):
        raise ValueError("every label needs at least one example; fix: add examples")
    layer = LinearLayer(
        weight=ArrayData.of(coef, dtype="float32"), bias=ArrayData.of(intercept, dtype="float32")
    )
    if n_classes == 2 and layer.weight.shape[0] == 1:
        # scikit-learn fits one row for two classes (the second's logit); make it two.
        w, b = layer.weight.to_numpy(), layer.bias.to_numpy()
        layer = LinearLayer(
            weight=ArrayData.of(np.vstack([-w / 2, w / 2]), dtype="float32"),
            bias=ArrayData.of(np.concatenate([-b / 2, b / 2]), dtype="float32"),
        )
    return layer


def _fit_group_head(
    features: Features,
    pairs: Sequence[tuple[str, str]],
    negatives: int,
    labels: Sequence[str],
    groups: Mapping[str, str],
    config: TrainConfig,
    c: float,
) -> GroupHead | None:
    """The group head over the same feature rows (the pairs', then the negatives')."""
    missing = [lab for lab in labels if not groups.get(lab)]
    if missing:
        raise ValueError(
            f"labels {missing[:5]} have no group while others have one; fix: give every "
            "label a group (or pass no groups)"
        )
    names = sorted({groups[lab] for lab in labels})
    if len(names) < 2:
        return None  # one group tells no query from another
    index = {g: i for i, g in enumerate(names)}
    y = np.array([index[groups[lab]] for _, lab in pairs] + [len(names)] * negatives)
    n_classes = len(names) + int(negatives > 0)
    layer = _fit_layer(features, y, n_classes, config.model_copy(update={"c": c}))
    return GroupHead(
        groups=names, label_groups={lab: groups[lab] for lab in labels}, layer=layer, c=c
    )


def train_classifier(
    examples: Sequence[tuple[str, str]],
    negatives: Sequence[str] = (),
    *,
    config: TrainConfig | None = None,
    embedder: Embedder | None = None,
    parent: str | None = None,
    groups: Mapping[str, str] | None = None,
    group_c: float = GROUP_C,
) -> IntentClassifier:
    """Fit a classifier on (text, label) ``examples`` and out-of-scope ``negatives``; with
    ``groups`` (label -> group, every label), also a :class:`GroupHead` (when there are at
    least two groups) with inverse regularisation ``group_c``.

    Same data (in any order) and config give the same state, byte for byte, on one machine
    and BLAS build. The embedder is fitted on the training texts unless one is given.
    """
    cfg = config or TrainConfig()
    pairs = sorted({(t, y) for t, y in examples if t.strip()})
    negs = sorted({t for t in negatives if t.strip()})
    labels = sorted({y for _, y in pairs})
    if not labels:
        raise ValueError("a classifier needs labelled examples (non-blank texts); fix: add some")
    if OOS_LABEL in labels:
        raise ValueError(f"{OOS_LABEL!r} cannot be a label; fix: pass its texts as negatives")
    texts = [t for t, _ in pairs] + negs
    index = {lab: i for i, lab in enumerate(labels)}
    y = np.array([index[lab] for _, lab in pairs] + [len(labels)] * len(negs), dtype=np.int64)
    emb = embedder or default_embedder(texts, sentence=cfg.sentence, min_df=cfg.min_df)
    n_classes = len(labels) + int(bool(negs))
    neighbours = None
    part = _sentence_part(emb.spec)
    if part is not None and isinstance(emb, CombinedEmbedder):
        blocks = emb.embed_parts(texts)
        features = emb.join(blocks)
        neighbours = Neighbours(
            rows=ArrayData.of(np.asarray(blocks[part])[: len(pairs)], dtype="float32"),
            labels=[y for _, y in pairs],
        )
    else:
        features = emb.embed(texts)
    if n_classes == 1:
        # One label and nothing to tell it from: it takes every query (its row, the centroid
        # of its texts, matters only once add_labels gives it company).
        centroid = np.asarray(features.mean(axis=0), dtype=np.float32).reshape(1, -1)
        layer = LinearLayer(
            weight=ArrayData.of(centroid), bias=ArrayData.of(np.zeros(1, np.float32))
        )
    else:
        layer = _fit_layer(features, y, n_classes, cfg)
    head = None
    if groups is not None:
        head = _fit_group_head(features, pairs, len(negs), labels, groups, cfg, group_c)
    return IntentClassifier(
        labels=labels,
        has_oos=bool(negs),
        embedder=emb.spec,
        layer=layer,
        set_ratio=cfg.set_ratio,
        max_set=cfg.max_set,
        decline_below=0.0 if negs else (cfg.min_confidence if len(labels) > 1 else None),
        config=cfg,
        training_set=training_set_hash(pairs, negs),
        label_sets=label_sets(pairs),
        neighbours=neighbours,
        examples=len(texts),
        parent=parent,
        groups=head,
    )


def _ratio_grid() -> list[float]:
    return [round(0.01 * i, 2) for i in range(1, 101)]


def calibrate(
    state: IntentClassifier,
    heldout: Sequence[tuple[str, str]],
    negatives: Sequence[str] = (),
    *,
    embedder: Embedder | None = None,
) -> IntentClassifier:
    """Tune the set ratio, the decline score and its threshold on held-out data.

    The ratio is the smallest on a grid of 0.01 whose mean set size stays within
    ``config.max_mean_set`` (larger sets find the gold label more often). With held-out
    ``negatives``, a :class:`DeclineCalibrator` is fitted (a logistic regression, classes
    balanced, of held-out in-scope queries against the negatives over the decline features:
    ``gap`` or ``top_probability``, ``energy``, and ``nearest`` when the state keeps sentence
    vectors), and the threshold maximises the mean of in-scope accuracy (not declined and the
    label in the set) and out-of-scope recall, the measure a router is tuned for when both
    kinds of mistake matter. Returns the derived state (its parent is the given state's
    version)."""
    if not heldout:
        raise ValueError("calibration needs held-out labelled examples; fix: give some")
    loaded = _loaded(state, embedder)
    texts = [t for t, _ in heldout]
    gold = [y for _, y in heldout]
    view = loaded.view(texts)
    probs = _softmax(view.logits[:, : len(state.labels)])
    ratio = state.set_ratio
    for r in _ratio_grid():
        if np.mean([len(s) for s in _sets(probs, r, state.max_set)]) <= state.config.max_mean_set:
            ratio = r
            break
    update: dict[str, Any] = {"set_ratio": ratio, "parent": state.version}
    if state.groups is not None and view.group_logits is not None:
        sets = _sets(probs, ratio, state.max_set)
        weight = _best_group_weight(state, probs, sets, view.group_logits, gold)
        update["groups"] = state.groups.model_copy(update={"weight": weight})
    negs = [t for t in negatives if t.strip()]
    if negs:
        neg_view = loaded.view(negs)
        names: list[DeclineFeature] = ["gap" if state.has_oos else "top_probability", "energy"]
        if loaded.neighbours is not None:
            names.append("nearest")
        x = np.vstack(
            [
                _features(state, loaded, view, names),
                _features(state, loaded, neg_view, names),
            ]
        )
        y = np.array([1] * len(texts) + [0] * len(negs))
        update["calibrator"] = _fit_calibrator(x, y, names)
        tuned = state.model_copy(update=update)
        _, sets, decline = _scores(tuned, loaded, view, ratio)
        _, _, neg_scores = _scores(tuned, loaded, neg_view, ratio)
        index = {lab: i for i, lab in enumerate(state.labels)}
        hit = np.array([index.get(g, -1) in s for g, s in zip(gold, sets, strict=True)])
        update["decline_below"] = best_threshold(decline, hit, neg_scores)
    return state.model_copy(update=update)


def _best_group_weight(
    state: IntentClassifier,
    probs: NDArray[np.float64],
    sets: list[list[int]],
    group_logits: NDArray[np.float64],
    gold: Sequence[str],
) -> float:
    """The group weight on a grid of 0.05 from 0 to 1 under which the set's top choice is in
    the gold label's group most often on held-out queries; ties to the smallest (0 keeps the
    probability order)."""
    head = state.groups
    assert head is not None
    keep = [i for i, g in enumerate(gold) if g in head.label_groups]
    if not keep:
        return head.weight
    rows = np.asarray(keep)
    sub_sets = [sets[i] for i in keep]
    want = [head.label_groups[gold[i]] for i in keep]
    best, best_right = 0.0, -1
    for weight in _GROUP_GRID:
        ordered, _ = _group_order(state, probs[rows], sub_sets, group_logits[rows], weight)
        right = sum(
            head.label_groups.get(state.labels[s[0]]) == g
            for s, g in zip(ordered, want, strict=True)
        )
        if right > best_right:
            best, best_right = weight, right
    return best


def _fit_calibrator(
    x: NDArray[np.float64], y: NDArray[np.int64], names: Sequence[DeclineFeature]
) -> DeclineCalibrator:
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std == 0] = 1.0
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000)
    with threadpool_limits(limits=1):
        model.fit((x - mean) / std, y)
    # Folded back onto the raw features, so serving needs no scaler.
    weights = model.coef_[0] / std
    bias = float(model.intercept_[0] - (model.coef_[0] * mean / std).sum())
    return DeclineCalibrator(features=list(names), weights=[float(w) for w in weights], bias=bias)


def best_threshold(
    scores: NDArray[np.float64], hit: NDArray[np.bool_], negatives: NDArray[np.float64]
) -> float:
    """The threshold (decline below it) with the best mean of in-scope accuracy (a query
    kept and a ``hit``) and out-of-scope recall (a negative declined); ties to the lowest,
    which declines least."""
    cand = np.unique(np.concatenate([scores, negatives]))
    mids = np.concatenate([[cand[0] - 1e-6], (cand[1:] + cand[:-1]) / 2, [cand[-1] + 1e-6]])
    right = np.sort(scores[hit])
    kept = len(right) - np.searchsorted(right, mids, side="left")
    declined = np.searchsorted(np.sort(negatives), mids, side="left")
    balanced = kept / max(len(scores), 1) + declined / max(len(negatives), 1)
    return float(mids[int(np.argmax(balanced))])


def remove_labels(state: IntentClassifier, labels: Sequence[str]) -> IntentClassifier:
    """The state without ``labels``: their rows dropped, so the softmax renormalises over the
    rest. Exact and instant (the remaining rows are unchanged)."""
    gone = set(labels)
    keep = [i for i, lab in enumerate(state.labels) if lab not in gone]
    if len(keep) == len(state.labels):
        return state
    rows = keep + ([len(state.labels)] if state.has_oos else [])
    w, b = state.layer.weight.to_numpy(), state.layer.bias.to_numpy()
    head = state.groups
    if head is not None:
        # The group rows stay: a group that lost its labels is simply never a top choice's.
        head = head.model_copy(
            update={"label_groups": {k: v for k, v in head.label_groups.items() if k not in gone}}
        )
    return state.model_copy(
        update={
            "labels": [state.labels[i] for i in keep],
            "layer": LinearLayer(weight=ArrayData.of(w[rows]), bias=ArrayData.of(b[rows])),
            "added": [lab for lab in state.added if lab not in gone],
            "label_sets": {k: v for k, v in state.label_sets.items() if k not in gone},
            "neighbours": _drop_neighbours(state.neighbours, gone),
            "parent": state.version,
            "groups": head,
        }
    )


def regroup(state: IntentClassifier, label_groups: Mapping[str, str]) -> IntentClassifier:
    """The state with its group head's label -> group map set from ``label_groups`` (labels
    it does not have, and groups the head was not trained on, left out: such a label turns
    the reordering off where it is in a set). The same state when nothing changes or it has
    no group head; else a derived version."""
    head = state.groups
    if head is None:
        return state
    known = set(head.groups)
    now = {lab: label_groups[lab] for lab in state.labels if label_groups.get(lab) in known}
    if now == head.label_groups:
        return state
    return state.model_copy(
        update={
            "groups": head.model_copy(update={"label_groups": now}),
            "parent": state.version,
        }
    )


_KNOWN_PER_LABEL = 12


def _drop_neighbours(found: Neighbours | None, gone: set[str]) -> Neighbours | None:
    if found is None:
        return None
    keep = [i for i, lab in enumerate(found.labels) if lab not in gone]
    return Neighbours(
        rows=ArrayData.of(found.rows.to_numpy()[keep]), labels=[found.labels[i] for i in keep]
    )


def add_labels(
    state: IntentClassifier,
    new: Sequence[tuple[str, str]],
    known: Sequence[tuple[str, str]],
    negatives: Sequence[str] = (),
    *,
    embedder: Embedder | None = None,
) -> IntentClassifier:
    """The state with the labels of ``new`` (text, label) examples added, the trained rows
    held fixed.

    The new rows (weights and bias) minimise the same regularised cross-entropy as training,
    over the new examples, ``known`` examples of the labels the state has and the
    out-of-scope ``negatives``, with every other row frozen: a small convex problem
    (L-BFGS from zero, deterministic), so onboarding at run time takes a moment, not a
    retraining. A full refit (:func:`train_classifier`) can still be better; it is what the
    next training does."""
    from scipy.optimize import minimize

    loaded = _loaded(state, embedder)
    by_label: dict[str, list[str]] = {}
    for text, label in sorted(set(new)):
        if label in state.labels or label == OOS_LABEL:
            raise ValueError(f"label {label!r} is already in the classifier; fix: remove it first")
        if text.strip():
            by_label.setdefault(label, []).append(text)
    if not by_label:
        return state
    k, m = len(state.labels), len(by_label)
    index = {lab: i for i, lab in enumerate(state.labels)}
    # The trained rows only enter through the softmax's normaliser, so a few examples of
    # each known label are enough to place the new rows against them (and keep this quick).
    # Each kept example stands for its label's others (weight = examples / kept), so the
    # objective is the full one's estimate, not a different problem.
    per_label: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    for t, y in sorted({(t, y) for t, y in known if y in index and t.strip()}):
        counts[y] = counts.get(y, 0) + 1
        if len(per_label.setdefault(y, [])) < _KNOWN_PER_LABEL:
            per_label[y].append(t)
    seen = [(t, y) for y, texts in sorted(per_label.items()) for t in texts]
    negs = sorted({t for t in negatives if t.strip()}) if state.has_oos else []
    fresh = [(t, lab) for lab, texts in by_label.items() for t in texts]
    texts = [t for t, _ in seen] + [t for t, _ in fresh] + negs
    old_target = [index[y] for _, y in seen] + [-1] * len(fresh) + [k] * len(negs)
    new_target = [-1] * len(seen) + [list(by_label).index(y) for _, y in fresh] + [-1] * len(negs)
    emb = loaded.embedder
    sentence_rows = None
    if loaded.sentence_part is not None and isinstance(emb, CombinedEmbedder):
        blocks = emb.embed_parts(texts)
        x = emb.join(blocks)
        sentence_rows = np.asarray(blocks[loaded.sentence_part], dtype=np.float32)
    else:
        x = emb.embed(texts)
    fixed = loaded.logits(x)  # (n, k [+ oos]): the trained rows, frozen
    n, d = len(texts), loaded.embedder.dim
    y_old = np.zeros_like(fixed)
    y_new = np.zeros((n, m))
    for i, (old, new_row) in enumerate(zip(old_target, new_target, strict=True)):
        if old >= 0:
            y_old[i, old] = 1.0
        else:
            y_new[i, new_row] = 1.0
    c = state.config.c
    weight = np.array(
        [counts[y] / len(per_label[y]) for _, y in seen] + [1.0] * (len(fresh) + len(negs))
    )[:, None]

    def loss(theta: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        w = theta[: m * d].reshape(m, d)
        bias = theta[m * d :]
        z_new = np.asarray(x @ w.T, dtype=np.float64) + bias
        z = np.hstack([fixed, z_new])
        z -= z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        target = np.hstack([y_old, y_new])
        value = -c * float((weight * target * log_p).sum()) + 0.5 * float((w * w).sum())
        g = c * weight * (np.exp(log_p[:, fixed.shape[1] :]) - y_new)  # (n, m)
        grad_w = np.asarray(g.T @ x, dtype=np.float64).reshape(m, d) + w
        return value, np.concatenate([grad_w.ravel(), g.sum(axis=0)])

    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        fit = minimize(
            loss,
            np.zeros(m * d + m),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": min(state.config.max_iter, 200)},
        )
    w_new = fit.x[: m * d].reshape(m, d)
    b_new = fit.x[m * d :]
    w, b = state.layer.weight.to_numpy(), state.layer.bias.to_numpy()
    labels = [*state.labels, *by_label]
    weights = np.vstack([w[:k], w_new, w[k:]])
    biases = np.concatenate([b[:k], b_new, b[k:]])
    order = sorted(range(k + m), key=labels.__getitem__)
    rows_out = order + ([k + m] if state.has_oos else [])
    return state.model_copy(
        update={
            "labels": [labels[i] for i in order],
            "layer": LinearLayer(
                weight=ArrayData.of(weights[rows_out], dtype="float32"),
                bias=ArrayData.of(biases[rows_out], dtype="float32"),
            ),
            "added": sorted({*state.added, *by_label}),
            "label_sets": dict(sorted({**state.label_sets, **label_sets(new)}.items())),
            "neighbours": _grow_neighbours(
                state.neighbours, sentence_rows, len(seen), [y for _, y in fresh]
            ),
            "parent": state.version,
        }
    )


def _grow_neighbours(
    found: Neighbours | None, rows: NDArray[np.float32] | None, start: int, labels: list[str]
) -> Neighbours | None:
    # The new examples' sentence rows follow the known ones in the embedded batch.
    if found is None or rows is None:
        return found
    added = rows[start : start + len(labels)]
    return Neighbours(
        rows=ArrayData.of(np.vstack([found.rows.to_numpy(), added]), dtype="float32"),
        labels=[*found.labels, *labels],
    )


def _summary(state: IntentClassifier) -> str:
    kinds = state.embedder.kind
    return (
        f"classifier over {len(state.labels)} labels"
        + (" + oos" if state.has_oos else "")
        + f", {state.examples} training texts, embedder {kinds}"
        + (f", {len(state.added)} added since training" if state.added else "")
        + (f", group head over {len(state.groups.groups)} groups" if state.groups else "")
    )


register_state_format(CLASSIFIER_FORMAT, IntentClassifier, _summary)
