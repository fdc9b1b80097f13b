"""Visual Search System (the book's chapter 2): "find images like this one".

**Requirements.** Users of a Pinterest-like platform upload or crop a photo and get back images
of the same product from a catalogue of millions, ranked by visual similarity, within about
200 ms. New images are added to the catalogue continuously and must become searchable without
rebuilding the whole index; near-duplicates should not crowd the results.

**Framing.** Representation learning: an image encoder maps an image to an embedding so that
photos of the same product lie close together (contrastive training, InfoNCE with in-batch
negatives, positive pairs are two photos of one product). Search is a nearest-neighbour query
over the catalogue's embeddings (exact FAISS, then an approximate index). Offline: MRR,
recall@k, precision@k, mAP and nDCG (same product relevant, same category partially relevant).
Online: click-through rate of the results and time to the first click, in an A/B test.

The package reads top-down like the chapter: ``world`` (the procedural product catalogue and
its photos), ``datasets`` (image folders and IDX files) and ``datasets_split`` (the run's
training / catalogue / query split), ``features`` (image preprocessing and near-duplicate
fingerprints), ``model`` and ``model_contrastive`` (the encoders; the contrastive CNN and its
training), ``evaluation``, ``evaluation_size`` and ``evaluation_online`` (offline metrics, the
embedding-size trade-off, the A/B test), ``serving`` (the searcher and its artifacts; HTTP is in
``mlsd.api.routes.visual_search``), ``serving_catalogue`` (batch embedding in bounded memory),
``serving_index`` (exact vs approximate search, incremental adds, near-duplicates),
``serving_latency`` (the served path and its latency), ``serving_ingest`` (the indexing
pipeline: a folder of images into a run's index), ``commands`` (``mlsd index-images``) and
``system`` (the steps). The chapter has no monitoring section, so there is no ``monitoring``.
"""

from mlsd.requirements import Framing, Requirements

REQUIREMENTS = Requirements(
    goal="show images visually similar to the query image, the same product first",
    latency_budget_ms=200.0,
    latency_budget_for="one uploaded image: decode, embed and search the whole catalogue, p99",
    throughput_qps=100.0,
    freshness="new catalogue images searchable within minutes (incremental indexing)",
    scale="millions of catalogue images; queries are user photos under arbitrary conditions",
    constraints=(
        "embed in batches with bounded memory (the catalogue does not fit one batch)",
        "near-duplicate images removed so they do not crowd the results",
        "no image is both trained on and scored",
    ),
)

FRAMING = Framing(
    task="representation learning + nearest-neighbour retrieval (ranking by cosine similarity)",
    input="a query image (PNG or JPEG)",
    output="the k catalogue images nearest to it in embedding space, with scores",
    label="two photos of the same product are a positive pair; other products in the batch are "
    "negatives (InfoNCE); clicks on results are the online signal",
    offline_metrics=("mrr", "recall@k", "precision@k", "map@k", "ndcg@k"),
    online_metrics=("result_ctr", "time_to_first_click"),
)
