"""People You May Know (the book's chapter 11): link prediction on a growing social graph.

**Requirements.** A social network recommends to each user a short list of people they are
likely to know and befriend. The graph grows every day (new users, new friendships); the list
may be a day old for established users, but a brand-new user needs suggestions at once. The goal
is more accepted friend requests (more connections made), not just more requests sent.

**Framing.** Link prediction as pairwise ranking: for a user ``u`` and a candidate ``v`` (from
the friends-of-friends candidate generator plus people from the same school, employer or city),
predict whether ``u`` and ``v`` become friends in the next days. Training pairs come from a time
split: features from the graph as of day ``t``, labels = edges formed in ``(t, t + Δ]``.
Offline: recall@k, precision@k, mAP and nDCG per user next to the world's oracle, ROC-AUC and
PR-AUC of the pair classifiers. Online: friend requests sent and accepted per user.

The package reads top-down like the chapter: ``world`` (the growing social network and its
oracle), ``datasets`` (edge lists, ``--data edgelist:PATH``), ``features`` (the point-in-time
graph snapshot, candidate generation and pair features) and ``features_split`` (the time split,
or the random hold-out of a graph without time), ``model`` (the baselines, logistic regression,
LightGBM), ``model_gnn`` (GraphSAGE) and ``model_node2vec`` (skip-gram embeddings, Hadamard),
``evaluation`` (offline by time, next to the oracle; the model chosen on validation) and
``evaluation_online`` (the A/B test in the world), ``serving`` (the batch job's ranked lists
and the graph as artifacts, the scorer with its online path for new users; HTTP is in
``mlsd.api.routes.people_you_may_know``) and ``serving_latency`` (batch against online),
``monitoring`` (degree and feature drift) and ``system`` (the steps).
"""

from mlsd.requirements import Framing, Requirements

REQUIREMENTS = Requirements(
    goal="suggest people each user is likely to befriend, so that more friend requests are "
    "sent and accepted",
    latency_budget_ms=50.0,
    latency_budget_for="one user's precomputed list read from the store, p99",
    throughput_qps=1000.0,
    freshness="lists recomputed daily in batch; a new user's list computed online",
    scale="tens of thousands of users (small) to millions (large), growing every day",
    constraints=(
        "no all-pairs scoring: candidates from friends of friends and shared attributes",
        "features use only edges formed strictly before the prediction day",
        "existing friends and the user themself are never suggested",
    ),
)

FRAMING = Framing(
    task="link prediction: pairwise binary classification of (user, candidate), ranked per user",
    input="a user id; the social graph and user attributes as of the prediction day",
    output="the k candidates most likely to become the user's friends, with scores",
    label="1 if the pair became friends in the Δ days after the prediction day, else 0",
    offline_metrics=("recall@k", "precision@k", "map@k", "ndcg@k", "roc_auc", "pr_auc"),
    online_metrics=("requests_sent_per_user", "requests_accepted_per_user"),
)
