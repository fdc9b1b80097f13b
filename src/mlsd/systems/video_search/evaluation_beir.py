"""Steps 3-5 on a real collection in the BEIR layout: the text half only (a text collection
has no frames, so the visual half is reported as skipped).

BM25 and dense retrieval (the same searcher as the world's, without the visual index), their
reciprocal-rank fusion, and the learned fusion: LambdaRank trained on the candidates of a
seeded half of the judged queries (qrels grades as labels, unjudged candidates 0), every
retriever evaluated on the other half. nDCG@10 (graded gains), MAP@100, MRR and recall@100
(score > 0 relevant).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlsd.report import Blueprint
from mlsd.rng import rng, seed_of
from mlsd.systems.video_search.datasets import read_beir
from mlsd.systems.video_search.evaluation import LABELS, ir_metrics
from mlsd.systems.video_search.features import documents
from mlsd.systems.video_search.model import TextSearch
from mlsd.systems.video_search.model_fusion import FusionRanker
from mlsd.systems.video_search.serving import VideoSearcher
from mlsd.text import CachedEncoder

METHODS = ("bm25", "semantic", "rrf_text", "fusion")
METRICS = ("ndcg@10", "map@100", "mrr", "recall@100")
DEPTH = 100


@dataclass(frozen=True)
class BeirResult:
    root: str
    documents: int
    queries: int
    unjudged_queries: int
    train_queries: int
    eval_queries: int
    scores: dict[str, dict[str, float]]
    fusion_skipped: str | None

    def metrics(self) -> dict[str, Any]:
        return {
            "data": {
                "source": f"beir:{self.root}",
                "documents": self.documents,
                "queries": self.queries,
                "unjudged_queries": self.unjudged_queries,
                "split": {
                    "fusion_train_queries": self.train_queries,
                    "eval_queries": self.eval_queries,
                },
            },
            "models": {m: {"offline": s} for m, s in self.scores.items()},
            "oracle": None,
        }


def compute_beir(spec: str, encoder: CachedEncoder, seed: int, trees: int) -> BeirResult:
    col = read_beir(spec)
    c = col.corpus
    videos = pd.DataFrame(
        {
            "video_id": np.arange(len(c), dtype=np.int64),
            "upload_day": np.zeros(len(c), np.int64),
            "popularity": np.zeros(len(c), np.int64),
            "duration_s": np.zeros(len(c), np.int64),
            "flagged": np.zeros(len(c), bool),
            "title": c["title"].to_numpy(),
            "text": c["text"].to_numpy(),
        }
    )
    docs = documents(videos)
    row_of = {d: i for i, d in enumerate(c["doc_id"])}
    s = VideoSearcher(videos, TextSearch().fit(docs), encoder, encoder.encode(docs), depth=DEPTH)
    q = col.queries
    grades = [{row_of[d]: g for d, g in col.qrels[qid].items()} for qid in q["query_id"]]
    order = rng(seed, "video-search/beir-split").permutation(len(q))
    n_train = len(q) // 2
    train, test = np.sort(order[:n_train]), np.sort(order[n_train:])
    skipped = None
    all_texts = q["text"].astype(str).tolist()
    if n_train < 2:
        skipped = f"{n_train} training queries: too few to train the learned fusion"
    else:
        frames, ys, groups = [], [], []
        vecs = encoder.encode([all_texts[i] for i in train])
        for j, (i, v) in enumerate(zip(train, vecs, strict=True)):
            text = all_texts[i]
            cands, _ = s.candidates(text, v)
            frames.append(s.features(cands, text, 0))
            ys.append(np.array([grades[i].get(int(r), 0) for r in cands.rows], np.int64))
            groups.append(np.full(len(cands.rows), j))
        X = pd.concat(frames, ignore_index=True)
        s.fusion = FusionRanker(
            n_estimators=trees, random_state=seed_of(seed, "video-search/beir-fusion")
        ).fit(X, np.minimum(np.concatenate(ys), 30), np.concatenate(groups))
    methods = tuple(m for m in METHODS if m != "fusion" or s.fusion is not None)
    texts = [all_texts[i] for i in test]
    ranks = s.rank_many(texts, np.zeros(len(test), np.int64), methods, k=DEPTH)
    g_test = [grades[i] for i in test]
    scores = {m: ir_metrics(ranks[m], g_test, min_grade=1, k=DEPTH) for m in methods}
    return BeirResult(
        str(col.root), len(c), len(q), col.unjudged_queries, n_train, len(test), scores, skipped
    )


def report_beir(bp: Blueprint, r: BeirResult) -> None:
    bp.text(
        f"The collection at {r.root}: {r.documents:,} documents, {r.queries:,} judged queries "
        f"({r.unjudged_queries} queries without a relevant document left out). The learned "
        f"fusion is trained on a seeded half of the queries ({r.train_queries}) and every "
        f"retriever is evaluated on the other {r.eval_queries}. Documents are the title (twice) "
        "and the text."
        + (f" Learned fusion skipped: {r.fusion_skipped}." if r.fusion_skipped else "")
    )
    bp.table(
        ["retriever", *METRICS],
        [[LABELS.get(m, m), *(round(s[k], 4) for k in METRICS)] for m, s in r.scores.items()],
    )
