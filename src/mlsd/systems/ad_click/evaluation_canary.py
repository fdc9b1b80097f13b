"""Ad click prediction, steps 5-6: the canary rollout of the served model in the world.

After the A/B test, the served model replaces production (the baseline, the A/B's control) on
1% → 5% → 25% → 100% of the users (:mod:`mlsd.canary`). Each stage is a fresh batch of feed
requests on the A/B's day; a user on the new model stays on it as the share grows. Each arm
ranks its users' candidates by its own p × bid through the serving path, the world shows the top
slots and draws the clicks. The chapter's guardrails: CTR not down more than 5% against
production; calibration (clicks over the clicks the canary predicted for what it showed) within
[0.67, 1.5]: a model that mis-prices clicks mis-charges advertisers; and the p99 latency of the
canary's serving path, on requests of the budget's shape (100 candidates), within the budget.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from mlsd import experiments as exp
from mlsd.canary import (
    CanaryPlan,
    CanaryResult,
    Guardrail,
    StageArms,
    arms_per_unit,
    in_canary,
    min_units_for,
    run_canary,
)
from mlsd.canary_report import report_canary, small_world_note
from mlsd.report import Blueprint
from mlsd.systems.ad_click import REQUIREMENTS
from mlsd.systems.ad_click.evaluation_online import AB_REQUESTS
from mlsd.systems.ad_click.serving import AdClickScorer
from mlsd.systems.ad_click.serving_latency import N_CANDIDATES, WARMUP, world_requests
from mlsd.systems.ad_click.world import AdClickWorld
from mlsd.training import torch_threads

log = logging.getLogger(__name__)

STAGE_BATCHES = {"tiny": 6, "small": 3, "medium": 2, "large": 2}  # batches of A/B size
CONTROL_REQUESTS = 6_000  # control requests simulated per stage (a hash-sample of its users)
LATENCY_SAMPLE = 30  # requests of the budget's shape timed per stage
CALIBRATION_BOUNDS = (0.25, 4.0)
UNIT = "users (hash of user id)"


def plan_for(n_users: int, latency_bound_ms: float) -> CanaryPlan:
    """The chapter's guardrails, with the minimum sample the scale's population allows and the
    p99 bound the serving step set (the budget, or what it measured when no model met it)."""
    n = min_units_for(n_users)
    return CanaryPlan(
        (
            Guardrail("CTR", "clicks", denominator="impressions", tolerance=0.05, min_units=n),
            Guardrail(
                "calibration (clicks / predicted)",
                "clicks",
                denominator="predicted",
                bounds=CALIBRATION_BOUNDS,
                min_units=n,
            ),
            Guardrail(
                "p99 latency (ms)",
                "latency_ms",
                higher_is_better=False,
                quantile=0.99,
                bounds=(-np.inf, latency_bound_ms),
                min_units=LATENCY_SAMPLE - WARMUP,
            ),
        )
    )


def _latency_ms(scorer: AdClickScorer, world: AdClickWorld, seed: int) -> np.ndarray:
    """Per-request latency of ``scorer``'s serving path on requests of the budget's shape."""
    samples = []
    with torch_threads(1):
        for j, req in enumerate(world_requests(world, LATENCY_SAMPLE, seed)):
            t0 = time.perf_counter()
            scorer.score(*req)
            if j >= WARMUP:
                samples.append((time.perf_counter() - t0) * 1e3)
    return np.asarray(samples)


def _batch(
    world: AdClickWorld,
    control: AdClickScorer,
    treatment: AdClickScorer,
    fraction: float,
    *,
    batch: int,
    n_requests: int,
    control_share: float,
    salt: str,
) -> pd.DataFrame:
    """One batch of feed requests: the canary's users and a hash-sample of the control's
    (``control_share`` of them: a random subset of an arm's users is a sample of that arm),
    each ranked by its arm's p × bid and shown; the shown impressions with the arm's ``p``."""
    cand = world.sample_requests(int(world.n_days), n_requests, batch=batch)
    users = cand["user_id"].to_numpy()
    treat = in_canary(users, fraction, salt)
    keep = treat | (exp.hash_unit(users, f"{salt}/control-sample") < control_share)
    cand, treat = cand[keep].reset_index(drop=True), treat[keep]
    p = np.zeros(len(cand))
    for arm, scorer in ((treat, treatment), (~treat, control)):
        if arm.any():
            p[arm] = scorer.score_frame(cand[arm])
    bids = cand["ad_id"].map(world.ads.set_index("ad_id")["bid"]).to_numpy()
    shown = world.show(cand, p * bids, batch=batch)
    scored = pd.DataFrame({"request_id": cand["request_id"], "ad_id": cand["ad_id"], "p": p})
    return shown.merge(scored, on=["request_id", "ad_id"], how="left", validate="1:1")


def _stage(
    world: AdClickWorld,
    control: AdClickScorer,
    treatment: AdClickScorer,
    fraction: float,
    stage: int,
    *,
    scale: str,
    seed: int,
    timed: bool,
) -> StageArms:
    """Stage ``stage``: :data:`STAGE_BATCHES` batches of the A/B's size on the A/B's day (the
    A/B used batch 0), each with its own fatigue, as the hours of a stage would be."""
    salt, k = f"ad-click/canary-{seed}", STAGE_BATCHES[scale]
    n = AB_REQUESTS[scale]
    control_share = min(1.0, CONTROL_REQUESTS / (k * n * max(1e-9, 1.0 - fraction)))
    shown = pd.concat(
        [
            _batch(
                world,
                control,
                treatment,
                fraction,
                batch=1 + stage * k + b,
                n_requests=n,
                control_share=control_share,
                salt=salt,
            )
            for b in range(k)
        ],
        ignore_index=True,
    )
    users = shown["user_id"].to_numpy()
    values = {
        "clicks": shown["click"].to_numpy(np.float64),
        "impressions": np.ones(len(shown)),
        "predicted": shown["p"].to_numpy(np.float64),
    }
    arms = arms_per_unit(users, in_canary(users, fraction, salt), values)
    canary = dict(arms["treatment"])
    if timed:
        canary["latency_ms"] = _latency_ms(treatment, world, seed)
    return {"control": arms["control"], "treatment": canary}


def compute_canary(
    world: AdClickWorld,
    control: AdClickScorer,
    treatment: AdClickScorer,
    *,
    scale: str,
    seed: int,
    plan: CanaryPlan,
) -> CanaryResult:
    """Roll ``treatment`` out against ``control`` (production) stage by stage under ``plan``
    (:func:`plan_for`; latency is timed only when a guardrail reads it)."""
    timed = any(g.metric == "latency_ms" for g in plan.guardrails)
    result = run_canary(
        plan,
        lambda fraction, i: _stage(
            world, control, treatment, fraction, i, scale=scale, seed=seed, timed=timed
        ),
        control=control.model_name,
        treatment=treatment.model_name,
        unit=UNIT,
    )
    log.info("canary: %s (%s)", result.outcome, result.reason)
    return result


def report_ad_click_canary(bp: Blueprint, result: CanaryResult, scale: str) -> None:
    latency = [g for g in result.plan.guardrails if g.metric == "latency_ms"]
    budget = REQUIREMENTS.latency_budget_ms
    timed = (
        f"the p99 latency of its serving path is timed on {LATENCY_SAMPLE - WARMUP} requests of "
        f"{N_CANDIDATES} candidates per stage"
        + (
            f", against the {budget:g} ms budget."
            if latency and latency[0].bounds and latency[0].bounds[1] == budget
            else ", against the slowest round's p99 the serving step measured (+20%), since no "
            f"model met the {budget:g} ms budget on this machine (a shared machine's load moves "
            "this figure: a latency rollback here can be the machine's, not the model's)."
        )
        if latency
        else "latency is not a guardrail here."
    )
    report_canary(
        bp,
        result,
        f"Each stage is {STAGE_BATCHES[scale]} fresh batches of {AB_REQUESTS[scale]:,} feed "
        "requests on the A/B's day (each with its own ad fatigue, as the hours of a stage): the "
        f"canary's users and a hash-sample of about {CONTROL_REQUESTS:,} control requests; each "
        "arm ranks by its own p × bid. CTR and calibration are ratios over users (delta "
        "method). Calibration is the canary's clicks over the clicks it predicted for the ads "
        f"it showed, within [{CALIBRATION_BOUNDS[0]:g}, {CALIBRATION_BOUNDS[1]:g}]: ranking "
        "shows the ads each model rates highest, so on what it shows every model over-predicts "
        "(production's own value is in the control column); a model that mis-prices clicks by "
        f"more than 4× mis-charges advertisers. And {timed}" + small_world_note(result),
        "canary_traffic",
    )
