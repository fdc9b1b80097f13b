"""Harmful Content Detection (the book's chapter 5): multimodal, multi-task classification.

**Requirements.** A social platform must find posts that break its policies (hate, violence,
sexual content, spam and scams, self-harm) among millions of new posts a day, before many people
see them. A post has text, possibly an image, an author and, soon after it goes up, engagement
and user reports. Harm is rare (about 1% of posts), several classes can apply to one post, and
the harm may sit in the text, in the image or only in their combination. Confident predictions
are removed automatically; uncertain ones go to a human review queue of limited daily capacity;
the rest may be demoted.

**Framing.** Multi-label binary classification: one probability per harm class for a post, from
its fused text, image, author and early-engagement features. Offline: PR-AUC, ROC-AUC and
recall at 95% precision per class, next to the world's oracle. Online: prevalence (harmful views
over all views), harmful impressions, proactive rate, user reports, valid appeals, reviewer load.

The package reads top-down like the chapter: ``world`` and ``world_config`` (the platform, its
posts, images and engagement, and the oracle), ``datasets`` (the world's tables, or a labelled
text CSV), ``features`` (text embeddings, images, author and engagement features), ``model``
(the keyword rule, TF-IDF + logistic regression, the line-up), ``model_image`` (the image CNN),
``model_fusion`` (the fusion networks), ``evaluation`` (offline next to the oracle, thresholds)
and ``evaluation_online`` (the enforcement A/B test), ``evaluation_files`` (text CSVs),
``serving`` (the classifier and its artifacts; HTTP is in ``mlsd.api.routes.harmful_content``),
``monitoring`` (new harm vocabulary) and ``system`` (the steps).
"""

from mlsd.requirements import Framing, Requirements

CLASSES = ("hate", "violence", "sexual", "spam", "self_harm")

REQUIREMENTS = Requirements(
    goal="find posts that break the platform's policies before many people see them, "
    "removing what is certain and sending what is uncertain to human review",
    latency_budget_ms=200.0,
    latency_budget_for="one post (text, optional image, author) classified, p99",
    throughput_qps=500.0,
    freshness="a new post is classified when it goes up and again with its first hour of "
    "engagement; new harm vocabulary must reach the model within days",
    scale="tens of thousands of posts (small) to millions a day (large)",
    constraints=(
        "auto-removal only at >= 95% precision per class (chosen on validation days)",
        "human review has a fixed daily capacity; what it cannot take is demoted",
        "labels: a small accurate hand-labelled sample, and late, noisy user reports",
        "harm is multimodal: text, image, or only their combination",
    ),
)

FRAMING = Framing(
    task="multi-label binary classification (one head per harm class), multimodal inputs",
    input="a post: its text, optional image, author and first-hour engagement",
    output="a probability per harm class, and an action: remove / review / demote / allow",
    label="1 for a class if the policy team judges the post violates it (hand-labelled)",
    offline_metrics=("pr_auc", "roc_auc", "recall@precision95", "macro_f1"),
    online_metrics=(
        "prevalence",
        "harmful_impressions",
        "proactive_rate",
        "user_reports",
        "valid_appeals",
        "reviewer_load",
    ),
)
