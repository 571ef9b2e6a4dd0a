"""The embedding seam: rebuilt from its spec to the same vectors, cached without changing a
row, the sentence model loaded only from files matching their pinned sha256."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from routers._embed import (
    CachedEmbedder,
    CombinedEmbedder,
    TfidfEmbedder,
    TfidfSpec,
    WordLlamaEmbedder,
    default_embedder,
    embedder_from_spec,
    sentence_embeddings_available,
)
from routers.errors import EmbedderUnavailable, RouterStateError
from traces import hash_value

CORPUS = [
    "book a flight to paris tomorrow",
    "what is my checking account balance",
    "transfer money from savings to checking",
    "is my flight to boston on time",
    "set an alarm for 7 am",
    "what's the weather like in paris",
    "cancel my alarm",
    "how much money do i have",
]
needs_sentence = pytest.mark.skipif(
    not sentence_embeddings_available() and not __import__("os").environ.get("CI"),
    reason="the embed extra (wordllama) is not installed; CI installs it",
)


def _dense(x: object) -> np.ndarray:
    return x.toarray() if sp.issparse(x) else np.asarray(x)  # type: ignore[attr-defined]


def test_tfidf_rebuilt_from_its_spec_gives_identical_rows() -> None:
    emb = TfidfEmbedder.fit(CORPUS, analyzer="char_wb", ngram_range=(2, 4))
    spec = TfidfSpec.model_validate_json(emb.spec.model_dump_json())
    again = embedder_from_spec(spec)
    queries = ["flight to paris?", "balance", "", "zzz unseen words"]
    assert again.fingerprint == emb.fingerprint
    assert (_dense(again.embed(queries)) == _dense(emb.embed(queries))).all()
    rows = _dense(emb.embed(queries))
    assert rows.dtype == np.float32
    norms = np.linalg.norm(rows, axis=1)
    assert np.allclose(norms[[0, 1]], 1.0, atol=1e-6)
    assert norms[2] == 0.0  # an empty query has no features, and no NaN


@settings(max_examples=25, deadline=None)
@given(st.permutations(CORPUS))
def test_tfidf_fit_does_not_depend_on_text_order(order: list[str]) -> None:
    assert TfidfEmbedder.fit(order).fingerprint == TfidfEmbedder.fit(CORPUS).fingerprint


def test_tfidf_of_texts_without_terms_embeds_to_zero_columns() -> None:
    emb = TfidfEmbedder.fit(["!!", "?"])
    assert emb.dim == 0
    assert emb.embed(["anything"]).shape == (1, 0)


def test_damaged_tfidf_spec_is_refused() -> None:
    spec = TfidfEmbedder.fit(CORPUS).spec
    with pytest.raises(RouterStateError, match="terms but an idf"):
        TfidfEmbedder(spec.model_copy(update={"terms": spec.terms[:-1]}))
    with pytest.raises(RouterStateError, match="repeats a term"):
        TfidfEmbedder(spec.model_copy(update={"terms": [spec.terms[0]] * len(spec.terms)}))


def test_combined_weights_scale_each_block() -> None:
    words = TfidfEmbedder.fit(CORPUS)
    chars = TfidfEmbedder.fit(CORPUS, analyzer="char_wb", ngram_range=(2, 3))
    both = CombinedEmbedder([(words, 1.0), (chars, 0.5)])
    rows = _dense(both.embed(CORPUS[:2]))
    assert rows.shape == (2, words.dim + chars.dim)
    assert np.allclose(rows[:, : words.dim], _dense(words.embed(CORPUS[:2])))
    assert np.allclose(rows[:, words.dim :], 0.5 * _dense(chars.embed(CORPUS[:2])))
    assert embedder_from_spec(both.spec).fingerprint == both.fingerprint
    assert CombinedEmbedder([(words, 1.0), (chars, 1.0)]).fingerprint != both.fingerprint


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from([*CORPUS, "new text", ""]), max_size=12))
def test_cache_returns_the_same_rows_as_the_embedder(texts: list[str]) -> None:
    inner = TfidfEmbedder.fit(CORPUS)
    cached = CachedEmbedder(inner, capacity=3)  # small: eviction happens
    for _ in range(2):
        got = cached.embed(texts)
        assert got.shape == (len(texts), inner.dim)
        assert (_dense(got) == _dense(inner.embed(texts))).all()


def test_cache_counts_hits_and_evicts() -> None:
    cached = CachedEmbedder(TfidfEmbedder.fit(CORPUS), capacity=2)
    cached.embed(CORPUS[:2])
    cached.embed(CORPUS[:2])
    assert (cached.hits, cached.misses) == (2, 2)
    cached.embed(CORPUS[2:4])  # evicts the first two
    cached.embed(CORPUS[:1])
    assert cached.misses == 5


def test_default_embedder_without_sentences_is_tfidf_words_and_chars() -> None:
    emb = default_embedder(CORPUS, sentence=False)
    assert [p.spec.kind for p in emb.spec.parts] == ["tfidf", "tfidf"]
    assert [p.spec.analyzer for p in emb.spec.parts] == ["word", "char_wb"]  # type: ignore[union-attr]


@needs_sentence
def test_wordllama_bundled_weights_load_with_pinned_hashes_and_no_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("the sentence embedder tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    emb = WordLlamaEmbedder()
    rows = emb.embed(["book a flight", "book a plane ticket", "what is my balance", ""])
    assert rows.shape == (4, 256)
    assert np.allclose(np.linalg.norm(rows[:3], axis=1), 1.0, atol=1e-5)
    assert not rows[3].any()
    # Paraphrases are nearer than unrelated queries: the vectors carry meaning.
    assert rows[0] @ rows[1] > rows[0] @ rows[2]
    assert embedder_from_spec(emb.spec).fingerprint == emb.fingerprint
    combined = default_embedder(CORPUS)
    assert [p.spec.kind for p in combined.spec.parts][-1] == "wordllama"
    assert hash_value(emb.spec) == emb.fingerprint


@needs_sentence
def test_wordllama_file_with_another_hash_is_refused(tmp_path: Path) -> None:
    import wordllama

    root = Path(wordllama.__file__).parent
    weights = tmp_path / "w.safetensors"
    shutil.copyfile(root / "weights/l2_supercat_256.safetensors", weights)
    with weights.open("r+b") as f:
        f.seek(-4, 2)
        f.write(b"\0\0\0\1")
    with pytest.raises(EmbedderUnavailable, match="sha256"):
        WordLlamaEmbedder(weights=weights, weights_sha256=WordLlamaEmbedder().spec.weights_sha256)
    # A model of one's own, trusted by the hash it has now, is recorded by that hash; a
    # state naming it cannot silently load the bundled model instead.
    own = WordLlamaEmbedder(weights=weights)
    assert own.spec.weights_sha256 != WordLlamaEmbedder().spec.weights_sha256
    with pytest.raises(EmbedderUnavailable, match="not the bundled model"):
        embedder_from_spec(own.spec)
    assert embedder_from_spec(own.spec, sentence=own) is own


def test_missing_extra_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    import routers._embed as embed

    monkeypatch.setattr(embed, "sentence_embeddings_available", lambda: False)
    with pytest.raises(EmbedderUnavailable, match=r"pip install 'orch\[embed\]'"):
        embed.WordLlamaEmbedder()
    assert [p.spec.kind for p in embed.default_embedder(CORPUS).spec.parts] == ["tfidf"] * 2


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.text(alphabet="abcde fgh'-.!", max_size=30), max_size=6),
    st.sampled_from(
        [("word", (1, 2), None), ("char_wb", (2, 4), None), ("word", (1, 1), "english")]
    ),
)
def test_tfidf_rows_match_scikit_learns_transform(
    queries: list[str], params: tuple[str, tuple[int, int], str | None]
) -> None:
    from routers._embed import _vectorizer

    analyzer, ngrams, stop = params
    emb = TfidfEmbedder.fit(
        [*CORPUS, "bad cafe", "a dead fig"],
        analyzer=analyzer,  # type: ignore[arg-type]
        ngram_range=ngrams,
        stop_words=stop,  # type: ignore[arg-type]
    )
    reference = _vectorizer(emb.spec, {t: i for i, t in enumerate(emb.spec.terms)})
    reference.idf_ = emb.spec.idf.to_numpy()
    ours = _dense(emb.embed(queries))
    assert ours.shape == (len(queries), emb.dim)
    if queries:
        assert np.allclose(ours, _dense(reference.transform(queries)), atol=1e-6)
    # One text or many: the same bits (a query routes the same in a batch and alone).
    for i, q in enumerate(queries):
        assert (_dense(emb.embed([q]))[0] == ours[i]).all()
