"""The 45-minute plan's per-system part for the image, video and content chapters: visual
search, street-view blurring, video search, harmful content (registered in
:data:`mlsd.interview_systems.SYSTEM_PLANS`)."""

from __future__ import annotations

from mlsd.interview_plan import Decision, SystemPlan

STREET_VIEW_BLUR = SystemPlan(
    questions={
        "requirements": ("Which objects must be blurred, and is a miss worse than over-blur?",),
        "data": ("How small are the faces and plates, and in which conditions (night, fog)?",),
    },
    decisions=(
        Decision(
            "requirements",
            "Frame it as object detection judged by recall: a missed face is a privacy breach",
            "{faces} faces and {plates} plates in {images} training images",
            {
                "faces": "data.train.faces",
                "plates": "data.train.plates",
                "images": "data.train.images",
            },
            ("Data preparation",),
        ),
        Decision(
            "data",
            "Most objects are small: keep a fine output stride and augment night and blur",
            "{small:.0%} of objects are small (10th percentile side {p10:.1f} px); output "
            "stride {stride}",
            {
                "small": "features.small_object_share",
                "p10": "features.object_side_px.p10",
                "stride": "features.output_stride",
            },
            ("Feature engineering",),
        ),
        Decision(
            "model",
            "Train a one-stage detector rather than ship the bundled cascades",
            "`{chosen}` reaches mAP {map:.3f} vs {haar:.3f} for the Haar cascades",
            {
                "chosen": "chosen_model",
                "map": "models.<chosen_model>.map",
                "haar": "models.haar_cascades.map",
            },
            ("Offline evaluation",),
            when=(("models.<chosen_model>.map", ">", "@models.haar_cascades.map"),),
        ),
        Decision(
            "model",
            "Serve it as a resumable batch job, not an online service",
            "{ips:.1f} images/s on this machine; a rerun resumed {resumed} of {total} images "
            "without redoing them",
            {
                "ips": "serving.batch.images_per_second",
                "resumed": "serving.resume_rerun.resumed",
                "total": "serving.resume_rerun.total",
            },
            ("Serving",),
        ),
        Decision(
            "model",
            "Trade resolution for speed where recall allows",
            "p99 per image {full:.0f} ms at full resolution vs {half:.0f} ms at half",
            {
                "full": "serving.latency_ms.centernet.p99_ms",
                "half": "serving.latency_ms.centernet_half.p99_ms",
            },
            ("Serving",),
            when=(
                (
                    "serving.latency_ms.centernet_half.p99_ms",
                    "<",
                    "@serving.latency_ms.centernet.p99_ms",
                ),
            ),
        ),
    ),
)


