"""Step 5, online: the enforcement loop over the days after launch (the test days and the drift
days after them), as an A/B test of two policies.

Authors are split by hash (:func:`mlsd.experiments.assign_arms`); control enforces with
TF-IDF + logistic regression, treatment with the served model, each with its own per-class
thresholds chosen on the validation days. At the first hour a post is **removed** (a class at
or above its remove threshold), queued for **review** (review band), **demoted** (future views x
:data:`DEMOTE_FACTOR`) or allowed. Reviewers (accurate) take each day's queue best-score first
up to a capacity of :data:`REVIEW_SHARE` of the arm's posts; what they cannot take is demoted.
A post still up once users have reported it :data:`REACTIVE_REPORTS` times goes to reactive
review (capacity permitting) and is removed :data:`REACTIVE_DELAY_H` hours later if harmful.
Views arrive as ``V (1 - exp(-h / tau))``; expected reports as the class's rate per view.

Metrics (per author, with the delta method): **prevalence** (harmful views / all views, the
primary; CUPED-adjusted by :func:`mlsd.cuped.compare_ratios_cuped` with the harmful share of the
first hour's views, logged before either arm acts, as the covariate), **harmful impressions**
per post, **proactive rate** (harmful posts removed before their first report, over harmful posts
removed), **user reports** per post (and per class), **valid appeals** (a wrongly removed post's
author appeals with probability :data:`APPEAL_P` and wins) per post, and **reviewer load**
(reviews per day).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlsd.comparisons import (
    MetricComparison,
    compare_proportions,
    compare_ratios,
    minimum_detectable_effect,
)
from mlsd.cuped import compare_ratios_cuped
from mlsd.experiments import ABResult, aggregate_per_unit, assign_arms, srm_check
from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.systems.harmful_content import CLASSES
from mlsd.systems.harmful_content.evaluation import Thresholds, choose_thresholds
from mlsd.systems.harmful_content.world import DECISION_H, TAU_H, HarmWorld

DEMOTE_FACTOR = 0.3
REVIEW_SHARE = 0.01
REVIEW_DELAY_H = 4.0
REACTIVE_REPORTS = 3.0
REACTIVE_DELAY_H = 12.0
HORIZON_H = 168.0
APPEAL_P = 0.5
POWER = 0.8


def views_until(V: np.ndarray, h: np.ndarray, demoted: np.ndarray) -> np.ndarray:
    """Expected views by hour ``h`` (demotion from the decision hour on)."""
    full = V * (1 - np.exp(-h / TAU_H))
    at = V * (1 - np.exp(-DECISION_H / TAU_H))
    after = np.maximum(full - at, 0)
    return np.where(h <= DECISION_H, full, at + np.where(demoted, DEMOTE_FACTOR, 1.0) * after)


def hour_of_reports(V: np.ndarray, rate: np.ndarray, k: float, demoted: np.ndarray) -> np.ndarray:
    """The hour the expected reports reach ``k`` (inf if never within the horizon); bisection,
    vectorised over posts."""
    horizon = np.full(len(V), HORIZON_H)
    reach = rate * views_until(V, horizon, demoted) >= k
    lo, hi = np.zeros(len(V)), horizon
    for _ in range(30):
        mid = (lo + hi) / 2
        got = rate * views_until(V, mid, demoted) >= k
        lo, hi = np.where(got, lo, mid), np.where(got, mid, hi)
    return np.where(reach, hi, np.inf)


@dataclass(frozen=True)
class Outcome:
    """Per post of one arm: when it came down, how many views and reports it got."""

    removed_h: np.ndarray  # inf: never
    proactive: np.ndarray  # removed before its first report
    views: np.ndarray
    reports: np.ndarray
    reviews: int
    auto_removed: np.ndarray
    actions: dict[str, int]


def enforce(
    V: np.ndarray,
    rate: np.ndarray,
    harmful: np.ndarray,
    day: np.ndarray,
    P: np.ndarray,
    th: Thresholds,
) -> Outcome:
    n = len(V)
    remove = np.asarray((th.remove[None, :] <= P).any(axis=1), bool)
    review = np.asarray(~remove & (th.review[None, :] <= P).any(axis=1), bool)
    demote = np.asarray(~remove & ~review & (th.demote[None, :] <= P).any(axis=1), bool)
    removed_h = np.where(remove, DECISION_H, np.inf)
    priority = P.max(axis=1)
    capacity_left: dict[int, int] = {}
    reviews = 0
    for d in np.unique(day):
        cap = math.ceil(REVIEW_SHARE * int((day == d).sum()))
        queue = np.flatnonzero(review & (day == d))
        queue = queue[np.argsort(-priority[queue], kind="stable")]
        taken, rest = queue[:cap], queue[cap:]
        reviews += len(taken)
        removed_h[taken[harmful[taken]]] = DECISION_H + REVIEW_DELAY_H
        demote[rest] = True
        capacity_left[int(d)] = cap - len(taken)
    up = ~np.isfinite(removed_h)
    h_react = np.full(n, np.inf)
    h_react[up] = hour_of_reports(V[up], rate[up], REACTIVE_REPORTS, demote[up])
    for i in np.argsort(h_react):
        if not np.isfinite(h_react[i]):
            break
        d = int(day[i])
        if capacity_left.get(d, 0) <= 0:
            continue
        capacity_left[d] -= 1
        reviews += 1
        if harmful[i]:
            removed_h[i] = min(h_react[i] + REACTIVE_DELAY_H, HORIZON_H)
    first_report = hour_of_reports(V, rate, 1.0, demote)
    end = np.minimum(removed_h, HORIZON_H)
    views = views_until(V, end, demote)
    reports = rate * views
    actions = {
        "remove": int(remove.sum()),
        "review": int(review.sum()),
        "demote": int(demote.sum()),
        "allow": int((~remove & ~review & ~demote).sum()),
    }
    return Outcome(
        removed_h,
        np.isfinite(removed_h) & (removed_h < first_report),
        views,
        reports,
        reviews,
        remove,
        actions,
    )


@dataclass(frozen=True)
class OnlineTest:
    ab: ABResult
    per_class_reports: dict[str, dict[str, float]]
    days: int
    power: dict[str, float] = field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        return {
            "online": {
                **self.ab.to_dict(),
                "reports_per_class": self.per_class_reports,
                "days": self.days,
                "power": self.power,
            }
        }


def power_of(test: MetricComparison, days: int, power: float = POWER) -> dict[str, float]:
    """The primary metric's minimum detectable effect at ``power`` (relative to control) and the
    days of traffic the observed effect would need to be detected with that power."""
    mde = minimum_detectable_effect(test, power)
    rel = mde / abs(test.control) if test.control else math.nan
    need = days * (mde / abs(test.diff)) ** 2 if test.diff else math.inf
    return {
        "power": power,
        "mde_relative": rel,
        "days": float(days),
        "days_needed_for_observed_effect": need,
    }


def compute_online(
    world: HarmWorld,
    rows: np.ndarray,
    scores: dict[str, np.ndarray],
    val: tuple[np.ndarray, dict[str, np.ndarray]],
    chosen: str,
    baseline: str,
    th_chosen: Thresholds,
    seed: int,
) -> OnlineTest:
    posts = world.posts.iloc[rows]
    authors = posts["author_id"].to_numpy()
    treat = assign_arms(authors, f"harmful-content/enforcement/{seed}")
    th = {"control": choose_thresholds(val[0], val[1][baseline], CLASSES), "treatment": th_chosen}
    policy = {"control": baseline, "treatment": chosen}
    y = world.labels(rows)
    harmful = np.asarray(y.any(axis=1), bool)
    V = posts["views_total"].to_numpy()
    views_1h = posts["views_1h"].to_numpy(np.float64)  # logged before any decision
    rate = posts["report_rate"].to_numpy()
    day = posts["day"].to_numpy()
    reason = posts["report_reason"].to_numpy()
    appeal = rng(seed, "harmful-content/appeals").random(len(rows)) < APPEAL_P
    per_unit: dict[str, dict[str, np.ndarray]] = {}
    arms: dict[str, dict[str, Any]] = {}
    per_class: dict[str, dict[str, float]] = {}
    counts: dict[str, tuple[int, int]] = {}
    for arm, mask in (("control", ~treat), ("treatment", treat)):
        idx = np.flatnonzero(mask)
        out = enforce(V[idx], rate[idx], harmful[idx], day[idx], scores[policy[arm]][idx], th[arm])
        h = harmful[idx]
        valid = out.auto_removed & ~h & appeal[idx]
        a = authors[idx]
        values = {
            "harmful_views": out.views * h,
            "views": out.views,
            "posts": np.ones(len(idx)),
            "reports": out.reports,
            "valid_appeals": valid.astype(float),
            # CUPED's covariate: the harmful share of the first hour's views, before either
            # arm's classifier acted (the same labels as the metric)
            "harmful_views_1h": views_1h[idx] * h,
            "views_1h": views_1h[idx],
        }
        per_unit[arm] = {k: aggregate_per_unit(a, v)[1] for k, v in values.items()}
        removed_harm = np.isfinite(out.removed_h) & h
        counts[arm] = (int((out.proactive & h).sum()), int(removed_harm.sum()))
        n_days = max(len(np.unique(day[idx])), 1)
        arms[arm] = {
            "policy": policy[arm],
            "units": len(np.unique(a)),
            "posts": len(idx),
            "prevalence": float(values["harmful_views"].sum() / max(values["views"].sum(), 1e-9)),
            "harmful_impressions": float(values["harmful_views"].sum()),
            "proactive_rate": counts[arm][0] / max(counts[arm][1], 1),
            "harmful_posts": int(h.sum()),
            "harmful_removed": counts[arm][1],
            "valid_appeals": int(valid.sum()),
            "reviews_per_day": out.reviews / n_days,
            "actions": out.actions,
        }
        per_class[arm] = {
            c: float(out.reports[reason[idx] == k].sum()) for k, c in enumerate(CLASSES)
        }
    c, t = per_unit["control"], per_unit["treatment"]
    cuped = compare_ratios_cuped(
        (c["harmful_views"], c["views"]),
        (t["harmful_views"], t["views"]),
        (c["harmful_views_1h"], c["views_1h"]),
        (t["harmful_views_1h"], t["views_1h"]),
        metric="prevalence",
        higher_is_better=False,
    )
    plain = compare_ratios(
        c["harmful_views"],
        c["views"],
        t["harmful_views"],
        t["views"],
        metric="prevalence_unadjusted",
        higher_is_better=False,
    )
    tests = {
        "prevalence": cuped.comparison,
        "prevalence_unadjusted": plain,
        "harmful_impressions": compare_ratios(
            c["harmful_views"],
            c["posts"],
            t["harmful_views"],
            t["posts"],
            metric="harmful_impressions_per_post",
            higher_is_better=False,
        ),
        "proactive_rate": compare_proportions(
            counts["control"][0],
            max(counts["control"][1], 1),
            counts["treatment"][0],
            max(counts["treatment"][1], 1),
            metric="proactive_rate",
        ),
        "user_reports": compare_ratios(
            c["reports"],
            c["posts"],
            t["reports"],
            t["posts"],
            metric="user_reports_per_post",
            higher_is_better=False,
        ),
        "valid_appeals": compare_ratios(
            c["valid_appeals"],
            c["posts"],
            t["valid_appeals"],
            t["posts"],
            metric="valid_appeals_per_post",
            higher_is_better=False,
        ),
    }
    srm = srm_check(arms["control"]["units"], arms["treatment"]["units"])
    ab = ABResult.decided(
        unit="author",
        arms=arms,
        tests=tests,
        primary="prevalence",
        guardrails=("valid_appeals",),
        srm=srm,
    )
    n_days = len(np.unique(day))
    power = power_of(cuped.comparison, n_days)
    power["mde_relative_unadjusted"] = power_of(plain, n_days)["mde_relative"]
    power["cuped_variance_ratio"] = cuped.variance_ratio
    return OnlineTest(ab, per_class, n_days, power)


def report_online(bp: Blueprint, res: OnlineTest) -> None:
    ab = res.ab
    bp.text(
        f"The enforcement loop over the {res.days} days after launch (test and drift days), "
        "authors split by hash: control "
        f"enforces with **{ab.arms['control']['policy']}**, treatment with "
        f"**{ab.arms['treatment']['policy']}**, each with its own per-class thresholds from the "
        f"validation days, the same review capacity ({REVIEW_SHARE:.0%} of the arm's posts a "
        f"day) and the same reactive path ({REACTIVE_REPORTS:.0f} reports -> review). "
        "Primary metric: prevalence (harmful views / all views), lower is better; guardrail: "
        "valid appeals."
    )
    cols = [
        "policy",
        "units",
        "posts",
        "prevalence",
        "harmful_impressions",
        "proactive_rate",
        "harmful_removed",
        "valid_appeals",
        "reviews_per_day",
    ]
    bp.table(["arm", *cols], ab.arm_rows(cols))
    bp.table(list(ab.TEST_HEADER), ab.test_rows())
    bp.table(
        ["arm", *CLASSES], [[a, *(v[c] for c in CLASSES)] for a, v in res.per_class_reports.items()]
    )
    pw = res.power
    if pw:
        bp.text(
            f"Power: over {pw['days']:.0f} days this design detects a change of prevalence of "
            f"{pw['mde_relative']:.0%} (relative) with {pw['power']:.0%} power; the observed "
            f"change would need {pw['days_needed_for_observed_effect']:.1f} days. The primary "
            "test is CUPED-adjusted (Deng et al. 2013): its covariate is each author's harmful "
            "share of the first hour's views, logged before either arm's classifier acted; it "
            f"leaves {pw['cuped_variance_ratio']:.0%} of the variance, so the minimum "
            f"detectable effect falls from {pw['mde_relative_unadjusted']:.0%} (the plain "
            "delta-method test, `prevalence_unadjusted`) to "
            f"{pw['mde_relative']:.0%}."
        )
    bp.text(ab.verdict())
