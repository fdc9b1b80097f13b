"""YouTube Video Search (the book's chapter 4).

**Requirements.** Users type a text query; the platform returns the most relevant videos of a
large, growing catalogue, ranked, within a few hundred milliseconds. Many videos have poor,
missing or misleading titles and descriptions, so the visual content must count as well as
the text. The business wants searches that end in a click and in watch time.

**Framing.** Ranking. Input: a text query. Output: a ranked list of videos. Two halves:
**text search** (an inverted index with BM25, and semantic text retrieval with sentence
embeddings) and **visual search** (a text-video dual encoder trained contrastively on
(query, clicked video) pairs, an ANN index over the video embeddings); their candidates are
**fused** (reciprocal-rank fusion, and a learned LambdaRank fusion) and **re-ranked**
(safety filter, duplicates). Offline: nDCG@10 with graded relevance, MRR, MAP and recall@k
next to the oracle, with slices; online: click-through rate, watch time from search, time to
first click, in an A/B test and by team-draft interleaving.

The package reads top-down like the chapter (``system`` wires the steps in that order):

* ``world`` (+ ``world_config``): the catalogue with latent topics, text and frames, the query
  model, graded relevance (the oracle), clicks with position bias, the logs;
* ``datasets``: the public IR benchmark layout (``--data beir:DIR``);
* ``features``: normalisation and tokenisation, documents, the candidates' features;
* ``model`` (BM25 with bm25s), ``model_dual`` (the dual encoder), ``model_fusion``
  (LambdaRank), ``model_fit`` (every model fitted on the world's training days);
* ``evaluation`` (offline, slices), ``evaluation_online`` (A/B test and interleaving),
  ``evaluation_beir`` (a real collection);
* ``serving`` (the searcher and its artifacts), ``serving_latency`` (the served ranker and
  the per-stage latency);
* ``monitoring``: query drift (new vocabulary), zero-result rate, retrain trigger;
* ``system``: the typed run state and the steps, top to bottom.
"""

from mlsd.requirements import Framing, Requirements

REQUIREMENTS = Requirements(
    goal="searches that end in a click and in watch time, over text and visual content",
    latency_budget_ms=200.0,
    latency_budget_for="one query: encoding, both retrievals, fusion and re-ranking",
    throughput_qps=500.0,
    freshness="new videos are searchable within minutes of upload (indexed without a restart)",
    scale="a catalogue of thousands (demo) to millions of videos; thousands of queries a day",
    constraints=(
        "many videos have poor, missing or misleading text: the visual half must find them",
        "queries have typos and synonyms; tail queries are rare",
        "unsafe videos never shown; re-uploads of one video shown once",
    ),
)

FRAMING = Framing(
    task="ranking: text search + visual search, fused and re-ranked",
    input="a text query",
    output="a ranked list of videos",
    label="graded relevance 0-3 (raters); clicked pairs for the dual encoder",
    offline_metrics=("ndcg@10", "mrr", "map@100", "recall@100"),
    online_metrics=("ctr", "watch_seconds_per_search", "time_to_first_click"),
)
