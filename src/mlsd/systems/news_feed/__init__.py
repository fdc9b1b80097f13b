"""Personalized News Feed (the book's chapter 10).

**Requirements.** A social network shows each user a feed of the unseen posts of their friends,
the pages they follow and their groups. The business wants engagement: clicks, likes, comments,
shares and time spent, and fewer hides and blocks; the feed must be ranked in a few hundred
milliseconds for every visit, and a new post must be rankable as soon as it is published.

**Framing.** Multi-task pointwise learning to rank. Input: a user, the time of the visit and the
retrieved candidate posts. Output: a ranked feed. Labels: for a shown post, each reaction
(click, like, comment, share, hide, block: binary) and dwell time (seconds, regression). One
shared-bottom network predicts every reaction; the ranking score is a weighted engagement
score, positive weights for the reactions the platform wants, negative for hide and block.
Offline: ROC-AUC and PR-AUC per head, dwell-time error, nDCG@10 of the feed against the true
engagement score, next to the oracle. Online: click-through rate, reactions, total time spent,
hides and blocks per user, and the survey's satisfaction, in an A/B test.

The package reads top-down like the chapter (``system`` wires the steps in that order):

* ``world`` (+ ``world_config``): the social network, its posts, the reactions with their true
  probabilities (the oracle), position bias, and the satisfaction survey;
* ``features`` (+ ``features_retrieval``): the chapter's feature groups, point-in-time, and the
  candidate set;
* ``model`` (+ ``model_multitask``): the multi-task network, per-reaction LightGBM models and a
  single "any engagement" classifier;
* ``evaluation`` (offline, next to the oracle, engagement vs satisfaction) and
  ``evaluation_online`` (the A/B test, the weights experiment); ``evaluation_mind`` and
  ``datasets``: the public news-recommendation benchmark's layout;
* ``serving`` (+ ``serving_rerank``, ``serving_latency``): retrieval, features, scoring,
  re-ranking, with per-stage timings (no HTTP: that is ``mlsd.api.routes.news_feed``);
* ``monitoring``: reaction-rate and prediction drift per head, alerts, retrain trigger;
* ``system``: the typed run state and the steps, top to bottom.
"""

from mlsd.requirements import Framing, Requirements

REQUIREMENTS = Requirements(
    goal="maximise engagement (reactions and time spent) without hides, blocks or dissatisfaction",
    latency_budget_ms=200.0,
    latency_budget_for="one feed: retrieval, features and scoring of up to a few hundred posts",
    throughput_qps=500.0,
    freshness="a post is rankable as soon as it is published; reaction counts stream in",
    scale="users with friends, pages and groups, thousands of posts a day, feeds of 10-20 posts",
    constraints=(
        "features point-in-time correct: reactions so far, past reactions with the author",
        "candidates: unseen posts of friends, followed pages and groups (retrieval, not all posts)",
        "the ranking score's weights are a product decision, stated and measured",
        "engagement is not satisfaction: the survey is a guardrail",
    ),
)

FRAMING = Framing(
    task="multi-task pointwise learning to rank (six binary reactions and dwell-time regression)",
    input="user, visit time, retrieved candidate posts",
    output="a ranked feed",
    label="per shown post: click, like, comment, share, hide, block (0/1) and dwell seconds",
    offline_metrics=("roc_auc per head", "pr_auc per head", "dwell mae", "ndcg@10"),
    online_metrics=(
        "ctr",
        "reactions_per_user",
        "time_spent_per_user",
        "hides_per_user",
        "blocks_per_user",
        "survey_satisfaction",
    ),
)