VIDEO_SEARCH = SystemPlan(
    questions={
        "requirements": ("Text queries only, or also visual content? How fresh is the index?",),
        "data": ("How many videos have poor titles or descriptions?",),
    },
    decisions=(
        Decision(
            "requirements",
            "Search by text and by visual content: text alone misses poorly described videos",
            "{poor:.0%} of the catalogue has poor text; BM25's nDCG@10 on those queries is "
            "{bm25_poor:.3f} vs {visual_poor:.3f} for visual search",
            {
                "poor": "data.poor_text_share",
                "bm25_poor": "models.bm25.slices.poor_text.ndcg@10",
                "visual_poor": "models.visual.slices.poor_text.ndcg@10",
            },
            ("Offline evaluation",),
            when=(
                (
                    "models.visual.slices.poor_text.ndcg@10",
                    ">",
                    "@models.bm25.slices.poor_text.ndcg@10",
                ),
            ),
        ),
        Decision(
            "data",
            "Normalise queries: typos hurt text retrieval",
            "{typo:.0%} of searches hold a typo; BM25's nDCG@10 falls from {all:.3f} to "
            "{typo_ndcg:.3f} on them",
            {
                "typo": "data.typo_share",
                "all": "models.bm25.offline.ndcg@10",
                "typo_ndcg": "models.bm25.slices.typo.ndcg@10",
            },
            ("Offline evaluation",),
            when=(("models.bm25.slices.typo.ndcg@10", "<", "@models.bm25.offline.ndcg@10"),),
        ),
        Decision(
            "model",
            "Fuse the retrievers' lists, chosen on validation days",
            "served `{chosen}`: validation nDCG@10 {val:.3f} vs {bm25:.3f} for BM25 alone; "
            "test {test:.3f}",
            {
                "chosen": "chosen_model",
                "val": "serving.validation_ndcg@10.<chosen_model>",
                "bm25": "serving.validation_ndcg@10.bm25",
                "test": "models.<chosen_model>.offline.ndcg@10",
            },
            ("Offline evaluation",),
        ),
        Decision(
            "model",
            "Re-rank for duplicates and unsafe videos after fusion",
            "duplicates in the top 10: {dup:.1%} → {dup_final:.1%}; unsafe: {unsafe:.1%} → "
            "{unsafe_final:.1%}",
            {
                "dup": "evaluation.duplicates_in_top10.<chosen_model>",
                "dup_final": "evaluation.duplicates_in_top10.final",
                "unsafe": "evaluation.unsafe_in_top10.<chosen_model>",
                "unsafe_final": "evaluation.unsafe_in_top10.final",
            },
            ("Offline evaluation",),
        ),
        Decision(
            "model",
            "Keep every stage inside the latency budget",
            "p99 {total:.1f} ms end to end (budget {budget:g} ms): retrieval {ret:.1f}, fusion "
            "{fus:.1f}, re-ranking {rr:.2f} ms",
            {
                "total": "serving.latency_ms.total.p99",
                "budget": "serving.budget_ms",
                "ret": "serving.latency_ms.retrieval.p99",
                "fus": "serving.latency_ms.fusion.p99",
                "rr": "serving.latency_ms.rerank.p99",
            },
            ("Serving",),
            when=(("serving.latency_ms.total.p99", "<=", "@serving.budget_ms"),),
        ),
        Decision(
            "model",
            "Index new uploads as they arrive",
            "{n} new videos indexed in {s:.2f} s; {found:.0%} found by their title in the top 20",
            {
                "n": "serving.ingest.videos",
                "s": "serving.ingest.seconds",
                "found": "serving.ingest.found_by_title_top20",
            },
            ("Serving",),
        ),
    ),
)


HARMFUL_CONTENT = SystemPlan(
    questions={
        "requirements": ("Which harms, and what happens to a flagged post: removed, demoted?",),
        "data": ("Where do labels come from: user reports, reviewers, both?",),
    },
    decisions=(
        Decision(
            "requirements",
            "Frame it as multi-label classification judged by PR-AUC: harm is rare",
            "{any:.1%} of posts are harmful; the rarest class, self-harm, {rare:.2%}",
            {"any": "data.any_harm_prevalence", "rare": "data.prevalence.self_harm"},
            ("Data preparation",),
        ),
        Decision(
            "data",
            "Use every modality: text, image and the author",
            "any-harm PR-AUC from one input alone: text {text:.3f}, image {image:.3f}, author "
            "{author:.3f}",
            {
                "text": "models.tfidf_lr.any_harm_pr_auc",
                "image": "models.image_cnn.any_harm_pr_auc",
                "author": "models.author_lr.any_harm_pr_auc",
            },
            ("Offline evaluation",),
        ),
        Decision(
            "model",
            "Fuse the modalities early in one multi-task model, chosen on validation",
            "served `{chosen}`: mean PR-AUC {pr:.3f} vs {rule:.3f} for the keyword rule and "
            "{oracle:.3f} for the oracle",
            {
                "chosen": "chosen_model",
                "pr": "models.<chosen_model>.mean_pr_auc",
                "rule": "models.keyword_rule.mean_pr_auc",
                "oracle": "oracle.mean_pr_auc",
            },
            ("Offline evaluation",),
        ),
        Decision(
            "model",
            "Keep the image encoder inside the budget: it dominates the request",
            "p99 {p99:.0f} ms (budget {budget:g} ms); mean per stage: image {image:.1f}, text "
            "{text:.1f}, model {model:.1f} ms",
            {
                "p99": "serving.latency_ms.p99",
                "budget": "serving.budget_ms",
                "image": "serving.stage_ms_mean.image",
                "text": "serving.stage_ms_mean.text",
                "model": "serving.stage_ms_mean.model",
            },
            ("Serving",),
            when=(
                ("serving.within_budget", "==", True),
                ("serving.stage_ms_mean.image", ">", "@serving.stage_ms_mean.text"),
                ("serving.stage_ms_mean.image", ">", "@serving.stage_ms_mean.model"),
            ),
        ),
        Decision(
            "monitoring",
            "Act by confidence: remove, demote, or send to human review",
            "of {n} served posts: {remove} removed, {demote} demoted, {review} sent to review",
            {
                "n": "serving.requests",
                "remove": "serving.actions.remove",
                "demote": "serving.actions.demote",
                "review": "serving.actions.review",
            },
            ("Serving",),
        ),
    ),
)


