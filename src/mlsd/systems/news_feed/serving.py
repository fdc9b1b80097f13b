"""Step 6: the feed service and its artifacts (no HTTP: that is ``mlsd.api.routes.news_feed``).

A request for user ``u`` at the serving clock runs four stages, each timed:

1. **retrieval**: the unseen posts of friends, followed pages and groups from the last
   ``lookback_h`` hours, blocked authors excluded (:func:`~.features_retrieval.retrieve`);
2. **features**: :func:`~.features.pair_frame` on the reaction counts as of the clock (the same
   function the training rows were computed with);
3. **scoring**: the served model's heads and the weighted engagement score;
4. **re-ranking**: freshness, the demotion of flagged posts, author and media diversity.

New posts are published in memory (:meth:`NewsFeedScorer.publish`) and are retrievable at once,
without a restart; posts can be flagged for demotion (:meth:`NewsFeedScorer.flag`). A reload
reads the run's artifacts again (and forgets what was published since).

The artifacts are data: the model (:mod:`mlsd.model_io`), the platform's tables and the
impression log as Parquet, and ``serving.json``; all listed in ``manifest.json`` and checked
before anything is read.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlsd.artifacts import artifacts_dir_of, verify_manifest, write_json, write_manifest
from mlsd.data import write_parquet
from mlsd.models import LightGBMClick
from mlsd.serving import (
    ServingArtifactError,
    artifact_count,
    read_artifact_json,
    read_artifact_model,
    read_artifact_tables,
)
from mlsd.settings import Settings
from mlsd.systems.news_feed.features import FeedState, Platform, pair_frame
from mlsd.systems.news_feed.features_retrieval import pair_keys, retrieve
from mlsd.systems.news_feed.model import predict_heads, ranking_score
from mlsd.systems.news_feed.model_multitask import MultiTaskRanker
from mlsd.systems.news_feed.serving_rerank import RerankConfig, rerank
from mlsd.systems.news_feed.world_config import HEADS, MEDIA, TOPIC_TAGS, TOPICS, EngagementWeights

SYSTEM = "news-feed"
MODEL_DIR = "model"
SERVING_FILE = "serving.json"
TABLES = ("users", "authors", "posts", "friends", "follows", "impressions")
IMPRESSION_COLUMNS = (
    "session_id",
    "user_id",
    "post_id",
    "author_id",
    "ts",
    "day",
    "position",
    *HEADS,
)
MAX_CANDIDATES = 500  # the newest, when a user's window holds more
POST_SPACE = 2**31  # seen keys: user * POST_SPACE + post, stable as posts are published


class UnknownUserError(LookupError):
    def __init__(self, what: str, entity_id: int) -> None:
        super().__init__(f"unknown {what} {entity_id}: no such {what} in the served run")
        self.entity_id = entity_id


@dataclass(frozen=True)
class PostOut:
    post_id: int
    author_id: int
    topic: str
    media: str
    age_h: float
    flagged: bool
    score: float  # the ranker's score (weighted engagement, or P(any engagement))
    heads: dict[str, float]  # predicted reactions (empty for the single classifier)


@dataclass(frozen=True)
class Feed:
    user_id: int
    model: str
    posts: list[PostOut]
    candidates: int
    timings_ms: dict[str, float]


@dataclass
class Tables:
    users: pd.DataFrame
    authors: pd.DataFrame
    posts: pd.DataFrame
    friends: pd.DataFrame
    follows: pd.DataFrame
    impressions: pd.DataFrame


def world_tables(world: Any, impressions: pd.DataFrame, clock_ts: int) -> Tables:
    """The platform's tables at ``clock_ts`` (posts created before it; the world's hidden
    columns left out), as the serving step saves them."""
    t = world.platform_tables()
    posts = t["posts"][t["posts"]["created_ts"].to_numpy() < clock_ts].reset_index(drop=True)
    imp = impressions[impressions["ts"].to_numpy() < clock_ts]
    return Tables(
        t["users"],
        t["authors"],
        posts,
        t["friends"],
        t["follows"],
        imp[list(IMPRESSION_COLUMNS)].reset_index(drop=True),
    )


class NewsFeedScorer:
    """The served feed over the platform's records as of ``clock_ts``."""

    def __init__(
        self,
        model: Any,
        model_name: str,
        tables: Tables,
        clock_ts: int,
        weights: EngagementWeights,
        rerank_config: RerankConfig,
        lookback_h: int,
    ) -> None:
        self.model = model
        self.model_name = model_name
        self.clock_ts = int(clock_ts)
        self.weights = weights
        self.rerank_config = rerank_config
        self.lookback_s = int(lookback_h) * 3600
        self.platform = Platform(
            tables.users, tables.authors, tables.posts, tables.friends, tables.follows
        )
        imp = tables.impressions
        self.state = FeedState.build(imp, self.clock_ts + 1, self.platform)
        self._seen = np.sort(pair_keys(imp["user_id"], imp["post_id"], POST_SPACE))
        blocks = imp[imp["block"].to_numpy() == 1]
        self._blocked = np.sort(
            pair_keys(blocks["user_id"], blocks["author_id"], len(tables.authors))
        )
        self._lock = threading.Lock()
        self._flagged: set[int] = set()
        self._arrays()

    def _arrays(self) -> None:
        posts = self.platform.posts
        self._author = posts["author_id"].to_numpy(np.int64)
        self._created = posts["created_ts"].to_numpy(np.int64)
        self._media = posts["media"].to_numpy(np.int64)
        self._topic = posts["topic"].to_numpy(np.int64)
        self._flag_col = posts["flagged"].to_numpy(np.int64)

    @property
    def n_users(self) -> int:
        return len(self.platform.users)

    @property
    def n_posts(self) -> int:
        return len(self._created)

    def publish(self, author_id: int, topic: int, media: int) -> int:
        """A new post by ``author_id``, created now (the serving clock); retrievable at once."""
        if not 0 <= author_id < self.platform.n_authors:
            raise UnknownUserError("author", author_id)
        with self._lock:
            post_id = self.n_posts
            tag = TOPIC_TAGS[TOPICS[topic]][0]
            row = pd.DataFrame(
                {
                    "post_id": [post_id],
                    "author_id": [author_id],
                    "topic": [topic],
                    "media": [media],
                    "hashtag": [tag],
                    "created_ts": [self.clock_ts],
                    "flagged": [0],
                }
            ).astype(self.platform.posts.dtypes.to_dict())
            self.platform.posts = pd.concat([self.platform.posts, row], ignore_index=True)
            self._arrays()
        return post_id

    def flag(self, post_id: int) -> None:
        """Demote ``post_id`` (the hook another system calls)."""
        if not 0 <= post_id < self.n_posts:
            raise UnknownUserError("post", post_id)
        with self._lock:
            self._flagged = self._flagged | {post_id}

    def retrieve(self, user_id: int, ts: int) -> np.ndarray:
        with self._lock:
            author, created = self._author, self._created
        p = retrieve(
            self.platform.connections,
            author,
            created,
            np.array([user_id]),
            np.array([ts]),
            self.lookback_s,
            self._seen,
            self._blocked,
            post_space=POST_SPACE,
        )["post_id"].to_numpy(np.int64)
        if len(p) > MAX_CANDIDATES:
            p = p[np.argsort(-created[p], kind="stable")[:MAX_CANDIDATES]]
        return p

    def feed(self, user_id: int, k: int = 20) -> Feed:
        t0 = time.perf_counter()
        if not 0 <= user_id < self.n_users:
            raise UnknownUserError("user", user_id)
        ts = self.clock_ts + 1
        p = self.retrieve(user_id, ts)
        t1 = time.perf_counter()
        u = np.full(len(p), user_id, np.int64)
        tss = np.full(len(p), ts, np.int64)
        X = pair_frame(self.platform, self.state, u, p, tss)
        t2 = time.perf_counter()
        heads = predict_heads(self.model, X) if len(p) else None
        if heads is not None:
            score = self.weights.score(heads)
        else:
            score = ranking_score(self.model, X, self.weights) if len(p) else np.zeros(0)
        t3 = time.perf_counter()
        age_h = (ts - self._created[p]) / 3600.0
        flagged = (self._flag_col[p] == 1) | np.isin(p, np.fromiter(self._flagged, np.int64))
        order = rerank(
            score, self._author[p], self._media[p], age_h, flagged, self.rerank_config, k
        )
        t4 = time.perf_counter()
        posts = [
            PostOut(
                post_id=int(p[i]),
                author_id=int(self._author[p[i]]),
                topic=TOPICS[int(self._topic[p[i]])],
                media=MEDIA[int(self._media[p[i]])],
                age_h=float(age_h[i]),
                flagged=bool(flagged[i]),
                score=float(score[i]),
                heads={} if heads is None else {h: float(heads[i, j]) for j, h in enumerate(HEADS)},
            )
            for i in order
        ]
        ms = 1000.0
        return Feed(
            user_id=int(user_id),
            model=self.model_name,
            posts=posts,
            candidates=len(p),
            timings_ms={
                "retrieval": (t1 - t0) * ms,
                "features": (t2 - t1) * ms,
                "scoring": (t3 - t2) * ms,
                "reranking": (t4 - t3) * ms,
                "total": (time.perf_counter() - t0) * ms,
            },
        )


