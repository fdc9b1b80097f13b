"""Step 4 for video search: the models side by side, and :func:`contract_cases`.

* :class:`TextSearch`: the inverted index of text search, BM25 (Lucene's variant) from the
  ``bm25s`` library over the normalised tokens of :mod:`.features`. bm25s was chosen over
  tantivy because its index is a plain sparse matrix (token -> documents and their BM25
  weights) that saves as arrays and JSON, so the index is an artifact like any model (no
  pickle, in the manifest), scoring a query is a vectorised sum of a few columns, and it is
  pure numpy/scipy; tantivy's strengths (segments, a durable writer, concurrent merges) are
  those of a search server, and its directory of mutable segments and lock files does not fit
  a run directory whose every file is checked against a manifest. New videos are indexed by
  rebuilding (a second per 10k videos), see :mod:`.serving`.
* **semantic** text retrieval: the pretrained all-MiniLM-L6-v2 (:mod:`mlsd.text`) over the
  same documents, searched with :mod:`mlsd.index` (no training, see :mod:`.serving`);
* :class:`~.model_dual.DualEncoder`: the visual half, a text-video dual encoder trained on
  (query, clicked video) pairs of the logs;
* :class:`~.model_fusion.FusionRanker`: the learned fusion (LightGBM LambdaRank) over the
  candidates' features; reciprocal-rank fusion needs no model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import bm25s
import numpy as np
from sklearn.base import BaseEstimator

from mlsd.contracts import ModelCase
from mlsd.model_io import SavedAsData
from mlsd.rng import rng
from mlsd.systems.video_search.features import tokenize
from mlsd.systems.video_search.model_dual import DualEncoder
from mlsd.systems.video_search.model_fusion import FusionRanker


class TextSearch(SavedAsData, BaseEstimator):  # type: ignore[misc]
    """BM25 over normalised tokens: bm25s builds the index, kept as its sparse columns."""

    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b

    def fit(self, docs: Sequence[str]) -> Self:
        tokens = [tokenize(d) for d in docs]
        engine = bm25s.BM25(k1=self.k1, b=self.b, method="lucene")
        engine.index(tokens, show_progress=False)
        self.vocab_ = {str(k): int(v) for k, v in engine.vocab_dict.items() if k}
        sc = engine.scores
        self.data_ = np.asarray(sc["data"], np.float32)  # BM25 weight of (token, document)
        self.indices_ = np.asarray(sc["indices"], np.int64)  # the documents, column by column
        self.indptr_ = np.asarray(sc["indptr"], np.int64)  # token t's slice: indptr[t:t+2]
        self.n_docs_ = len(tokens)
        self.doc_len_ = np.array([len(t) for t in tokens], np.int64)
        return self

    def token_ids(self, query: str) -> tuple[list[int], int]:
        """The query's known token ids and its token count."""
        toks = tokenize(query)
        last = len(self.indptr_) - 1
        return [self.vocab_[t] for t in toks if self.vocab_.get(t, last) < last], len(toks)

    def oov_share(self, query: str) -> float:
        ids, n = self.token_ids(query)
        return 1.0 - len(ids) / n if n else 0.0

    def scores(self, query: str) -> np.ndarray:
        """``(n_docs,)`` BM25 scores of ``query`` (0 where no token matches)."""
        out = np.zeros(self.n_docs_, np.float32)
        ids, _ = self.token_ids(query)
        for t in ids:
            s, e = self.indptr_[t], self.indptr_[t + 1]
            out[self.indices_[s:e]] += self.data_[s:e]
        return out

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, scores)`` of the top ``k`` documents with a positive score, best first."""
        s = self.scores(query)
        hit = np.flatnonzero(s > 0)
        top = hit[np.argsort(-s[hit], kind="stable")[:k]]
        return top, s[top]


# ---- the contract ---------------------------------------------------------------------------
WORDS = ("guitar", "chords", "cat", "kitten", "soup", "pasta", "chess", "opening", "goal")


def _docs() -> tuple[list[str], list[str]]:
    gen = rng(0, "video-search/contract-docs")
    docs = [" ".join(gen.choice(WORDS, 5)) for _ in range(40)]
    return docs, ["guitar chords", "cat", "pasta soup", "nothing here"]


def _dual_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    gen = rng(0, "video-search/contract-dual")
    frames = gen.normal(0, 1, (30, 2, 3, 8, 8)).astype(np.float32)
    queries = gen.normal(0, 1, (90, 16)).astype(np.float32)
    return queries, frames, gen.integers(0, 30, 90)


def _rank_data() -> tuple[Any, np.ndarray, np.ndarray]:
    import pandas as pd

    gen = rng(0, "video-search/contract-rank")
    x = gen.normal(0, 1, (600, 3))
    y = np.clip(np.round(x[:, 0] + gen.normal(0, 0.5, 600)), 0, 3).astype(np.int64)
    X = pd.DataFrame({"d_a": x[:, 0], "d_b": x[:, 1], "d_c": x[:, 2]})
    return X, y, np.arange(600) // 20


def contract_cases() -> list[ModelCase]:
    return [
        ModelCase(
            name="video_search_bm25",
            kind="retriever",
            make=lambda s: TextSearch(),
            data=_docs,
            fit=lambda m, d: m.fit(d[0]),
            output=lambda m, d: np.stack([m.scores(q) for q in d[1]]),
            shape=lambda m, d: (len(d[1]), len(d[0])),
            save=lambda m, p: m.save(p),
            load=lambda p: TextSearch.load(p),
        ),
        ModelCase(
            name="video_search_dual_encoder",
            kind="encoder",
            make=lambda s: DualEncoder(dim=8, width=4, hidden=16, epochs=2, random_state=s),
            data=_dual_data,
            fit=lambda m, d: m.fit(d[0], d[1], d[2]),
            output=lambda m, d: m.encode_videos(d[1]),
            shape=lambda m, d: (len(d[1]), 8),
            save=lambda m, p: m.save(p),
            load=lambda p: DualEncoder.load(p),
            atol=1e-6,
        ),
        ModelCase(
            name="video_search_fusion_lambdarank",
            kind="ranker",
            make=lambda s: FusionRanker(n_estimators=20, random_state=s),
            data=_rank_data,
            fit=lambda m, d: m.fit(d[0], d[1], d[2]),
            output=lambda m, d: m.score(d[0]),
            shape=lambda m, d: (len(d[0]),),
            save=lambda m, p: m.save(p),
            load=lambda p: FusionRanker.load(p),
        ),
    ]
