"""Video Recommendation System (the book's chapter 6): a YouTube-like home feed.

**Requirements.** Recommend videos on the home page so that users watch more. A catalogue of up to
millions of videos and users, new videos and users every day (cold start), a feed request served
within a latency budget of ~100 ms (p99) on a couple of cores. Recommendations should be diverse,
fresh and never repeat what the user has already watched.

**Framing.** Multi-stage recommendation: lightweight candidate generation (a two-tower network
searched with approximate nearest neighbours, plus popular/trending and co-watch sources) narrows
the catalogue to a few hundred candidates; a heavier ranking model predicts P(click) and the
expected watch time of each; re-ranking removes watched items, diversifies and boosts fresh ones.
Label: an impression followed by a click is a positive for the click model, its watch time the
target of the watch-time model; a click is a positive pair for the two-tower model. Offline:
recall@k of retrieval, precision@k, MAP, nDCG@10, diversity, coverage. Online: CTR and watch
time per user (A/B test), and team-draft interleaving.

The package follows the skeleton of ``docs/architecture.md`` and reads top-down like the
chapter: ``world`` and ``world_entities`` (the simulated platform), ``world_log`` (step 3: its
impression log), ``datasets`` (MovieLens rating files), ``features`` (point-in-time features;
title embeddings come from ``mlsd.text``), ``model`` (step 4: fit every stage; the contract
cases) with ``model_candidates`` (popular, co-watch, the merge), ``model_two_tower`` and
``model_ranking``, ``evaluation`` (step 5 offline), ``evaluation_online`` (+ ``_sessions``,
``_stats``: the A/B test and interleaving) and ``evaluation_movielens`` (the public protocol),
``serving`` (the recommender and its artifacts) with ``serving_rerank``, ``serving_latency``
and ``serving_batch`` (step 6), and ``system`` (the steps). HTTP is in
:mod:`mlsd.api.routes.video_rec`.
"""

from mlsd.requirements import Framing, Requirements

REQUIREMENTS = Requirements(
    goal="increase user engagement (watch time) on the home feed",
    latency_budget_ms=100.0,
    latency_budget_for="one home-feed request: retrieval over the catalogue, ranking ~500 "
    "candidates, re-ranking; p99 on 2 cores",
    throughput_qps=1000.0,
    freshness="new videos must be recommendable the day they are uploaded; new users at once",
    scale="up to 1M videos and 1M users; tens of new videos and users per day per 1k",
    constraints=(
        "never recommend a video the user already watched",
        "diverse feed: no single category dominates",
        "cold start for new users (demographics) and new videos (content features)",
    ),
)

FRAMING = Framing(
    task="multi-stage recommendation: two-tower retrieval + pointwise ranking + re-ranking",
    input="a user (id, watch history, demographics) and the request context",
    output="the top-k videos ordered by expected watch time",
    label="click = impression followed by a watch; watch time = minutes watched after a click",
    offline_metrics=(
        "recall@100",
        "recall@500",
        "precision@10",
        "map@10",
        "ndcg@10",
        "diversity",
        "coverage",
    ),
    online_metrics=("ctr", "watch_time_per_user", "interleaving_preference"),
)
