"""The 45-minute plan's per-system part for the ranking and recommendation chapters: video
recommendation, event recommendation, similar listings, people you may know, the news feed
(registered in :data:`mlsd.interview_systems.SYSTEM_PLANS`)."""

from __future__ import annotations

from mlsd.interview_plan import Decision, SystemPlan

VIDEO_REC = SystemPlan(
    questions={
        "requirements": ("Is engagement clicks or watch time? How large is the catalogue?",),
        "model": ("Which candidate sources, and how many candidates reach the ranker?",),
        "monitoring": ("Can interleaving compare rankers with fewer users than an A/B test?",),
    },
    decisions=(
        Decision(
            "requirements",
            "Design it in stages: cheap candidate generation, then a heavier ranker",
            "the merged candidate sources hand {cand:.0f} videos per user to the ranker and "
            "hold {recall:.0%} of the videos the user goes on to watch",
            {"cand": "models.merged.candidates", "recall": "models.merged.recall@all"},
            ("Model development",),
        ),
        Decision(
            "data",
            "Log the position: the feed's log is position-biased",
            "CTR at the top slot {top:.2%} vs {tenth:.2%} at the tenth",
            {"top": "data.ctr_by_position.0", "tenth": "data.ctr_by_position.9"},
            ("Data preparation",),
            when=(("data.ctr_by_position.0", ">", "@data.ctr_by_position.9"),),
        ),
        Decision(
            "model",
            "Combine candidate sources: popularity and the two-tower model each find what the "
            "other misses",
            "recall@100: popular {pop:.3f}, two-tower {tt:.3f}, co-watch {cw:.3f}",
            {
                "pop": "models.popular.recall@100",
                "tt": "models.two_tower.recall@100",
                "cw": "models.cowatch.recall@100",
            },
            ("Offline evaluation",),
        ),
        Decision(
            "model",
            "Rank the candidates with a model, then re-rank for diversity",
            "nDCG@10: popular {pop:.3f}, ranked {ranked:.3f}, full stack {full:.3f}, oracle "
            "{oracle:.3f}; diversity {div_pop:.2f} → {div_full:.2f}",
            {
                "pop": "models.popular.ndcg@10",
                "ranked": "models.ranked.ndcg@10",
                "full": "models.full.ndcg@10",
                "oracle": "oracle.ndcg@10",
                "div_pop": "models.ranked.diversity",
                "div_full": "models.full.diversity",
            },
            ("Offline evaluation",),
        ),
        Decision(
            "model",
            "Search the embeddings with an approximate index",
            "`{kind}` keeps {recall:.1%} of the exact top-k at {ms:.3f} ms p99 per query",
            {
                "kind": "models.ann_index.kind",
                "recall": "serving.ann.<models.ann_index.kind>.recall_vs_exact",
                "ms": "serving.ann.<models.ann_index.kind>.query_p99_ms",
            },
            ("Serving",),
        ),
        Decision(
            "model",
            "Measure each stage's latency against the budget",
            "p99 {total:.1f} ms end to end (budget {budget:g} ms): retrieval {ret:.1f}, "
            "ranking {rank:.1f}, re-ranking {rerank:.1f} ms",
            {
                "total": "serving.request_latency_ms.total.p99",
                "budget": "requirements.latency_budget_ms",
                "ret": "serving.request_latency_ms.retrieval.p99",
                "rank": "serving.request_latency_ms.ranking.p99",
                "rerank": "serving.request_latency_ms.reranking.p99",
            },
            ("Serving",),
        ),
        Decision(
            "monitoring",
            "Screen rankers with interleaving before an A/B test",
            "users needed: {il} with interleaving vs {ab} for the A/B test on watch time",
            {
                "il": "online.users_needed.interleaving",
                "ab": "online.users_needed.ab_watch_time",
            },
            ("Online",),
            when=(("online.users_needed.interleaving", "<", "@online.users_needed.ab_watch_time"),),
        ),
        Decision(
            "bottlenecks",
            "Precompute recommendations in batch where freshness allows",
            "a precomputed list is read in {lookup:.4f} ms p99 vs {online:.1f} ms p99 online",
            {"lookup": "batch.lookup_ms.p99", "online": "batch.online_p99_ms"},
            ("Batch",),
        ),
    ),
)


