"""Each system's part of the 45-minute plan: its questions per block and its decisions, keyed by
the system's CLI name. Every path is checked against a real run's ``metrics.json``
(``tests/unit/test_interview.py`` runs the plan on tiny runs' metrics)."""

from __future__ import annotations

from mlsd.interview_content import HARMFUL_CONTENT, STREET_VIEW_BLUR, VIDEO_SEARCH, VISUAL_SEARCH
from mlsd.interview_plan import Decision, SystemPlan
from mlsd.interview_ranking import EVENT_REC, NEWS_FEED, PYMK, SIMILAR_LISTINGS, VIDEO_REC

CHOSEN = "models.<chosen_model>"

AD_CLICK = SystemPlan(
    questions={
        "requirements": (
            "Is the goal clicks or revenue (the auction ranks by P(click) × bid)?",
            "How many candidate ads reach the ranker per request?",
        ),
        "data": ("How much position bias does the logging policy leave in the log?",),
        "model": ("Must the probabilities be calibrated (they set prices)?",),
    },
    decisions=(
        Decision(
            "requirements",
            "Frame it as pointwise binary classification of P(click); judge it by normalised "
            "cross-entropy, not accuracy",
            "the label is rare: {rate:.2%} of {rows:,} logged impressions are clicks, so "
            "always predicting no click is {acc:.1%} accurate and useless",
            {"rate": "data.positive_rate", "rows": "data.rows", "acc": "derived.majority_share"},
            ("Data preparation",),
        ),
        Decision(
            "data",
            "Log the ad's position and learn it as a feature: the log is position-biased",
            "CTR at the top slot {top:.2%} vs {fourth:.2%} at the fourth",
            {"top": "data.ctr_by_position.0", "fourth": "data.ctr_by_position.3"},
            ("Data preparation",),
            when=(("data.ctr_by_position.0", ">", "@data.ctr_by_position.3"),),
        ),
        Decision(
            "data",
            "Downsample negatives for training, then correct the probabilities",
            "keeping {rate:.0%} of negatives raises the training positive rate to {after:.1%}; "
            "the served model's calibration is {before:.2f} before the correction and "
            "{calib:.2f} after",
            {
                "rate": "features.negative_downsampling.rate",
                "after": "features.negative_downsampling.positive_rate_after",
                "before": f"{CHOSEN}.calibration_before_correction",
                "calib": f"{CHOSEN}.calibration",
            },
            ("Feature engineering",),
        ),
        Decision(
            "model",
            "Start from the historical-CTR baseline and add models only while validation NCE "
            "improves (LR, GBDT, DCN)",
            "served `{chosen}`: test NCE {nce:.4f} vs the baseline's {base:.4f} and the "
            "oracle's {oracle:.4f}, {share:.0%} of the achievable gain",
            {
                "chosen": "chosen_model",
                "nce": f"{CHOSEN}.nce",
                "base": "models.<baseline_model>.nce",
                "oracle": "oracle.nce",
                "share": f"{CHOSEN}.share_of_achievable_gain",
            },
            ("Offline evaluation",),
        ),
        Decision(
            "model",
            "Let the latency budget pick the model: the best validation NCE whose p99 fits",
            "`{chosen}` scores 100 candidates in {p99:.2f} ms p99, within the {budget:g} ms budget",
            {
                "chosen": "chosen_model",
                "p99": f"{CHOSEN}.latency_ms.p99",
                "budget": "serving.latency_budget_ms",
            },
            ("Serving",),
            when=((f"{CHOSEN}.meets_budget", "==", True),),
        ),
        Decision(
            "model",
            "No model met the budget on this machine: serve the most accurate and flag it, "
            "then shrink the model or relax the budget",
            "`{chosen}` takes {p99:.2f} ms p99 for 100 candidates against the {budget:g} ms "
            "budget ({because})",
            {
                "chosen": "chosen_model",
                "p99": f"{CHOSEN}.latency_ms.p99",
                "budget": "serving.latency_budget_ms",
                "because": "serving.chosen_because",
            },
            ("Serving",),
            when=((f"{CHOSEN}.meets_budget", "==", False),),
            default=False,
        ),
        Decision(
            "model",
            "Keep the model fresh: update it daily (continual learning)",
            "daily updates lower test NCE by {gain:.4f} on average over the replayed days",
            {"gain": "continual_learning.mean_nce_gain"},
            ("Continual learning",),
            when=(("continual_learning.mean_nce_gain", ">", 0),),
        ),
        Decision(
            "model",
            "Daily updates did not pay here: retrain on a monitoring trigger instead",
            "daily updates changed test NCE by {gain:+.4f} (worse) on average over the "
            "replayed days",
            {"gain": "continual_learning.mean_nce_gain"},
            ("Continual learning",),
            when=(("continual_learning.mean_nce_gain", "<=", 0),),
            default=False,
        ),
        Decision(
            "monitoring",
            "Check the cold-start slice separately: new users and ads have no history",
            "the served model's NCE is {cold:.3f} on {rows:,} cold-start rows vs {warm:.3f} "
            "on the rest",
            {
                "cold": "slices.models.<chosen_model>.cold_start_nce",
                "warm": "slices.models.<chosen_model>.warm_nce",
                "rows": "slices.cold_start_rows",
            },
            ("Offline evaluation",),
            when=(("slices.cold_start_rows", ">", 0),),  # too few rows at tiny scale: no slice
        ),
    ),
)

SYSTEM_PLANS: dict[str, SystemPlan] = {
    "ad-click": AD_CLICK,
    "video-rec": VIDEO_REC,
    "event-rec": EVENT_REC,
    "similar-listings": SIMILAR_LISTINGS,
    "people-you-may-know": PYMK,
    "street-view-blur": STREET_VIEW_BLUR,
    "video-search": VIDEO_SEARCH,
    "news-feed": NEWS_FEED,
    "harmful-content": HARMFUL_CONTENT,
    "visual-search": VISUAL_SEARCH,
}
