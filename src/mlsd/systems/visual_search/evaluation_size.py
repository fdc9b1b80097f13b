"""Step 5 for visual search: embedding size vs quality vs latency (book ch. 2, "Evaluation").

A smaller embedding makes the index smaller and every search cheaper; how much retrieval
quality does it cost? The contrastive model's embeddings are reduced by PCA (fitted on training
images, never on the catalogue or the queries) to fewer dimensions, re-normalised, and scored
under the same exact search as the full ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.decomposition import PCA

from mlsd.index import exact_top_k
from mlsd.report import Blueprint
from mlsd.rng import seed_of
from mlsd.systems.visual_search.datasets_split import RetrievalSet
from mlsd.systems.visual_search.evaluation import K, exact_search_ms, retrieval_metrics
from mlsd.systems.visual_search.model import ImageEncoder, l2_normalise

SIZE_DIMS = (8, 16, 32)
PCA_FIT_IMAGES = 4000  # training images the reducing PCA is fitted on


@dataclass(frozen=True)
class SizeRow:
    dims: int
    map: float
    ndcg: float
    search_ms_per_query: float
    index_bytes_per_image: float  # one row of a flat float32 index


@dataclass(frozen=True)
class SizeResult:
    """The size trade-off, one row per embedding size, the full size last."""

    rows: tuple[SizeRow, ...]

    def metrics(self) -> dict[str, Any]:
        table = {
            str(r.dims): {
                "map": r.map,
                "ndcg": r.ndcg,
                "search_ms_per_query": r.search_ms_per_query,
                "index_bytes_per_image": r.index_bytes_per_image,
            }
            for r in self.rows
        }
        return {"embedding_size_tradeoff": table}


def compute_size_tradeoff(
    rs: RetrievalSet,
    encoder: ImageEncoder,
    embeddings: tuple[np.ndarray, np.ndarray],
    seed: int,
) -> SizeResult:
    """Score ``encoder``'s ``(catalogue, query)`` embeddings at each of ``SIZE_DIMS`` below its
    own size, and at its own size."""
    train_emb = encoder.encode(rs.train_images[:PCA_FIT_IMAGES])
    rows: list[SizeRow] = []
    for d in (*[d for d in SIZE_DIMS if d < encoder.dim], encoder.dim):
        if d == encoder.dim:
            e_index, e_query = embeddings
        else:
            pca = PCA(n_components=d, random_state=seed_of(seed, f"evaluation/size-pca/{d}"))
            pca.fit(train_emb)
            e_index = l2_normalise(pca.transform(embeddings[0]))
            e_query = l2_normalise(pca.transform(embeddings[1]))
        m = retrieval_metrics(exact_top_k(e_index, e_query, K)[1], rs)
        per_image = float(e_index.shape[1] * e_index.dtype.itemsize)
        rows.append(
            SizeRow(d, m["map"], m["ndcg"], exact_search_ms(e_index, e_query, K), per_image)
        )
    return SizeResult(tuple(rows))


def report_size_tradeoff(bp: Blueprint, result: SizeResult) -> None:
    bp.table(
        ["embedding dims", f"mAP@{K}", f"nDCG@{K}", "search ms / query", "index bytes / image"],
        [
            [r.dims, r.map, r.ndcg, r.search_ms_per_query, r.index_bytes_per_image]
            for r in result.rows
        ],
        caption="Embedding size vs quality vs latency: the contrastive embeddings reduced by "
        "PCA (fitted on training images) to fewer dimensions.",
    )