VISUAL_SEARCH = SystemPlan(
    questions={
        "requirements": ("How large is the catalogue, and how fast do new images arrive?",),
        "data": ("Which photos count as the same product (labels from clicks, or catalogues)?",),
    },
    decisions=(
        Decision(
            "requirements",
            "Frame it as representation learning plus nearest-neighbour retrieval",
            "{products} training products with {photos} photos each; {index:,} images "
            "indexed, {queries} query photos",
            {
                "products": "data.train_products",
                "photos": "data.photos_per_product",
                "index": "data.index_images",
                "queries": "data.query_images",
            },
            ("Data preparation",),
        ),
        Decision(
            "model",
            "Train the encoder contrastively: pixels and colour histograms do not find the product",
            "mAP {map:.3f} for `{chosen}` vs {hist:.3f} for colour histograms and {untrained:.3f} "
            "for the same CNN untrained",
            {
                "chosen": "chosen_model",
                "map": "models.<chosen_model>.map",
                "hist": "models.color_histogram_pca.map",
                "untrained": "models.untrained_cnn.map",
            },
            ("Offline evaluation",),
            when=(("models.<chosen_model>.map", ">", "@models.color_histogram_pca.map"),),
        ),
        Decision(
            "model",
            "Embedding the query, not searching the index, is the cost to cut",
            "`{index}` over {n:,} images: search p99 {search:.2f} ms, embedding the query "
            "{embed:.1f} ms p99, {total:.1f} ms in all",
            {
                "index": "serving.index",
                "n": "serving.index_size",
                "search": "serving.latency_ms.search.p99",
                "embed": "serving.latency_ms.decode_embed.p99",
                "total": "serving.latency_ms.total.p99",
            },
            ("Serving",),
            when=(("serving.latency_ms.decode_embed.p99", ">", "@serving.latency_ms.search.p99"),),
        ),
        Decision(
            "model",
            "Add new images to the index incrementally instead of rebuilding it",
            "mAP on the new images {inc:.3f} incrementally vs {rebuilt:.3f} rebuilt, at "
            "{ms:.4f} ms per added image",
            {
                "inc": "index.incremental.map_new_incremental",
                "rebuilt": "index.incremental.map_new_rebuilt",
                "ms": "index.incremental.add_ms_per_image",
            },
            ("Indexing",),
        ),
        Decision(
            "data",
            "Remove near-duplicate images with fingerprints before indexing",
            "fingerprints find injected duplicates with precision {p:.2f} and recall {r:.2f} "
            "(embeddings: {pe:.2f} / {re:.2f})",
            {
                "p": "index.near_duplicates.fingerprint.precision",
                "r": "index.near_duplicates.fingerprint.recall",
                "pe": "index.near_duplicates.embedding.precision",
                "re": "index.near_duplicates.embedding.recall",
            },
            ("Indexing",),
        ),
    ),
)
