"""Text statistics as an embedder part: known values, one row alone or in a batch, a spec
that rebuilds the same rows and the same fingerprint, and its place inside a combination."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from routers import TextStatsEmbedder
from routers._arrays import ArrayData
from routers._embed import (
    TEXT_STATS,
    CombinedEmbedder,
    CombinedSpec,
    TextStatsSpec,
    TfidfEmbedder,
    embedder_from_spec,
)
from routers._quality import QualityState
from routers.errors import RouterStateError

TEXTS = [
    "What is 12 + 30?",
    "Janet has $3.50 and 4 apples.\nHow many dollars?",
    "def f(x):\n    return x\n",
    "",
]


def _unit(features: list[str] | None = None) -> TextStatsEmbedder:
    """Raw statistics out: mean 0 and scale 1 for each feature."""
    names = features or list(TEXT_STATS)
    return TextStatsEmbedder(
        TextStatsSpec.model_validate(
            {
                "features": names,
                "mean": ArrayData.of(np.zeros(len(names)), dtype="float64"),
                "scale": ArrayData.of(np.ones(len(names)), dtype="float64"),
            }
        )
    )


def test_raw_statistics_of_known_strings() -> None:
    rows = _unit().embed(TEXTS)
    assert rows.dtype == np.float32 and rows.shape == (4, len(TEXT_STATS))
    text = TEXTS[1]  # 47 characters, 9 words, 4 digits, numbers 3.50 and 4, 1 line break
    expected = [
        math.log1p(len(text)),
        math.log1p(9),
        4 / len(text),
        math.log1p(2),
        math.log1p(1),
        math.log1p(1),
        math.log1p(1),
    ]
    assert np.allclose(rows[1], expected, atol=1e-6)
    assert np.allclose(rows[0, [3, 5, 6]], [math.log1p(2), math.log1p(1), 0.0])
    assert (rows[3] == 0).all()  # an empty text: every statistic 0, no NaN
    only = _unit(["log_dollars", "log_words"]).embed([text])
    assert np.allclose(only[0], [math.log1p(1), math.log1p(9)])


def test_fit_standardises_by_the_training_texts() -> None:
    emb = TextStatsEmbedder.fit(TEXTS)
    rows = emb.embed(TEXTS).astype(np.float64)
    assert np.allclose(rows.mean(0), 0.0, atol=1e-6)
    varying = rows.std(0) > 0
    assert np.allclose(rows.std(0)[varying], 1.0, atol=1e-5)
    same = TextStatsEmbedder.fit(["a b", "c d"])  # words and length never vary: scale 1
    assert same.spec.scale.to_numpy().tolist()[:2] == [1.0, 1.0]
    assert (same.embed(["a b"])[0] == 0).all()


@settings(max_examples=25, deadline=None)
@given(st.permutations(TEXTS))
def test_fit_does_not_depend_on_text_order(order: list[str]) -> None:
    assert TextStatsEmbedder.fit(order).fingerprint == TextStatsEmbedder.fit(TEXTS).fingerprint


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(max_size=60), min_size=1, max_size=6))
def test_a_text_embeds_the_same_alone_or_in_a_batch(texts: list[str]) -> None:
    emb = TextStatsEmbedder.fit(TEXTS)
    batch = emb.embed(texts)
    for i, text in enumerate(texts):
        assert (emb.embed([text])[0] == batch[i]).all()


def test_spec_round_trips_to_the_same_rows() -> None:
    emb = TextStatsEmbedder.fit(TEXTS)
    spec = TextStatsSpec.model_validate_json(emb.spec.model_dump_json())
    again = embedder_from_spec(spec)
    assert isinstance(again, TextStatsEmbedder)
    assert again.fingerprint == emb.fingerprint
    assert (again.embed(TEXTS) == emb.embed(TEXTS)).all()


def test_combined_with_tfidf_round_trips_through_the_combined_spec() -> None:
    combined = CombinedEmbedder(
        [(TfidfEmbedder.fit(TEXTS[:3]), 1.0), (TextStatsEmbedder.fit(TEXTS), 0.5)]
    )
    spec = CombinedSpec.model_validate_json(combined.spec.model_dump_json())
    again = embedder_from_spec(spec)
    assert again.fingerprint == combined.fingerprint
    rows, back = combined.embed(TEXTS), again.embed(TEXTS)
    assert sp.issparse(rows) and (rows != back).nnz == 0
    stats = TextStatsEmbedder.fit(TEXTS).embed(TEXTS) * np.float32(0.5)
    assert np.allclose(sp.csr_matrix(rows).toarray()[:, -len(TEXT_STATS) :], stats)


def test_text_statistics_alone_are_not_a_router_embedder() -> None:
    spec = TextStatsEmbedder.fit(TEXTS).spec.model_dump()
    with pytest.raises(ValidationError):
        QualityState.model_validate(
            {
                "models": ["a"],
                "mean_quality": [1.0],
                "mean_cost_usd": [0.0],
                "embedder": spec,
                "training_set": "x",
                "examples": 1,
            }
        )


def test_damaged_or_bad_text_statistics_are_refused() -> None:
    spec = TextStatsEmbedder.fit(TEXTS).spec
    with pytest.raises(RouterStateError, match="scales must be > 0"):
        TextStatsEmbedder(
            spec.model_copy(update={"scale": ArrayData.of(np.zeros(7), dtype="float64")})
        )
    with pytest.raises(RouterStateError, match="7 features but mean of shape"):
        TextStatsEmbedder(
            spec.model_copy(update={"mean": ArrayData.of(np.zeros(3), dtype="float64")})
        )
    with pytest.raises(ValidationError):
        TextStatsSpec.model_validate({**spec.model_dump(), "features": ["log_colons"]})
    with pytest.raises(ValueError, match="need training texts"):
        TextStatsEmbedder.fit([])
