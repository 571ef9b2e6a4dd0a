"""The embedding seam: text to vectors for trained routers, with a recorded identity.

An :class:`Embedder` turns texts into rows of float32 features (a sparse matrix for TF-IDF, a
dense array for sentence embeddings) and describes itself by a :data:`EmbedderSpec`, a plain
pydantic value that a trained router keeps in its state. The spec holds everything needed to
rebuild the exact embedder (a fitted TF-IDF's vocabulary and idf; a sentence model's name,
package version and the sha256 of its weights), so a router state names the embedder that
made every decision and :func:`embedder_from_spec` rebuilds it for a replay.

* :class:`TfidfEmbedder`: scikit-learn's ``TfidfVectorizer``, fitted on the training texts;
  always available.
* :class:`WordLlamaEmbedder`: static sentence embeddings from the ``wordllama`` package (the
  ``embed`` extra), whose wheel ships the weights: loaded from a file whose sha256 is checked
  first, with no network. See ``docs/embeddings.md`` for why this model.
* :class:`TextStatsEmbedder`: a few standardised statistics of a text's shape (length,
  words, digits, numbers, lines, question marks, dollar signs), for a part of a
  :class:`CombinedEmbedder` (never a router's embedder alone: its spec is a part's only);
* :class:`CombinedEmbedder`: weighted parts side by side (TF-IDF words + characters +
  sentence vectors is the default for intent routing, :func:`default_embedder`).
* :class:`CachedEmbedder`: rows cached by (embedder fingerprint, text hash).

This module must never download anything, never unpickle, and never let the environment
change a recorded embedder silently: a state made with sentence embeddings fails to load,
with the fix, where the extra is absent.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, TypeAlias, get_args, overload

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field
from sklearn.feature_extraction.text import TfidfVectorizer

from routers._arrays import ArrayData
from routers.errors import EmbedderUnavailable, RouterStateError
from traces import hash_value

__all__ = [
    "WORDLLAMA_VERSION",
    "CachedEmbedder",
    "CombinedEmbedder",
    "CombinedSpec",
    "Embedder",
    "EmbedderPart",
    "EmbedderSpec",
    "Features",
    "TextStatsEmbedder",
    "TextStatsSpec",
    "TfidfEmbedder",
    "TfidfSpec",
    "WordLlamaEmbedder",
    "WordLlamaSpec",
    "default_embedder",
    "embedder_from_spec",
    "sentence_embeddings_available",
]

Features: TypeAlias = "NDArray[np.float32] | sp.csr_matrix"

# The pinned sentence model: wordllama 0.4.0.post1's bundled l2_supercat 256-d weights and
# tokenizer (sha256 of the files inside that wheel).
WORDLLAMA_VERSION = "0.4.0.post1"
_WORDLLAMA_FILES = {
    "weights": (
        "weights/l2_supercat_256.safetensors",
        "64b47a2dc493cb8e85944076601189739852d7b64e0e1eedcb1937a251cd9fd5",
    ),
    "tokenizer": (
        "tokenizers/l2_supercat_tokenizer_config.json",
        "93248f2a9ec36c7b35f700a033d5f36228aae48db61aee31007fa49062cdeb68",
    ),
}
_INSTALL = "pip install 'orch[embed]'"


class TfidfSpec(BaseModel):
    """A fitted TF-IDF: its parameters, vocabulary (column order) and idf."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["tfidf"] = "tfidf"
    analyzer: Literal["word", "char_wb"]
    ngram_range: tuple[int, int]
    sublinear_tf: bool
    min_df: int
    max_features: int | None
    stop_words: Literal["english"] | None = None
    """scikit-learn's English stop-word list, or none."""
    terms: list[str]
    idf: ArrayData