EVENT_REC = SystemPlan(
    questions={
        "requirements": ("Is success a registration or a click? How far do users travel?",),
        "data": ("Which features are point-in-time: registrations so far, friends going?",),
    },
    decisions=(
        Decision(
            "requirements",
            "Frame it as pointwise learning to rank on P(register | user, event)",
            "{rate:.2%} of {rows:,} logged impressions led to a registration",
            {"rate": "data.register_rate", "rows": "data.impressions"},
            ("Data preparation",),
        ),
        Decision(
            "data",
            "Build location, time and social features first: they carry the signal",
            "removing a group costs nDCG@10: location {loc:.3f}, event {ev:.3f}, social "
            "{soc:.3f}, time {time:.3f}",
            {
                "loc": "evaluation.ablation.location.ndcg_drop",
                "ev": "evaluation.ablation.event.ndcg_drop",
                "soc": "evaluation.ablation.social.ndcg_drop",
                "time": "evaluation.ablation.time.ndcg_drop",
            },
            ("Offline evaluation",),
            when=(("evaluation.ablation.location.ndcg_drop", ">", 0),),
        ),
        Decision(
            "model",
            "Choose the model on validation days, report it on later test days",
            "served `{chosen}`: test nDCG@10 {test:.3f} vs {base:.3f} for popular-nearby and "
            "{oracle:.3f} for the oracle",
            {
                "chosen": "chosen_model",
                "test": "models.<chosen_model>.offline.ndcg@10",
                "base": "models.popular_nearby.offline.ndcg@10",
                "oracle": "oracle.offline.ndcg@10",
            },
            ("Offline evaluation",),
        ),
        Decision(
            "model",
            "Filter by distance and time before ranking: most events are irrelevant",
            "{cand:.0f} candidates per request of {open} open events",
            {"cand": "serving.mean_candidates", "open": "serving.open_events"},
            ("Serving",),
        ),
        Decision(
            "model",
            "Retrain daily: events are short-lived",
            "daily retraining raises test nDCG@10 by {gain:.4f} on average",
            {"gain": "continual_learning.mean_ndcg_gain"},
            ("Continual learning",),
            when=(("continual_learning.mean_ndcg_gain", ">", 0),),
        ),
        Decision(
            "monitoring",
            "Compare rankers with interleaving as well as an A/B test",
            "team-draft interleaving preferred `{pref}` on registrations (p={p:.2g})",
            {
                "pref": "online.interleaving.by_registrations.preferred",
                "p": "online.interleaving.by_registrations.p_value",
            },
            ("Online",),
        ),
    ),
)


SIMILAR_LISTINGS = SystemPlan(
    questions={
        "requirements": ("Similar to what the user clicked, or to what they will book?",),
        "data": ("How long are sessions, and how often do they end in a booking?",),
    },
    decisions=(
        Decision(
            "requirements",
            "Learn listing embeddings from click sessions (skip-gram), not from attributes",
            "{sessions:,} training sessions, {clicks:,} clicks; next-click hit@10: skip-gram "
            "{sg:.3f} vs attributes {attr:.3f}",
            {
                "sessions": "data.train.sessions",
                "clicks": "data.train.clicks",
                "sg": "models.<chosen_model>.next_hr@10",
                "attr": "models.attributes.next_hr@10",
            },
            ("Offline evaluation",),
        ),
        Decision(
            "data",
            "Add the booked listing as global context and draw negatives from the same region",
            "booked listing in the top 10: {plain:.3f} for plain skip-gram vs {full:.3f} with both",
            {
                "plain": "models.skipgram.booked_hr@10",
                "full": "models.skipgram_booked_region_negatives.booked_hr@10",
            },
            ("Offline evaluation",),
            when=(
                (
                    "models.skipgram_booked_region_negatives.booked_hr@10",
                    ">",
                    "@models.skipgram.booked_hr@10",
                ),
            ),
        ),
        Decision(
            "model",
            "Serve nearest neighbours from one index per region",
            "p99 {p99:.2f} ms per request (budget {budget:g} ms) over {n:,} listings in "
            "{regions} regions",
            {
                "p99": "serving.latency_ms.total.p99",
                "budget": "requirements.latency_budget_ms",
                "n": "serving.listings",
                "regions": "serving.regions",
            },
            ("Serving",),
        ),
        Decision(
            "monitoring",
            "Watch new listings: they have no sessions yet",
            "next-click hit@10 on cold-start listings: {cold:.3f} vs {oracle:.3f} for the oracle",
            {
                "cold": "models.<chosen_model>.cold_start.next_hr@10",
                "oracle": "oracle.cold_start.next_hr@10",
            },
            ("Offline evaluation",),
        ),
    ),
)