# ---- artifacts --------------------------------------------------------------------------------
def save_serving_artifacts(
    artifacts_dir: Path,
    model: Any,
    model_name: str,
    tables: Tables,
    clock_ts: int,
    weights: EngagementWeights,
    rerank_config: RerankConfig,
    lookback_h: int,
) -> None:
    out = Path(artifacts_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / MODEL_DIR)
    for name in TABLES:
        write_parquet(getattr(tables, name), out / "tables" / f"{name}.parquet")
    write_json(
        out / SERVING_FILE,
        {
            "system": SYSTEM,
            "model_name": model_name,
            "model_class": type(model).__name__,
            "clock_ts": int(clock_ts),
            "lookback_h": int(lookback_h),
            "weights": weights.to_dict(),
            "rerank": rerank_config.to_dict(),
        },
    )
    write_manifest(out)


def _config(meta: dict[str, Any], key: str, cls: Any, path: Path) -> Any:
    value = meta.get(key)
    try:
        if not isinstance(value, dict):
            raise TypeError("not an object")
        return cls(**value)
    except TypeError as exc:
        raise ServingArtifactError(f"{path}: field {key!r}: {exc}") from exc


def load_scorer(run_dir: Path, settings: Settings | None = None) -> NewsFeedScorer:
    """The feed service of a run directory (or its bare artifacts folder), every file checked
    against the manifest before it is read."""
    import mlsd.systems.news_feed.model  # noqa: F401  (registers the model classes)

    art = artifacts_dir_of(Path(run_dir))
    required = (SERVING_FILE, MODEL_DIR, *(f"tables/{t}.parquet" for t in TABLES))
    verify_manifest(art, required=required)
    path = art / SERVING_FILE
    meta = read_artifact_json(path)
    if not isinstance(meta, dict) or not isinstance(meta.get("model_name"), str):
        raise ServingArtifactError(f"{path}: field 'model_name' missing or not a string")
    for key in ("clock_ts", "lookback_h"):
        artifact_count(meta, key, path)
    weights = _config(meta, "weights", EngagementWeights, path)
    rerank_config = _config(meta, "rerank", RerankConfig, path)
    from mlsd.systems.news_feed.model import PerHeadLightGBM

    model = read_artifact_model(art / MODEL_DIR, (MultiTaskRanker, PerHeadLightGBM, LightGBMClick))
    frames = read_artifact_tables(art / "tables", TABLES)
    try:
        return NewsFeedScorer(
            model,
            meta["model_name"],
            Tables(**frames),
            meta["clock_ts"],
            weights,
            rerank_config,
            meta["lookback_h"],
        )
    except (KeyError, ValueError, IndexError, TypeError) as exc:
        raise ServingArtifactError(f"{art}: inconsistent serving tables: {exc!r}") from exc
