"""Each system's serving shape, as :mod:`mlsd.bottlenecks` needs it, keyed by system name.

What a request reads from the online store, what a logged event writes to it, where the measured
per-request cost lies in ``metrics.json``, and what to shard by which key. The shapes are the
chapters' designs as this package built them; the *numbers* (cost per request, events per
request) are read from the run wherever it measured them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mlsd.interview_plan import resolve

READS_PER_SHARD_PER_S = 100_000  # one in-memory key-value store core (an assumption, stated)

MetricsFn = Callable[[Mapping[str, Any]], float | None]


@dataclass(frozen=True)
class ServingShape:
    ms_per_request: tuple[str, ...]  # metrics.json paths of the mean compute per request, in order
    reads_per_request: MetricsFn  # online-store keys one request reads
    reads_what: str
    events_per_request: MetricsFn  # events one request logs (impressions shown, ...)
    events_what: str
    writes_per_event: float  # online-store keys one logged event updates
    shard_what: str
    shard_key: str
    shard_why: str


def const(value: float) -> MetricsFn:
    return lambda metrics: value


def count_of(path: str) -> MetricsFn:
    """The number of entries at ``path`` (e.g. the positions the log shows per request)."""

    def fn(metrics: Mapping[str, Any]) -> float | None:
        value = resolve(metrics, path)
        return float(len(value)) if isinstance(value, Mapping | list) and value else None

    return fn


def value_at(path: str, plus: float = 0.0, times: float = 1.0) -> MetricsFn:
    """``value × times + plus`` of the number at ``path``."""

    def fn(metrics: Mapping[str, Any]) -> float | None:
        value = resolve(metrics, path)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value) * times + plus

    return fn


def ratio(numerator: str, denominator: str) -> MetricsFn:
    def fn(metrics: Mapping[str, Any]) -> float | None:
        a, b = resolve(metrics, numerator), resolve(metrics, denominator)
        if not isinstance(a, int | float) or not isinstance(b, int | float) or not b:
            return None
        return float(a) / float(b)

    return fn


AD_CANDIDATES = 100  # the requirement: 100 candidate ads per request

SPECS: dict[str, ServingShape] = {
    "ad-click": ServingShape(
        ms_per_request=("models.<chosen_model>.latency_ms.mean",),
        reads_per_request=const(2 + 4 * AD_CANDIDATES),
        reads_what=f"the user, the global prior, and per each of {AD_CANDIDATES} candidates its "
        "ad, advertiser, user×category and user×ad rows",
        events_per_request=count_of("data.ctr_by_position"),
        events_what="the feed's ad slots, as logged",
        writes_per_event=5,
        shard_what="the user-keyed feature tables (user, user×category, user×ad)",
        shard_key="user_id",
        shard_why="a request reads one user's rows, so they live on one shard; the ad tables "
        "are small and replicated to every shard",
    ),
    "video-rec": ServingShape(
        ms_per_request=("serving.request_latency_ms.total.mean",),
        reads_per_request=value_at("serving.large_catalogue.candidates", plus=1),
        reads_what="the user's features and history, and the ranking features of every "
        "retrieved candidate",
        events_per_request=count_of("data.ctr_by_position"),
        events_what="the videos shown per request, as logged",
        writes_per_event=2,
        shard_what="the video embedding index and video features",
        shard_key="video_id",
        shard_why="every shard searches its part of the catalogue in parallel and the "
        "top-k lists are merged; user features are sharded by user_id beside it",
    ),
    "event-rec": ServingShape(
        ms_per_request=("serving.latency_ms.total.mean",),
        reads_per_request=value_at("serving.mean_candidates", plus=1, times=2),
        reads_what="the user's row, and per candidate event its dynamic counts and its "
        "friends' registrations",
        events_per_request=ratio("data.impressions", "data.sessions"),
        events_what="the events shown per session, as logged",
        writes_per_event=2,
        shard_what="the event features and registration counts",
        shard_key="hood_id (the event's neighbourhood)",
        shard_why="events are local: a request filters candidates to a radius first, so one "
        "user's candidates sit on one or a few geographic shards",
    ),
    "similar-listings": ServingShape(
        ms_per_request=("serving.latency_ms.total.mean",),
        reads_per_request=value_at("evaluation.k", plus=1),
        reads_what="the clicked listing's embedding and the availability of every listing returned",
        events_per_request=value_at("evaluation.k"),
        events_what="the listings the carousel shows",
        writes_per_event=1,
        shard_what="the embedding index",
        shard_key="region",
        shard_why="a query searches its own region only (one index per region), so one "
        "request touches one shard",
    ),
    "people-you-may-know": ServingShape(
        ms_per_request=("serving.batch.lookup_ms.mean", "serving.online.latency_ms.mean"),
        reads_per_request=const(1),
        reads_what="the user's precomputed list (the batch job wrote it overnight)",
        events_per_request=const(1),
        events_what="a friend request or an accepted one",
        writes_per_event=2,
        shard_what="the friendship graph and the precomputed lists",
        shard_key="user_id",
        shard_why="the list read and the 2-hop walk start from one user; the graph is "
        "partitioned by user with the friends-of-friends walk batched per shard",
    ),
    "street-view-blur": ServingShape(
        ms_per_request=("serving.latency_ms.<chosen_model>.p99_ms",),
        reads_per_request=const(1),
        reads_what="the image (a batch job: no online feature store)",
        events_per_request=const(1),
        events_what="one blurred image written back",
        writes_per_event=1,
        shard_what="the batch of images to blur",
        shard_key="image id range (each shard with its own resumable manifest)",
        shard_why="images are independent, so shards never talk; a failed shard resumes "
        "where it stopped",
    ),
    "video-search": ServingShape(
        ms_per_request=("serving.latency_ms.total.mean",),
        reads_per_request=const(1 + 100),
        reads_what="the query's text embedding and the metadata of ~100 fused candidates",
        events_per_request=const(10),
        events_what="the ten results shown",
        writes_per_event=1,
        shard_what="the inverted index and the video embedding index",
        shard_key="video_id (document-partitioned)",
        shard_why="each shard answers for its documents and a query fans out to all of them; "
        "replicas add throughput",
    ),
    "news-feed": ServingShape(
        ms_per_request=("serving.latency_ms.total.mean",),
        reads_per_request=value_at("data.candidates_per_session", plus=1, times=2),
        reads_what="the user's row, and per candidate post its counters and the user's "
        "affinity with its author",
        events_per_request=ratio("data.impressions", "data.sessions"),
        events_what="the posts shown per session, as logged",
        writes_per_event=3,
        shard_what="the user-keyed affinity features and feed caches",
        shard_key="user_id",
        shard_why="a feed request reads one user's affinities; post counters are hot keys, so "
        "they are replicated and cached rather than sharded",
    ),
    "harmful-content": ServingShape(
        ms_per_request=("serving.latency_ms.mean",),
        reads_per_request=const(1),
        reads_what="the author's history row",
        events_per_request=const(1),
        events_what="the post's decision (remove, demote, review, allow)",
        writes_per_event=2,
        shard_what="posts and their decisions, and the authors' histories",
        shard_key="post_id (authors by author_id)",
        shard_why="posts are classified independently; an author's violations are read with "
        "each of their posts",
    ),
    "visual-search": ServingShape(
        ms_per_request=("serving.latency_ms.total.mean",),
        reads_per_request=const(10),
        reads_what="the metadata of the ten results (the query image is embedded, not read)",
        events_per_request=const(10),
        events_what="the ten results shown",
        writes_per_event=1,
        shard_what="the image embedding index",
        shard_key="image_id",
        shard_why="each shard searches its part of the catalogue in parallel and the top-k "
        "lists are merged; replicas add throughput",
    ),
}