PYMK = SystemPlan(
    questions={
        "requirements": ("How many users, how many friends each, and how fresh must lists be?",),
        "data": ("How is the graph split in time so labels come after features?",),
    },
    decisions=(
        Decision(
            "requirements",
            "Frame it as edge prediction, scored only on friends of friends",
            "friends of friends are {share:.0%} of all pairs yet hold {recall:.0%} of the "
            "new friendships",
            {"share": "candidates.share_of_all_pairs", "recall": "candidates.recall"},
            ("Feature engineering", "Model development"),
        ),
        Decision(
            "data",
            "Split in time: features from the snapshot, labels from the next window",
            "labels from the {days}-day window after the snapshot; {rate:.1%} of training "
            "pairs become friends",
            {
                "days": "features.label_window_days",
                "rate": "features.train_positive_rate",
            },
            ("Feature engineering",),
        ),
        Decision(
            "model",
            "Beat the graph heuristics with a learned model, chosen on validation",
            "served `{chosen}`: validation recall@10 {val:.3f} vs {aa:.3f} for Adamic-Adar; "
            "test recall@10 {test:.3f}, oracle {oracle:.3f}",
            {
                "chosen": "chosen_model",
                "val": "evaluation.validation.<chosen_model>",
                "aa": "evaluation.validation.adamic_adar",
                "test": "models.<chosen_model>.recall@10",
                "oracle": "oracle.recall@10",
            },
            ("Offline evaluation",),
            when=(
                ("evaluation.validation.<chosen_model>", ">", "@evaluation.validation.adamic_adar"),
            ),
        ),
        Decision(
            "model",
            "Precompute the lists in batch; compute online only for new users",
            "a stored list is read in {lookup:.3f} ms p99 vs {online:.0f} ms p99 computed "
            "online, at {bytes:.0f} bytes per user",
            {
                "lookup": "serving.batch.lookup_ms.p99",
                "online": "serving.online.latency_ms.p99",
                "bytes": "serving.batch.bytes_per_user",
            },
            ("Serving",),
        ),
        Decision(
            "monitoring",
            "Refresh the batch daily: yesterday's lists miss new users",
            "{share:.1%} of the last day's new friendships involve a user yesterday's batch "
            "did not know",
            {"share": "serving.freshness.share_with_a_user_yesterdays_batch_did_not_know"},
            ("Serving",),
        ),
    ),
)


NEWS_FEED = SystemPlan(
    questions={
        "requirements": ("Which reactions count, and how much is a share worth against a hide?",),
        "data": ("Does engagement track satisfaction, or only attention?",),
    },
    decisions=(
        Decision(
            "requirements",
            "Rank by a weighted sum of predicted reactions, not by clicks alone",
            "logged per impression: click {click:.1%}, like {like:.1%}, share {share:.1%}, "
            "hide {hide:.2%}",
            {
                "click": "data.rates.click",
                "like": "data.rates.like",
                "share": "data.rates.share",
                "hide": "data.rates.hide",
            },
            ("Data preparation",),
        ),
        Decision(
            "data",
            "Check engagement against satisfaction before optimising it",
            "per session, engagement correlates {rho:.2f} (Spearman) with the survey answers "
            "of {n} users",
            {
                "rho": "evaluation.engagement_vs_satisfaction."
                "sessions_spearman_engagement_vs_survey",
                "n": "evaluation.engagement_vs_satisfaction.surveys",
            },
            ("Offline evaluation",),
        ),
        Decision(
            "model",
            "Choose between one multi-task model and one model per reaction on validation",
            "served `{chosen}`: test nDCG@10 {ndcg:.3f}; click ROC-AUC {auc:.3f} vs {oracle:.3f} "
            "for the oracle",
            {
                "chosen": "chosen_model",
                "ndcg": "models.<chosen_model>.offline.ndcg@10",
                "auc": "models.<chosen_model>.offline.heads.click.roc_auc",
                "oracle": "oracle.offline.heads.click.roc_auc",
            },
            ("Offline evaluation",),
        ),
        Decision(
            "model",
            "Budget the stages: features dominate the request",
            "p99 {total:.0f} ms end to end (budget {budget:g} ms): retrieval {ret:.0f}, "
            "features {feat:.0f}, scoring {score:.0f}, re-ranking {rr:.0f} ms",
            {
                "total": "serving.latency_ms.total.p99",
                "budget": "serving.budget_ms",
                "ret": "serving.latency_ms.retrieval.p99",
                "feat": "serving.latency_ms.features.p99",
                "score": "serving.latency_ms.scoring.p99",
                "rr": "serving.latency_ms.reranking.p99",
            },
            ("Serving",),
            when=(
                ("serving.latency_ms.features.p99", ">", "@serving.latency_ms.scoring.p99"),
                ("serving.latency_ms.features.p99", ">", "@serving.latency_ms.retrieval.p99"),
            ),
        ),
    ),
)
