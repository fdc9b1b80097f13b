"""Similar Listings on Vacation Rental Platforms (the book's chapter 9).

**Requirements.** While a guest browses listings in one city, show a carousel of listings
similar to the one they are looking at, so that they find the place they book sooner. Similar
means what guests treat as interchangeable: the same area, the same kind of place and price,
the same style, learned from what users click together. New listings appear every day and
must get recommendations (and be recommended) before anyone has clicked them.

**Framing.** Representation learning from sessions: every listing gets an embedding trained
with skip-gram and negative sampling over search sessions (listings clicked close together in
one session are similar), with the chapter's two refinements: the eventually-booked listing as
a global context of every click of a booking session, and negatives drawn from the same region
(hard negatives). Similar listings are the nearest neighbours of a listing's embedding within
its region, by the model's own input-output score (which keeps how likely a listing is to be
clicked and booked; the cosine of the vectors forgets it). New listings get the mean embedding
of their nearest existing listings by region, type and price (cold start). Offline: the average
rank of the eventually-booked listing among the similar listings of the session's first clicks,
hit rate, MRR and nDCG of the next click. Online: carousel click-through rate and session book
rate in an A/B test.

The package reads top-down like the chapter: ``world`` (regions, listings, users, search
sessions, the true similarity), ``datasets`` (a session click log as CSV), ``features`` (the
training pairs of the skip-gram), ``model_similarity`` (what every model answers, ranking
within a region), ``model_skipgram`` (the chapter's model and the cold start), ``model`` (the
baselines and the contract), ``model_lineup`` (the line-up fitted), ``model_tuning`` (the
settings, chosen on validation days), ``evaluation`` / ``evaluation_files`` /
``evaluation_online`` (offline metrics next to the oracle; every click of a log's test
sessions; the A/B test), ``serving`` / ``serving_availability`` / ``serving_latency`` (the
scorer and its artifacts; the calendar, a listing not bookable for the stay is never served;
latency; HTTP is in ``mlsd.api.routes.similar_listings``), ``monitoring`` /
``monitoring_retrain`` (embedding drift; the daily retrain against a model trained once) and
``system`` / ``system_summary`` (the steps; the summary).
"""

from mlsd.requirements import Framing, Requirements

REQUIREMENTS = Requirements(
    goal="show listings similar to the one a guest is viewing, so more sessions end in a booking",
    latency_budget_ms=50.0,
    latency_budget_for="one carousel: look up the listing, nearest neighbours in its region, p99",
    throughput_qps=1000.0,
    freshness="embeddings retrained daily; a new listing is served from its first day",
    scale="millions of listings in thousands of regions; tens of millions of clicks a day",
    constraints=(
        "similar listings come from the same region as the viewed listing",
        "new listings without clicks get an embedding (cold start)",
        "the index is swapped atomically after each retrain",
    ),
)

FRAMING = Framing(
    task="session-based representation learning + nearest-neighbour retrieval per region",
    input="a listing id (and optionally the session's clicked listings and the user's filters)",
    output="the k listings of the same region nearest to it in embedding space",
    label="listings clicked within a window of one session are positive pairs; the booked "
    "listing is a positive of every click of its session; other listings (of the same region "
    "for hard negatives) are negatives",
    offline_metrics=("booked_rank", "booked_hr@k", "next_click_hr@k", "mrr@k", "ndcg@k"),
    online_metrics=("carousel_ctr", "session_book_rate"),
)
