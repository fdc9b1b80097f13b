"""Event Recommendation System (the book's chapter 7).

**Requirements.** A platform lists local events (concerts, meetups, classes). Each user who opens
the app gets a ranked list of upcoming events near them; the business wants registrations (and
the ticket revenue of paid events). Every event is new and short-lived: created, open for
registration for a few days, then over, so no event has a history to learn an id from: the
permanent cold start of the chapter. Ranking must use what is known about the pair: location,
time, the social graph, the user's past registrations and the event's attributes.

**Framing.** Learning to rank. Input: a user, the time of the request and the upcoming events
that pass event filtering (radius, time window, eligibility). Output: a ranked list. Label: an
event shown to the user and registered for is relevant (1), shown and not registered is not (0).
Pointwise (P(register)) and listwise (LambdaRank) models side by side. Offline: nDCG@10, MAP,
MRR, precision@k and recall@k per user on later days, next to the world's oracle. Online:
click-through rate, registrations per user, bookmark rate and revenue in an A/B test.

The package reads top-down like the chapter (``system`` wires the steps in that order):

* ``world`` (+ ``world_state``): the simulated city, its users, friends, hosts and events, the
  registrations with their true probabilities (the oracle); ``world_state``: the platform's
  records as of a time (who registered, who was invited), from the logs only;
* ``features``: the chapter's feature groups, point-in-time, and event filtering;
* ``model``: popular-nearby, logistic regression, an MLP, LightGBM pointwise and LambdaRank;
  ``model_selection``: the split by time (training / validation / test days), every
  hyper-parameter, tree count and the served model chosen on the validation days;
* ``evaluation`` (offline on the test days next to the oracle, the filter's recall cost, the
  ablation on the validation days), ``evaluation_metrics`` (per-session ranking metrics),
  ``evaluation_online`` (the A/B test and team-draft interleaving in the world),
  ``evaluation_continual`` (daily retraining), ``evaluation_challenge`` (``--data eventrec:``);
* ``datasets`` (the challenge's files, checked) and ``datasets_features`` (their rows'
  point-in-time features);
* ``serving``: the ranker and its artifacts (no HTTP: that is ``mlsd.api.routes.event_rec``);
* ``monitoring``: feature and prediction drift as the seasons turn, alerts, retrain trigger;
* ``system``: the typed run state and the steps, top to bottom.
"""

from mlsd.requirements import Framing, Requirements

REQUIREMENTS = Requirements(
    goal="maximise event registrations (and ticket revenue) from the recommended list",
    latency_budget_ms=200.0,
    latency_budget_for="one user's list: filtering, online features and ranking of ~100 events",
    throughput_qps=200.0,
    freshness="events are new every hour and live a few days: features from a stream, no ids",
    scale="a city of users with friends, hundreds of upcoming events at any time",
    constraints=(
        "permanent cold start: every event is new, so models use no event ids",
        "features point-in-time correct: registrations so far, friends registered before t",
        "only events near the user and soon enough are candidates (event filtering)",
    ),
)

FRAMING = Framing(
    task="learning to rank (pointwise P(register) and listwise LambdaRank)",
    input="user, request time, upcoming events that pass event filtering",
    output="a ranked list of events",
    label="shown and registered = 1, shown and not registered = 0",
    offline_metrics=("ndcg@10", "map@10", "mrr", "precision@k", "recall@k"),
    online_metrics=("ctr", "registrations_per_user", "bookmark_rate", "revenue_per_user"),
)
