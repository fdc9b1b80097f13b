"""Step 4 for video search, fitted on the world: the logs' training pairs, every model, and the
searcher that holds them (the same :class:`~.serving.VideoSearcher` the server loads).

* BM25 over the catalogue's documents (no labels);
* MiniLM document embeddings (pretrained, no labels);
* the dual encoder on the training days' (query, clicked video) pairs;
* the learned fusion on raters' grades of the candidates of sampled training-day queries
  (the world's grade, replaced by a neighbouring grade with probability ``RATER_NOISE``),
  each query seeing only the videos uploaded by its day.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlsd.engine import Engine, LocalEngine
from mlsd.rng import rng, seed_of
from mlsd.systems.video_search.features import documents
from mlsd.systems.video_search.model import TextSearch
from mlsd.systems.video_search.model_dual import DualEncoder
from mlsd.systems.video_search.model_fusion import FusionRanker
from mlsd.systems.video_search.serving import VideoSearcher
from mlsd.systems.video_search.world import VideoSearchWorld
from mlsd.text import CachedEncoder

log = logging.getLogger(__name__)
RATER_NOISE = 0.1


@dataclass(frozen=True)
class FitConfig:
    dual_epochs: int = 6
    trees: int = 200
    rated_queries: int = 1500
    depth: int = 50


@dataclass(frozen=True)
class Fitted:
    searcher: VideoSearcher
    train_pairs: int
    rated_queries: int
    rated_rows: int
    seconds: dict[str, float]
    dual_loss: list[float]
    importances: dict[str, float]

    def metrics(self) -> dict[str, Any]:
        return {
            "models": {
                "bm25": {"train_seconds": round(self.seconds["bm25"], 3)},
                "semantic": {"train_seconds": round(self.seconds["semantic"], 3)},
                "visual": {
                    "train_seconds": round(self.seconds["visual"], 3),
                    "train_pairs": self.train_pairs,
                    "train_loss": self.dual_loss,
                },
                "fusion": {
                    "train_seconds": round(self.seconds["fusion"], 3),
                    "rated_queries": self.rated_queries,
                    "rated_rows": self.rated_rows,
                    "importances": self.importances,
                },
            }
        }


def rated_grades(
    world: VideoSearchWorld, intents: np.ndarray, rows: np.ndarray, gen: np.random.Generator
) -> np.ndarray:
    """Raters' grades: the world's, moved one step up or down with probability RATER_NOISE."""
    g = world.pair_grades(intents, rows).astype(np.int64)
    flip = gen.random(g.shape) < RATER_NOISE
    return np.clip(g + flip * gen.choice([-1, 1], g.shape), 0, 3)


def fusion_frame(
    searcher: VideoSearcher,
    world: VideoSearchWorld,
    queries: pd.DataFrame,
    gen: np.random.Generator,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Features, rater grades and query group of every candidate of ``queries``."""
    texts = queries["text"].tolist()
    vecs = searcher.encoder.encode(texts)
    frames, ys, groups = [], [], []
    for i, (q, v, d, intent) in enumerate(
        zip(texts, vecs, queries["day"], queries["intent_id"], strict=True)
    ):
        cands, _ = searcher.candidates(q, v, int(d))
        frames.append(searcher.features(cands, q, int(d)))
        ys.append(rated_grades(world, np.array([intent]), cands.rows[None, :], gen)[0])
        groups.append(np.full(len(cands.rows), i))
    return pd.concat(frames, ignore_index=True), np.concatenate(ys), np.concatenate(groups)


VIDEO_BLOCK = 8192  # videos per shard of the catalogue embedding (a multiple of its batch)


def encode_video_block(dual: DualEncoder, frames: np.ndarray) -> np.ndarray:
    """One shard of the catalogue embedding: a block of videos' vectors."""
    return dual.encode_videos(frames)


def fit_models(
    world: VideoSearchWorld,
    catalogue: pd.DataFrame,
    frames: np.ndarray,
    clicks: pd.DataFrame,
    train_queries: pd.DataFrame,
    encoder: CachedEncoder,
    cfg: FitConfig,
    seed: int,
    engine: Engine | None = None,
) -> Fitted:
    """Every model, fitted on the training days only; ``clicks`` one row per (query, clicked
    video row), ``train_queries`` the logged searches of the training days. The video
    catalogue is embedded in blocks of :data:`VIDEO_BLOCK` on ``engine`` (in parallel on Ray)."""
    sec: dict[str, float] = {}
    t0 = time.perf_counter()
    docs = documents(catalogue)
    text = TextSearch().fit(docs)
    sec["bm25"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    doc_vectors = encoder.encode(docs)
    sec["semantic"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    qv = encoder.encode(clicks["text"].tolist())
    dual = DualEncoder(epochs=cfg.dual_epochs, random_state=seed_of(seed, "video-search/dual"))
    dual.fit(qv, frames, clicks["row"].to_numpy())
    blocks = (frames[s : s + VIDEO_BLOCK] for s in range(0, len(frames), VIDEO_BLOCK))
    parts = (engine or LocalEngine()).map(encode_video_block, blocks, shared=dual)
    video_vectors = np.concatenate(parts) if parts else dual.encode_videos(frames)
    sec["visual"] = time.perf_counter() - t0
    log.info("video-search: dual encoder trained on %d pairs in %.1f s", len(clicks), sec["visual"])
    searcher = VideoSearcher(
        catalogue,
        text,
        encoder,
        doc_vectors,
        dual,
        video_vectors,
        None,
        "rrf_all",
        day=world.config.n_days,
        depth=cfg.depth,
    )
    t0 = time.perf_counter()
    gen = rng(seed, "video-search/raters")
    distinct = train_queries.drop_duplicates("text")
    n = min(cfg.rated_queries, len(distinct))
    sample = distinct.iloc[np.sort(gen.choice(len(distinct), n, replace=False))]
    X, y, group = fusion_frame(searcher, world, sample, gen)
    fusion = FusionRanker(
        n_estimators=cfg.trees, random_state=seed_of(seed, "video-search/fusion")
    ).fit(X, y, group)
    sec["fusion"] = time.perf_counter() - t0
    searcher.fusion = fusion
    return Fitted(searcher, len(clicks), n, len(y), sec, dual.train_loss_, fusion.importances())