class WordLlamaSpec(BaseModel):
    """The wordllama sentence model: package version and the sha256 of its files."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["wordllama"] = "wordllama"
    version: str
    weights_sha256: str
    tokenizer_sha256: str
    dim: int


TextStat = Literal[
    "log_chars",
    "log_words",
    "digit_share",
    "log_numbers",
    "log_lines",
    "log_questions",
    "log_dollars",
]

TEXT_STATS: tuple[TextStat, ...] = get_args(TextStat)
"""The statistics :class:`TextStatsEmbedder` computes, in column order (see
:func:`_text_stats`)."""


class TextStatsSpec(BaseModel):
    """Standardised text statistics: which ones (columns, in order), and the training mean
    and scale each is standardised by (float64, one per statistic)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["text-stats"] = "text-stats"
    features: list[TextStat] = Field(min_length=1)
    mean: ArrayData
    scale: ArrayData


class CombinedPart(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    weight: float = Field(gt=0, allow_inf_nan=False)
    spec: PartSpec


class CombinedSpec(BaseModel):
    """Weighted parts side by side, in order."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["combined"] = "combined"
    parts: list[CombinedPart] = Field(min_length=1)


EmbedderSpec = Annotated[TfidfSpec | WordLlamaSpec | CombinedSpec, Field(discriminator="kind")]
"""What a router state records as its embedder."""
PartSpec = Annotated[
    TfidfSpec | WordLlamaSpec | TextStatsSpec | CombinedSpec, Field(discriminator="kind")
]
"""What a part of a combined embedder may be: any embedder, or text statistics (which say
too little about a query to be a router's embedder alone)."""
CombinedPart.model_rebuild()


class Embedder(Protocol):
    """Texts to float32 feature rows. ``spec`` rebuilds it exactly; ``fingerprint`` is the
    spec's hash (what caches and router states key on)."""

    @property
    def spec(self) -> TfidfSpec | WordLlamaSpec | CombinedSpec: ...

    @property
    def fingerprint(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Features: ...


class EmbedderPart(Protocol):
    """What a :class:`CombinedEmbedder` part needs: an :class:`Embedder`, or an embedder whose
    spec may only be a part's (:class:`TextStatsEmbedder`)."""

    @property
    def spec(self) -> TfidfSpec | WordLlamaSpec | TextStatsSpec | CombinedSpec: ...

    @property
    def fingerprint(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Features: ...


class _Fingerprinted:
    _fingerprint: str | None = None

    @property
    def spec(self) -> TfidfSpec | WordLlamaSpec | TextStatsSpec | CombinedSpec:
        raise NotImplementedError

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = hash_value(self.spec)
        return self._fingerprint


class TfidfEmbedder(_Fingerprinted):
    """scikit-learn TF-IDF over words or characters; rows L2-normalised, float32, sparse."""

    def __init__(self, spec: TfidfSpec) -> None:
        self._spec = spec
        if len(spec.idf.shape) != 1 or spec.idf.shape[0] != len(spec.terms):
            raise RouterStateError(
                f"TF-IDF state has {len(spec.terms)} terms but an idf of shape "
                f"{spec.idf.shape}; fix: the state is damaged, retrain it"
            )
        vocabulary = {t: i for i, t in enumerate(spec.terms)}
        if len(vocabulary) != len(spec.terms):
            raise RouterStateError("TF-IDF state repeats a term; fix: the state is damaged")
        self._vocabulary = vocabulary
        self._analyze = _vectorizer(spec, vocabulary).build_analyzer()
        self._idf = np.array(spec.idf.to_numpy(), dtype=np.float64)

    @classmethod
    def fit(
        cls,
        texts: Sequence[str],
        *,
        analyzer: Literal["word", "char_wb"] = "word",
        ngram_range: tuple[int, int] = (1, 2),
        min_df: int = 1,
        max_features: int | None = None,
        sublinear_tf: bool = True,
        stop_words: Literal["english"] | None = None,
    ) -> TfidfEmbedder:
        """Fit on ``texts``. Deterministic: the vocabulary is sorted, so the same texts in
        any order give the same columns (idf depends only on document frequencies)."""
        if not texts:
            raise ValueError("a TF-IDF embedder needs training texts; fix: give at least one")
        probe = TfidfSpec(
            analyzer=analyzer,
            ngram_range=ngram_range,
            sublinear_tf=sublinear_tf,
            min_df=min_df,
            max_features=max_features,
            stop_words=stop_words,
            terms=[],
            idf=ArrayData.of(np.zeros(0, np.float32)),
        )
        vec = _vectorizer(probe, None)
        try:
            vec.fit(list(texts))
        except ValueError:  # every text was empty or only stop characters
            return cls(probe)
        terms = sorted(vec.vocabulary_, key=vec.vocabulary_.__getitem__)
        idf = ArrayData.of(vec.idf_, dtype="float32")
        return cls(probe.model_copy(update={"terms": terms, "idf": idf}))

    @property
    def spec(self) -> TfidfSpec:
        return self._spec

    @property
    def dim(self) -> int:
        return len(self._spec.terms)

    def embed(self, texts: Sequence[str]) -> sp.csr_matrix:
        # scikit-learn's analyzer (the same tokens and n-grams as the fit), then counts, tf
        # (1 + log when sublinear), idf and L2 norm here: the vectorizer's transform costs
        # about a millisecond of checks per call, which one query at a time cannot afford.
        # One code path for one text or many, so a query embeds to the same bits either way.
        vocabulary, analyze = self._vocabulary, self._analyze
        indptr = [0]
        indices: list[int] = []
        counts: list[int] = []
        for text in texts:
            row: dict[int, int] = {}
            for term in analyze(text):
                j = vocabulary.get(term)
                if j is not None:
                    row[j] = row.get(j, 0) + 1
            columns = sorted(row)
            indices.extend(columns)
            counts.extend(row[j] for j in columns)
            indptr.append(len(indices))
        tf = np.asarray(counts, dtype=np.float64)
        if self._spec.sublinear_tf:
            tf = 1.0 + np.log(tf)
        cols = np.asarray(indices, dtype=np.int64)
        values = tf * self._idf[cols]
        starts = np.asarray(indptr, dtype=np.int64)
        sums = np.zeros(len(texts))
        rows = np.repeat(np.arange(len(texts)), np.diff(starts))
        np.add.at(sums, rows, values * values)
        norms = np.sqrt(sums)
        norms[norms == 0] = 1.0
        data = (values / norms[rows]).astype(np.float32)
        return sp.csr_matrix(
            (data, cols.astype(np.int32), starts.astype(np.int32)),
            shape=(len(texts), self.dim),
        )


def _vectorizer(spec: TfidfSpec, vocabulary: dict[str, int] | None) -> TfidfVectorizer:
    return TfidfVectorizer(
        analyzer=spec.analyzer,
        ngram_range=spec.ngram_range,
        sublinear_tf=spec.sublinear_tf,
        min_df=spec.min_df if vocabulary is None else 1,
        max_features=spec.max_features if vocabulary is None else None,
        vocabulary=vocabulary or None,
        stop_words=spec.stop_words,
        dtype=np.float32,
        lowercase=True,
    )


_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _text_stats(text: str) -> tuple[float, ...]:
    """The raw statistics of :data:`TEXT_STATS` for one text: log(1 + characters), log(1 +
    whitespace-separated words), the share of characters that are digits, log(1 + numbers,
    a decimal point inside one), and log(1 + count) of newlines, '?' and '$'."""
    n = len(text)
    return (
        math.log1p(n),
        math.log1p(len(text.split())),
        sum(c.isdigit() for c in text) / n if n else 0.0,
        math.log1p(len(_NUMBER.findall(text))),
        math.log1p(text.count("\n")),
        math.log1p(text.count("?")),
        math.log1p(text.count("$")),
    )


class TextStatsEmbedder(_Fingerprinted):
    """Statistics of a text's shape (:data:`TEXT_STATS`), each standardised by the mean and
    scale of the training texts; dense float32. Whether a query is long, numeric or a
    multi-line program says something about which model answers it (a sentence vector
    averages it away). A part of a :class:`CombinedEmbedder`, not an embedder alone."""

    def __init__(self, spec: TextStatsSpec) -> None:
        self._spec = spec
        n = len(spec.features)
        mean = np.array(spec.mean.to_numpy(), dtype=np.float64)
        scale = np.array(spec.scale.to_numpy(), dtype=np.float64)
        if mean.shape != (n,) or scale.shape != (n,) or not bool((scale > 0).all()):
            raise RouterStateError(
                f"text statistics state has {n} features but mean of shape {mean.shape} and "
                f"scale of shape {scale.shape} (scales must be > 0); fix: the state is "
                "damaged, retrain it"
            )
        self._columns = [TEXT_STATS.index(f) for f in spec.features]
        self._mean, self._scale = mean, scale

    @classmethod
    def fit(
        cls, texts: Sequence[str], features: Sequence[TextStat] = TEXT_STATS
    ) -> TextStatsEmbedder:
        """Standardise by ``texts``' mean and (population) standard deviation; a statistic
        that does not vary there gets scale 1. The same texts in any order give the same
        spec: sums are exactly rounded (``math.fsum``), so their order cannot change a bit."""
        if not texts:
            raise ValueError("text statistics need training texts; fix: give at least one")
        if not features:
            raise ValueError("text statistics need at least one feature; fix: name some")
        columns = [TEXT_STATS.index(f) for f in features]
        raw = [[_text_stats(t)[j] for j in columns] for t in texts]
        n = len(raw)
        mean = [math.fsum(col) / n for col in zip(*raw, strict=True)]
        std = [
            math.sqrt(math.fsum((x - m) ** 2 for x in col) / n)
            for col, m in zip(zip(*raw, strict=True), mean, strict=True)
        ]
        scale = [s if s > 0 else 1.0 for s in std]
        return cls(
            TextStatsSpec(
                features=list(features),
                mean=ArrayData.of(np.array(mean), dtype="float64"),
                scale=ArrayData.of(np.array(scale), dtype="float64"),
            )
        )

    @property
    def spec(self) -> TextStatsSpec:
        return self._spec

    @property
    def dim(self) -> int:
        return len(self._spec.features)

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        # One text at a time and elementwise arithmetic only: a text gets the same row alone
        # or in any batch.
        raw = np.array([_text_stats(t) for t in texts], dtype=np.float64).reshape(
            len(texts), len(TEXT_STATS)
        )
        out: NDArray[np.float32] = ((raw[:, self._columns] - self._mean) / self._scale).astype(
            np.float32
        )
        return out


_wordllama_lock = threading.Lock()
_wordllama_models: dict[tuple[str, str], Any] = {}


def sentence_embeddings_available() -> bool:
    """True when the ``embed`` extra (wordllama, pinned version) is installed."""
    try:
        return importlib.metadata.version("wordllama") == WORDLLAMA_VERSION
    except importlib.metadata.PackageNotFoundError:
        return False


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class WordLlamaEmbedder(_Fingerprinted):
    """wordllama's static sentence embeddings (mean of token vectors, L2-normalised).

    By default the weights and tokenizer bundled in the pinned wheel; ``weights`` and
    ``tokenizer`` name other local files (any wordllama-format model), with their sha256
    given or computed now and recorded in the spec. Files are checked against their sha256
    before they are read; nothing is downloaded.
    """

    def __init__(
        self,
        weights: Path | None = None,
        tokenizer: Path | None = None,
        *,
        weights_sha256: str | None = None,
        tokenizer_sha256: str | None = None,
    ) -> None:
        if not sentence_embeddings_available():
            raise EmbedderUnavailable(
                f"sentence embeddings need wordllama {WORDLLAMA_VERSION} (the embed extra); "
                f"fix: {_INSTALL}, or use a TF-IDF embedder"
            )
        import wordllama

        root = Path(wordllama.__file__).parent
        files: dict[str, tuple[Path, str | None]] = {
            "weights": (weights or root / _WORDLLAMA_FILES["weights"][0], weights_sha256),
            "tokenizer": (tokenizer or root / _WORDLLAMA_FILES["tokenizer"][0], tokenizer_sha256),
        }
        digests: dict[str, str] = {}
        for role, (path, given) in files.items():
            bundled = path == root / _WORDLLAMA_FILES[role][0]
            expected = given or (_WORDLLAMA_FILES[role][1] if bundled else None)
            if not path.is_file():
                raise EmbedderUnavailable(
                    f"wordllama {role} file {path} is missing; fix: {_INSTALL}"
                )
            actual = _sha256(path)
            if expected is not None and actual != expected:
                raise EmbedderUnavailable(
                    f"wordllama {role} file {path} has sha256 {actual}, not the pinned "
                    f"{expected}; fix: reinstall with {_INSTALL} (or give the file you trust)"
                )
            digests[role] = actual
        self._paths = (files["weights"][0], files["tokenizer"][0])
        self._model = self._load(*self._paths, digests["weights"], digests["tokenizer"])
        self._spec = WordLlamaSpec(
            version=WORDLLAMA_VERSION,
            weights_sha256=digests["weights"],
            tokenizer_sha256=digests["tokenizer"],
            dim=int(self._model.embedding.shape[1]),
        )

    @staticmethod
    def _load(weights: Path, tokenizer: Path, w_sha: str, t_sha: str) -> Any:
        with _wordllama_lock:
            found = _wordllama_models.get((w_sha, t_sha))
            if found is None:
                from safetensors import safe_open
                from tokenizers import Tokenizer
                from wordllama import WordLlamaInference

                # Read the files directly rather than through WordLlama.load, whose lookup
                # falls back to a download when a file is not where it expects.
                with safe_open(str(weights), framework="np", device="cpu") as f:
                    table = f.get_tensor("embedding.weight")
                found = WordLlamaInference(table, Tokenizer.from_file(str(tokenizer)))
                _wordllama_models[(w_sha, t_sha)] = found
            return found

    @classmethod
    def from_spec(cls, spec: WordLlamaSpec) -> WordLlamaEmbedder:
        """The bundled model when the spec names its files; refused otherwise."""
        if (spec.weights_sha256, spec.tokenizer_sha256) != (
            _WORDLLAMA_FILES["weights"][1],
            _WORDLLAMA_FILES["tokenizer"][1],
        ):
            raise EmbedderUnavailable(
                f"the state was trained with wordllama weights {spec.weights_sha256[:12]}..., "
                "not the bundled model; fix: build WordLlamaEmbedder(weights=..., "
                "tokenizer=...) from those files and pass it in"
            )
        return cls()

    @property
    def spec(self) -> WordLlamaSpec:
        return self._spec

    @property
    def dim(self) -> int:
        return self._spec.dim

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        out = np.zeros((len(texts), self.dim), np.float32)
        # A text with no words has no meaning to average: it embeds as the zero vector.
        filled = [i for i, t in enumerate(texts) if t.strip()]
        if filled:
            raw = np.asarray(self._model.embed([texts[i] for i in filled]), dtype=np.float32)
            norms = np.linalg.norm(raw, axis=1, keepdims=True)
            out[filled] = np.divide(raw, norms, out=np.zeros_like(raw), where=norms > 0)
        return out


class CombinedEmbedder(_Fingerprinted):
    """Parts side by side, each scaled by its weight; sparse when any part is."""

    def __init__(self, parts: Sequence[tuple[EmbedderPart, float]]) -> None:
        if not parts:
            raise ValueError("a combined embedder needs at least one part; fix: give parts")
        self.parts = list(parts)
        self._spec = CombinedSpec(
            parts=[CombinedPart(weight=w, spec=e.spec) for e, w in self.parts]
        )

    @property
    def spec(self) -> CombinedSpec:
        return self._spec

    @property
    def dim(self) -> int:
        return sum(e.dim for e, _ in self.parts)

    def embed(self, texts: Sequence[str]) -> Features:
        return self.join(self.embed_parts(texts))

    def embed_parts(self, texts: Sequence[str]) -> list[Features]:
        """Each part's rows, unweighted (for a caller that also needs one part alone)."""
        return [e.embed(texts) for e, _ in self.parts]

    def join(self, blocks: Sequence[Features]) -> Features:
        """Weighted ``blocks`` (from :meth:`embed_parts`) side by side, as :meth:`embed`."""
        pairs = list(zip(blocks, (w for _, w in self.parts), strict=True))
        if any(sp.issparse(b) for b, _ in pairs):
            out: sp.csr_matrix = sp.hstack(
                [sp.csr_matrix(b * np.float32(w)) for b, w in pairs], format="csr"
            ).astype(np.float32)
            return out
        return np.hstack([np.asarray(b) * np.float32(w) for b, w in pairs]).astype(np.float32)


@overload
def embedder_from_spec(
    spec: TextStatsSpec, sentence: Embedder | None = None
) -> TextStatsEmbedder: ...


@overload
def embedder_from_spec(
    spec: TfidfSpec | WordLlamaSpec | CombinedSpec, sentence: Embedder | None = None
) -> Embedder: ...


def embedder_from_spec(
    spec: TfidfSpec | WordLlamaSpec | TextStatsSpec | CombinedSpec,
    sentence: Embedder | None = None,
) -> Embedder | TextStatsEmbedder:
    """Rebuild the embedder a spec describes; ``sentence`` supplies a sentence model built
    from other files (its spec must equal the recorded one)."""
    if isinstance(spec, TfidfSpec):
        return TfidfEmbedder(spec)
    if isinstance(spec, TextStatsSpec):
        return TextStatsEmbedder(spec)
    if isinstance(spec, WordLlamaSpec):
        if sentence is not None:
            if sentence.spec != spec:
                raise RouterStateError(
                    "the sentence embedder given is not the one the state was trained with; "
                    "fix: pass the embedder built from the recorded weights"
                )
            return sentence
        return WordLlamaEmbedder.from_spec(spec)
    return CombinedEmbedder([(embedder_from_spec(p.spec, sentence), p.weight) for p in spec.parts])


def default_embedder(
    texts: Sequence[str], *, sentence: bool | None = None, min_df: int = 2
) -> CombinedEmbedder:
    """The intent-routing default, fitted on ``texts``: TF-IDF over words (1-2 grams) and
    characters within words (2-5 grams), plus wordllama sentence vectors when ``sentence``
    is True, or None and the ``embed`` extra is installed. ``min_df`` drops terms seen in
    fewer training texts (falls back to 1 for tiny training sets)."""
    use_sentence = sentence_embeddings_available() if sentence is None else sentence
    floor = min_df if len(texts) >= 20 * min_df else 1
    parts: list[tuple[Embedder, float]] = [
        (TfidfEmbedder.fit(texts, analyzer="word", ngram_range=(1, 2), min_df=floor), 1.0),
        (TfidfEmbedder.fit(texts, analyzer="char_wb", ngram_range=(2, 5), min_df=floor), 1.0),
    ]
    if use_sentence:
        parts.append((WordLlamaEmbedder(), 1.0))
    return CombinedEmbedder(parts)


class CachedEmbedder(_Fingerprinted):
    """Another embedder with its rows cached by (fingerprint, sha256 of the text), least
    recently used first out. Same rows, same order: a cache can never change a decision."""

    def __init__(self, inner: Embedder, capacity: int = 50_000) -> None:
        self.inner = inner
        self.capacity = capacity
        self._rows: OrderedDict[bytes, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def spec(self) -> TfidfSpec | WordLlamaSpec | CombinedSpec:
        return self.inner.spec

    @property
    def fingerprint(self) -> str:
        return self.inner.fingerprint

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, texts: Sequence[str]) -> Features:
        salt = self.fingerprint.encode()
        keys = [hashlib.sha256(salt + b"\0" + t.encode()).digest() for t in texts]
        with self._lock:
            found = {k: self._rows[k] for k in keys if k in self._rows}
            for k in found:
                self._rows.move_to_end(k)
        missing = list(dict.fromkeys(k for k in keys if k not in found))
        if missing:
            first = {k: i for i, k in reversed(list(enumerate(keys)))}
            fresh = self.inner.embed([texts[first[k]] for k in missing])
            for j, k in enumerate(missing):
                found[k] = fresh[j : j + 1] if sp.issparse(fresh) else fresh[j]
            with self._lock:
                for k in missing:
                    self._rows[k] = found[k]
                while len(self._rows) > self.capacity:
                    self._rows.popitem(last=False)
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        rows = [found[k] for k in keys]
        if not rows:
            return self.inner.embed([])
        if sp.issparse(rows[0]):
            out: sp.csr_matrix = sp.vstack(rows, format="csr")
            return out
        return np.vstack(rows).astype(np.float32)
