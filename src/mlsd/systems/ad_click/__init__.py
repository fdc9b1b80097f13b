"""Ad Click Prediction on Social Platforms (the book's chapter 8).

**Requirements.** Ads are shown in a social feed; the business earns per click. For every feed
request the system scores the candidate ads the targeting stage produced and ranks them by
expected value (click probability × bid), within 10 ms for 100 candidates, for a large and
growing user base. New ads and shifting interests arrive every day, so the model must be kept
fresh (continual learning). Probabilities must be calibrated: they set prices in the auction.

**Framing.** Pointwise learning to rank as binary classification. Input: a user, a context (hour,
device) and an ad. Output: P(click). Label: an impression followed by a click is positive, an
impression without one negative. Offline: normalized cross-entropy (NCE) and log loss, with
ROC-AUC, PR-AUC and calibration. Online: CTR and revenue per 1000 impressions in an A/B test.

The package reads top-down like the chapter (``system`` wires the steps in that order):

* ``world`` (+ ``world_config``, ``world_entities``, ``world_behaviour``): the simulated platform
  and its ground truth; ``world_log``: its impression log as the run's data;
* ``datasets``: Criteo and libFM/libSVM files instead of the world;
* ``features``: the feature pipeline, offline and online; ``features_online``: the online
  store's tables and their batched reads; ``features_streaming``: the same features day by day
  with bounded memory; ``features_split``: the feature step's training data and its split;
* ``model`` (+ ``model_dcn``): the chapter's line-up and the models step;
* ``evaluation`` (offline, next to the oracle), ``evaluation_continual`` (continual learning),
  ``evaluation_online`` (the A/B test);
* ``serving``: the scorer and its artifacts (no HTTP: that is ``mlsd.api.routes.ad_click``);
  ``serving_latency``: the latency budget picks the served model;
* ``monitoring``: drift, alerts and the retrain trigger (step 7);
* ``system``: the typed run state and the steps, top to bottom.
"""

from mlsd.requirements import Framing, Requirements

REQUIREMENTS = Requirements(
    goal="maximise revenue from ad clicks while keeping ads relevant to users",
    latency_budget_ms=10.0,
    latency_budget_for="100 candidate ads, p99, in-process scoring with online features",
    throughput_qps=1000.0,
    freshness="new ads and drifting interests every day: retrain or update daily",
    scale="millions of users, tens of thousands of active ads, ~1-3% click-through rate",
    constraints=(
        "calibrated probabilities (they enter the auction as p × bid)",
        "features point-in-time correct: no leakage from the future",
    ),
)

FRAMING = Framing(
    task="binary classification (pointwise learning to rank)",
    input="user, context (hour, device), candidate ad",
    output="P(click | user, context, ad)",
    label="impression followed by a click = 1, impression without a click = 0",
    offline_metrics=("nce", "logloss", "roc_auc", "pr_auc", "calibration"),
    online_metrics=("ctr", "revenue_per_1000_impressions"),
)
