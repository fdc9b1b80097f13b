"""The evaluation and deployment steps of the video-rec run (book ch. 6, steps 5-6)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from mlsd import metrics as mm
from mlsd.runner import RunContext
from mlsd.systems.video_rec import deployment as dep
from mlsd.systems.video_rec.evaluation import MODE_LABELS, eval_users, evaluate_offline
from mlsd.systems.video_rec.serving import save_recommender
from mlsd.systems.video_rec.world_entities import VideoWorldConfig
from mlsd.world import Scale

log = logging.getLogger(__name__)

EVAL_USERS = {Scale.TINY: 150, Scale.SMALL: 400, Scale.MEDIUM: 600, Scale.LARGE: 600}
LARGE_CATALOGUE = {
    Scale.TINY: 100_000,
    Scale.SMALL: 1_000_000,
    Scale.MEDIUM: 1_000_000,
    Scale.LARGE: 1_000_000,
}


def _f(x: Any) -> Any:
    return None if x is None else x


def step_offline(ctx: RunContext) -> None:
    from mlsd.systems.video_rec.system import extend_to_today

    extend_to_today(ctx)
    world, rec, rng = ctx.state["world"], ctx.state["rec"], ctx.state["eval_rng"]
    users = eval_users(world, EVAL_USERS[ctx.options.scale], rng)
    rel, oracle = world.relevance_sample(users, rng)
    res = evaluate_offline(ctx, rec, world, users, rel, oracle)
    ctx.metrics["offline"] = res
    st = res["stages"]
    bp = ctx.blueprint
    bp.section("Offline evaluation")
    bp.text(
        f"Evaluated on day {world.day}, the day after the log, for {res['users']} users (a "
        "quarter of them new today, without history). The held-out truth is what each user "
        "would watch if shown every unwatched video at the top slot (a draw of the world's true "
        f"click probabilities; {res['relevant_per_user']:.1f} videos per user), graded by the "
        "minutes watched. The oracle ranks by the true expected watch minutes."
    )
    rows = [
        [name, r.get("recall@100"), r.get("recall@500")]
        for name, r in res["retrieval"].items()
        if name != "merged"
    ]
    m = res["retrieval"]["merged"]
    bp.table(
        ["candidate source", "recall@100", "recall@500"],
        rows,
        caption=f"Retrieval. The merged candidate set ({m['candidates']:.0f} videos per "
        f"user) recalls {m['recall@all']:.3f} of the relevant videos.",
    )
    keys = (
        "precision@10",
        "map@10",
        "ndcg@10",
        "recall@10",
        "diversity",
        "coverage",
        "true_minutes@10",
    )
    bp.table(
        ["stage", *keys],
        [[MODE_LABELS.get(n, n)] + [r[k] for k in keys] for n, r in st.items()],
        caption="Each stage and baseline next to the oracle. true_minutes@10 = the world's "
        "expected watch minutes of the 10 recommended videos.",
    )
    cs = res["cold_start"]
    bp.table(
        ["cold-start slice", "users", "nDCG@10", "precision@10"],
        [[n, r["users"], r["ndcg@10"], r["precision@10"]] for n, r in cs["users"].items()],
    )
    bp.text(
        f"New videos ({cs['new_videos']} uploaded today, no interactions): recall@100 of the "
        "relevant new videos is "
        + ", ".join(f"{k} {v:.3f}" for k, v in cs["new_video_recall@100"].items())
        + ". The content tower (title embedding, category, duration) is what retrieves them."
    )


def step_serving(ctx: RunContext) -> None:
    rec, scale, seed = ctx.state["rec"], ctx.options.scale, ctx.options.seed
    rng = np.random.default_rng(seed + 2)
    users = rng.choice(len(rec.users), 100 if scale == Scale.TINY else 200, replace=False)
    from mlsd.systems.video_rec.features import Demographics

    q = rec.tower.user_embeddings(
        rec.cat, rec._tower_inputs(rec.us, users, Demographics.of(rec.users, users), True)
    )
    ann = dep.compare_indexes(rec.tower.video_embeddings(rec.cat), q, 100, seed)
    lat = dep.request_latency(rec, users[:100])
    large = dep.large_catalogue(
        rec, LARGE_CATALOGUE[scale], 100 if scale == Scale.TINY else 200, seed
    )
    big_q = rng.normal(size=(50, q.shape[1])).astype(np.float32)
    big_q /= np.linalg.norm(big_q, axis=1, keepdims=True)
    save_recommender(ctx.artifacts_dir, rec, {"k_default": 20})
    ctx.metrics["serving"] = {"ann": ann, "request_latency_ms": lat, "large_catalogue": large}
    bp = ctx.blueprint
    bp.section("Serving")
    bp.text(
        f"**Approximate nearest neighbours.** The {len(rec.cat.videos):,} video embeddings in "
        "three FAISS indexes; recall@100 of each against exact (flat) search for "
        f"{len(q)} real user-tower queries."
    )
    bp.table(
        ["index", "recall@100 vs exact", "build s", "memory MB", "query p50 ms", "query p99 ms"],
        [
            [
                k,
                v["recall@100"],
                v["build_s"],
                v["memory_mb"],
                v["query_ms"]["p50"],
                v["query_ms"]["p99"],
            ]
            for k, v in ann.items()
        ],
    )
    bp.table(
        ["stage", "p50 ms", "p99 ms"],
        [[s, v["p50"], v["p99"]] for s, v in lat.items()],
        caption=f"One home-feed request, in-process, {len(rec.cat.videos):,} videos, "
        f"~{rec.n_tower + rec.n_popular + rec.n_cowatch} candidates.",
    )
    li = large["index"]
    big = VideoWorldConfig.for_scale(Scale.LARGE)
    pairs = big.p_active * big.n_users * big.n_videos
    bp.text(
        f"**Large catalogue.** The large world ({big.n_users:,} users, {big.n_videos:,} "
        "videos) is not built here: its logging policy scores every eligible video for every "
        f"active user, about {pairs:.1e} (user, video) scores per logged day for "
        f"{big.n_days} days ({pairs * 8 / 1e12:.1f} TB a day as float64 if held at once), far "
        "beyond this machine's time and memory. The large-catalogue latency is measured instead "
        f"on a synthetic catalogue of **{large['videos']:,} random unit embeddings** in an IVF "
        "index "
        f"(nlist {li['nlist']}, nprobe {li['nprobe']}; built in {li['build_s']:.1f} s, "
        f"{li['memory_mb']:.0f} MB). Each request runs the real user tower, retrieves "
        f"{large['candidates']} candidates, maps them onto real videos and runs the real "
        "feature pipeline, ranking models and re-ranking (the user tower single-threaded, "
        "titles projected once per catalogue, the boosters called on one float matrix). Budget: "
        f"{ctx.metrics['requirements']['latency_budget_ms']:.0f} ms p99."
    )
    bp.table(
        ["stage", "p50 ms", "p99 ms"],
        [[s, v["p50"], v["p99"]] for s, v in large["latency_ms"].items()],
        caption="Large-catalogue latency by stage (in-process, one request at a time).",
    )


def step_staleness(ctx: RunContext) -> None:
    world, rec, seed = ctx.state["world"], ctx.state["rec"], ctx.options.seed
    from mlsd.systems.video_rec.system import extend_to_today

    users = np.flatnonzero(world.users["signup_day"].to_numpy() <= world.day)
    batch = dep.batch_precompute(rec, users)
    online_p99 = ctx.metrics["serving"]["request_latency_ms"]["total"]["p99"]
    rng = np.random.default_rng(seed + 4)
    sample = rng.choice(users, min(len(users), EVAL_USERS[ctx.options.scale]), replace=False)
    rows = []
    for stale in range(3):
        if stale:
            extend_to_today(ctx)
        rel, _ = world.relevance_sample(sample, rng)
        fresh = rec.recommend_users(sample, 10)
        fresh_recs = {
            int(u): [int(v) for v in ids] for u, ids in zip(sample, fresh.ids, strict=True)
        }
        old = {int(u): [int(v) for v in batch["table"][int(u)][:10]] for u in sample}
        rows.append(
            {
                "days_stale": stale,
                "ndcg_batch": mm.mean_over_users(mm.ndcg_at_k, old, rel, 10),
                "ndcg_online": mm.mean_over_users(mm.ndcg_at_k, fresh_recs, rel, 10),
            }
        )
    ctx.metrics["batch"] = {
        "users": batch["users"],
        "seconds": batch["seconds"],
        "lookup_ms": batch["lookup_ms"],
        "online_p99_ms": online_p99,
        "staleness": rows,
    }
    bp = ctx.blueprint
    bp.section("Batch precompute: staleness vs latency")
    bp.text(
        f"Precomputing the feeds of all {batch['users']:,} users took {batch['seconds']:.1f} s; "
        f"serving one is a lookup (p99 {batch['lookup_ms']['p99'] * 1000:.1f} µs) instead of "
        f"the online pipeline (p99 {online_p99:.1f} ms). The price is staleness: the world "
        "moves on (new videos, drifting tastes) while the lists do not. The online pipeline "
        "here uses the same models (no retraining), only today's catalogue."
    )
    bp.table(
        ["days since precompute", "nDCG@10 batch lists", "nDCG@10 online"],
        [[r["days_stale"], r["ndcg_batch"], r["ndcg_online"]] for r in rows],
    )


def step_summary(ctx: RunContext) -> None:
    st = ctx.metrics["offline"]["stages"]
    full, pop, cow = st["full"]["ndcg@10"], st["popular"]["ndcg@10"], st["cowatch"]["ndcg@10"]
    large = ctx.metrics["serving"]["large_catalogue"]
    ctx.metrics["summary"] = {
        "ndcg@10_full": full,
        "ndcg@10_popular": pop,
        "ndcg@10_cowatch": cow,
        "ndcg@10_oracle": st["oracle"]["ndcg@10"],
        "large_catalogue_p99_ms": large["latency_ms"]["total"]["p99"],
    }
    bp = ctx.blueprint
    bp.section("Summary")
    bp.text(
        f"- nDCG@10: full stack {full:.4f}, popular {pop:.4f}, co-watch {cow:.4f}, oracle "
        f"{st['oracle']['ndcg@10']:.4f}.\n"
        f"- Large catalogue ({large['videos']:,} videos) p99 "
        f"{large['latency_ms']['total']['p99']:.1f} ms per request.\n"
        f"- Online: {ctx.metrics['online']['ab']['decision']}."
    )


def step_movielens(ctx: RunContext) -> None:
    from mlsd.systems.video_rec.movielens import load_movielens
    from mlsd.systems.video_rec.movielens_eval import run_protocol
    from mlsd.systems.video_rec.titles import make_encoder

    fmt, _, path = (ctx.options.data or "").partition(":")
    if fmt != "movielens" or not path:
        from mlsd.data import DataError

        raise DataError(ctx.options.data or "", "expected --data movielens:PATH")
    ml = load_movielens(path)
    encoder = make_encoder(ctx.state.get("title_encoder", "minilm"))
    res = run_protocol(ml, encoder, ctx.options.seed)
    ctx.metrics["data"] = {
        "source": "file",
        "format": ml.layout,
        "path": ml.source,
        "rows": len(ml.ratings),
        "metadata": ml.has_metadata,
    }
    ctx.metrics["movielens"] = res
    for step, why in (
        ("ranking", "ratings carry no impressions, so no click/watch labels"),
        ("online", "an A/B test needs a world to act in"),
        ("serving", "the served stack needs the ranking stage"),
    ):
        ctx.skip(step, why)
    bp = ctx.blueprint
    bp.section("MovieLens: the public benchmark protocol")
    sp = res["split"]
    bp.text(
        f"Read {len(ml.ratings):,} ratings from `{ml.source}` ({ml.layout} layout"
        f"{', with item metadata' if ml.has_metadata else ''}). Random 75/25 split stratified "
        f"per item (seed 42): {sp['train']:,} train, {sp['test']:,} test; every held-out "
        f"interaction is relevant; items seen in training are removed; k = 10; "
        f"{sp['users_evaluated']:,} users evaluated."
    )
    names = [n for n in res if n != "split"]
    bp.table(
        ["model", "MAP", "nDCG@10", "Precision@10", "Recall@10", "train s"],
        [
            [
                n,
                res[n]["map"],
                res[n]["ndcg@10"],
                res[n]["precision@10"],
                res[n]["recall@10"],
                res[n]["train_seconds"],
            ]
            for n in names
        ],
    )
