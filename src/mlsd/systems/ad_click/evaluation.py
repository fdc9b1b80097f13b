"""Step 5 of the chapter, evaluation: offline next to the oracle, continual learning, and the
online A/B test in the world."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from mlsd import experiments as exp
from mlsd import metrics as mm
from mlsd.runner import RunContext

log = logging.getLogger(__name__)

ORACLE = "oracle"
AB_REQUESTS = {"tiny": 1_500, "small": 20_000, "medium": 40_000, "large": 60_000}


def _figure(width: float = 6.4, height: float = 4.0) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def predict(model: Any, X: pd.DataFrame) -> np.ndarray:
    """The calibrated click probability of every row."""
    return np.asarray(model.predict_proba(X)[:, 1], dtype=np.float64)


# ---- offline ----------------------------------------------------------------------------------
def step_offline_evaluation(ctx: RunContext) -> None:
    X: pd.DataFrame = ctx.state["X"]
    y: np.ndarray = ctx.state["y"]
    split = ctx.state["split"]
    te, va = split["test"], split["validation"]
    X_te, y_te, X_va, y_va = X.iloc[te], y[te], X.iloc[va], y[va]
    models: dict[str, Any] = ctx.state["models"]
    base = ctx.metrics["baseline_model"]

    preds = {name: predict(m, X_te) for name, m in models.items()}
    val_preds = {name: predict(m, X_va) for name, m in models.items()}
    val_nce = {name: mm.normalized_cross_entropy(y_va, p) for name, p in val_preds.items()}
    oracle: dict[str, float] | None = None
    if "meta" in ctx.state:  # the world's true click probabilities, aligned with X
        all_p_true = ctx.state["meta"]["p_true"].to_numpy()
        p_true = all_p_true[te]
        om = mm.classification_metrics(y_te, p_true)
        oracle = {k: om[k] for k in ("logloss", "nce", "roc_auc", "pr_auc", "calibration")}
        oracle["validation_calibration"] = mm.calibration_ratio(y_va, all_p_true[va])
        ctx.metrics["oracle"] = oracle
    else:
        ctx.metrics["oracle"] = None

    rows = []
    for name, p in preds.items():
        m = mm.classification_metrics(y_te, p)
        m["validation_nce"] = val_nce[name]
        m["validation_calibration"] = mm.calibration_ratio(y_va, val_preds[name])
        model = models[name]
        if hasattr(model, "predict_proba_uncorrected"):
            m["calibration_before_correction"] = mm.calibration_ratio(
                y_te, np.asarray(model.predict_proba_uncorrected(X_te))[:, 1]
            )
        ctx.metrics["models"][name].update(m)
    base_ll = ctx.metrics["models"][base]["logloss"]
    for name in preds:
        m = ctx.metrics["models"][name]
        m["share_of_achievable_gain"] = (
            mm.share_of_achievable_gain(base_ll, m["logloss"], oracle["logloss"])
            if oracle
            else None
        )
        rows.append(
            [
                name,
                m["logloss"],
                m["nce"],
                m["roc_auc"],
                m["pr_auc"],
                m["calibration"],
                m["validation_calibration"],
                m.get("calibration_before_correction"),
                m["ece"],
                m["share_of_achievable_gain"],
            ]
        )
    if oracle:
        rows.append(
            [
                f"**{ORACLE}** (true p)",
                oracle["logloss"],
                oracle["nce"],
                oracle["roc_auc"],
                oracle["pr_auc"],
                oracle["calibration"],
                oracle["validation_calibration"],
                None,
                None,
                1.0,
            ]
        )
    ctx.state["test_preds"] = preds
    ctx.state["val_nce"] = val_nce

    bp = ctx.blueprint
    bp.section("Offline evaluation")
    bp.text(
        "On the held-out test days. NCE is the log loss divided by the entropy of the background "
        "CTR (below 1 = better than always predicting the average). Calibration is observed / "
        "expected clicks (1.0 is perfect). Share of achievable gain = (baseline − model) / "
        "(baseline − oracle) in log loss, where the oracle predicts the world's true "
        "probabilities: the best any model can do."
        if oracle
        else "On the held-out test rows. NCE is the log loss divided by the entropy of the "
        "background CTR. The oracle and the share of achievable gain need the world's true "
        "probabilities, which a data file does not have."
    )
    bp.table(
        [
            "model",
            "log loss",
            "NCE",
            "ROC-AUC",
            "PR-AUC",
            "calibration",
            "calibration, validation day",
            "calibration before correction",
            "ECE",
            "share of achievable gain",
        ],
        rows,
    )
    _slices(ctx, X_te, y_te, preds)
    fig, ax = _figure()
    for name, p in preds.items():
        curve = mm.reliability_curve(y_te, p, n_bins=10)
        ax.plot(curve["mean_predicted"], curve["observed_rate"], marker="o", label=name)
    hi = float(max(np.quantile(np.concatenate(list(preds.values())), 0.999), y_te.mean() * 2))
    ax.plot([0, hi], [0, hi], "k--", lw=1, label="perfect")
    ax.set(
        xlabel="predicted click probability",
        ylabel="observed click rate",
        title="Reliability (test)",
    )
    ax.legend(fontsize=8)
    bp.figure(fig, "reliability", "Reliability diagram: predicted vs observed click rate.")


def _slices(
    ctx: RunContext, X_te: pd.DataFrame, y_te: np.ndarray, preds: dict[str, np.ndarray]
) -> None:
    """Named slices: cold-start ads (never shown before the test window) and the rest."""
    if "d_ad_imps" not in X_te.columns:
        return
    cold = X_te["d_ad_imps"].to_numpy() <= 0
    if cold.sum() < 50 or (~cold).sum() < 50:
        return
    out: dict[str, Any] = {}
    rows = []
    for name, p in preds.items():
        c, w = mm.log_loss(y_te[cold], p[cold]), mm.log_loss(y_te[~cold], p[~cold])
        nc = mm.normalized_cross_entropy(y_te[cold], p[cold])
        nw = mm.normalized_cross_entropy(y_te[~cold], p[~cold])
        out[name] = {"cold_start_nce": nc, "warm_nce": nw, "cold_start_logloss": c}
        rows.append([name, nc, nw, w])
    ctx.metrics["slices"] = {"cold_start_rows": int(cold.sum()), "models": out}
    ctx.blueprint.table(
        ["model", "NCE, cold-start ads", "NCE, ads with history", "log loss, with history"],
        rows,
        caption=f"Cold start: {int(cold.sum()):,} test impressions of ads never shown before them.",
    )


# ---- continual learning -----------------------------------------------------------------------
def step_continual_learning(ctx: RunContext) -> None:
    if "meta" not in ctx.state:
        return
    from mlsd.models import LightGBMClick, NegativeDownsampled
    from mlsd.systems.ad_click.model import NEGATIVE_RATE

    X: pd.DataFrame = ctx.state["X"]
    y: np.ndarray = ctx.state["y"]
    days = ctx.state["meta"]["day"].to_numpy()  # rows kept in memory (a sample of training days)
    p_true = ctx.state["meta"]["p_true"].to_numpy()
    first_eval = int(days[ctx.state["split"]["validation"][0]])
    window = first_eval  # the daily model keeps a sliding window as long as the first one
    seed = ctx.options.seed

    def fit(lo: int, hi: int) -> Any:
        idx = np.flatnonzero((days >= lo) & (days < hi))
        model = NegativeDownsampled(
            LightGBMClick(n_estimators=80, learning_rate=0.1, random_state=seed),
            rate=NEGATIVE_RATE,
            random_state=seed,
        )
        return model.fit(X.iloc[idx].reset_index(drop=True), y[idx])

    static = fit(0, first_eval)
    eval_days = list(range(first_eval, int(days.max()) + 1))
    rows: list[list[Any]] = []
    series: dict[str, list[float]] = {
        "day": [],
        "trained_once": [],
        "updated_daily": [],
        "oracle": [],
    }
    for i, d in enumerate(eval_days):
        ctx.progress(f"day {d}", i, len(eval_days))
        daily = static if d == first_eval else fit(max(0, d - window), d)
        idx = np.flatnonzero(days == d)
        n_s = mm.normalized_cross_entropy(y[idx], predict(static, X.iloc[idx]))
        n_d = mm.normalized_cross_entropy(y[idx], predict(daily, X.iloc[idx]))
        n_o = mm.normalized_cross_entropy(y[idx], p_true[idx])
        for k, v in (("day", d), ("trained_once", n_s), ("updated_daily", n_d), ("oracle", n_o)):
            series[k].append(v)
        rows.append([d, n_s, n_d, n_o, n_s - n_d])
    ctx.metrics["continual_learning"] = {
        "model": "lightgbm (80 trees, learning rate 0.1), negative-downsampled",
        "window_days": window,
        **series,
        "mean_nce_gain": float(
            np.mean(np.array(series["trained_once"]) - np.array(series["updated_daily"]))
        ),
    }
    bp = ctx.blueprint
    bp.section("Continual learning")
    bp.text(
        f"Interests drift and new ads arrive every day. A model trained once on days "
        f"0–{first_eval - 1} is compared with one retrained every day on the last {window} days "
        "(the same LightGBM recipe), each scored on the next, unseen day."
    )
    bp.table(
        ["day", "NCE, trained once", "NCE, updated daily", "NCE, oracle", "gain of daily updates"],
        rows,
    )
    fig, ax = _figure(6.4, 3.4)
    for k in ("trained_once", "updated_daily", "oracle"):
        ax.plot(series["day"], series[k], marker="o", label=k.replace("_", " "))
    ax.set(xlabel="simulated day", ylabel="NCE (lower is better)", title="Daily NCE")
    ax.legend(fontsize=8)
    bp.figure(fig, "continual_learning", "Daily NCE of a static and a daily-updated model.")


# ---- online A/B test --------------------------------------------------------------------------
def step_online(ctx: RunContext) -> None:
    if "world" not in ctx.state:
        return
    world = ctx.state["world"]
    control, treatment = ctx.state["scorers"][ctx.metrics["baseline_model"]], ctx.state["scorer"]
    seed = ctx.options.seed
    day = int(world.n_days)  # the day after the log: the model goes live with yesterday's store
    n_requests = AB_REQUESTS[str(ctx.options.scale)]
    cand = world.sample_requests(day, n_requests, seed + 1)
    users = cand["user_id"].to_numpy()
    is_treat = exp.assign_arms(users, salt=f"ab-{seed}")
    bids = cand["ad_id"].map(world.ads.set_index("ad_id")["bid"]).to_numpy()
    ctx.progress("scoring control", 0, 2)
    p_c = control.score_frame(cand)
    ctx.progress("scoring treatment", 1, 2)
    p_t = treatment.score_frame(cand)
    scores = np.where(is_treat, p_t, p_c) * bids
    shown = world.show(cand, scores, seed + 2)
    shown["arm"] = np.where(
        exp.assign_arms(shown["user_id"].to_numpy(), salt=f"ab-{seed}"), "treatment", "control"
    )
    per_user = shown.groupby(["arm", "user_id"]).agg(
        clicks=("click", "sum"), revenue=("revenue", "sum"), imps=("click", "size")
    )
    arms = shown.groupby("arm").agg(
        imps=("click", "size"),
        clicks=("click", "sum"),
        revenue=("revenue", "sum"),
        users=("user_id", "nunique"),
    )
    c, t = arms.loc["control"], arms.loc["treatment"]
    ctr = exp.compare_ratios(
        per_user.loc["control", "clicks"].to_numpy(),
        per_user.loc["control", "imps"].to_numpy(),
        per_user.loc["treatment", "clicks"].to_numpy(),
        per_user.loc["treatment", "imps"].to_numpy(),
        metric="CTR",
    )
    rev = exp.compare_means(
        per_user.loc["control", "revenue"].to_numpy(),
        per_user.loc["treatment", "revenue"].to_numpy(),
    )
    srm = exp.srm_check(int(c.users), int(t.users))
    decision, reason = exp.decide(rev, srm, guardrails=[ctr])
    rpm_test = exp.compare_ratios(
        per_user.loc["control", "revenue"].to_numpy() * 1000,
        per_user.loc["control", "imps"].to_numpy(),
        per_user.loc["treatment", "revenue"].to_numpy() * 1000,
        per_user.loc["treatment", "imps"].to_numpy(),
        metric="revenue per 1000 impressions",
    )
    rpm = {"control": rpm_test.control, "treatment": rpm_test.treatment}
    ctx.metrics["online"] = {
        "day": day,
        "requests": n_requests,
        "unit": "user (hash of user id)",
        "control": {
            "policy": ctx.metrics["baseline_model"],
            "users": int(c.users),
            "impressions": int(c.imps),
            "clicks": int(c.clicks),
            "ctr": float(c.clicks / c.imps),
            "rpm": rpm["control"],
        },
        "treatment": {
            "policy": ctx.metrics["chosen_model"],
            "users": int(t.users),
            "impressions": int(t.imps),
            "clicks": int(t.clicks),
            "ctr": float(t.clicks / t.imps),
            "rpm": rpm["treatment"],
        },
        "ctr_test": ctr.to_dict(),
        "revenue_per_user_test": rev.to_dict(),
        "rpm_test": rpm_test.to_dict(),
        "srm": srm.to_dict(),
        "decision": decision,
        "reason": reason,
    }
    bp = ctx.blueprint
    bp.section("Online evaluation: A/B test")
    bp.text(
        f"{n_requests:,} feed requests on day {day}, users split 50/50 by a hash of their id. "
        f"Control ranks candidates by the baseline ({ctx.metrics['baseline_model']}) "
        f"p × bid, treatment by the served model ({ctx.metrics['chosen_model']}) p × bid. "
        "Clicks are drawn from the world's true probabilities, position bias included. Users are "
        "the unit of randomisation, so the per-impression ratios (CTR, revenue per 1000 "
        "impressions) get delta-method intervals over users, and revenue per user a Welch test; "
        "the decision uses revenue per user, with CTR as a guardrail."
    )
    bp.table(
        ["arm", "users", "impressions", "clicks", "CTR", "revenue / 1000 impressions"],
        [
            [
                a,
                int(r.users),
                int(r.imps),
                int(r.clicks),
                f"{r.clicks / r.imps:.3%}",
                f"${rpm[a]:.2f}",
            ]
            for a, r in arms.iterrows()
        ],
    )
    bp.table(
        ["metric", "control", "treatment", "relative lift", "95% CI (absolute)", "p-value"],
        [
            [
                name,
                cmp.control,
                cmp.treatment,
                f"{cmp.relative_lift:+.1%}",
                f"[{cmp.ci_low:.4g}, {cmp.ci_high:.4g}]",
                cmp.p_value,
            ]
            for name, cmp in (
                ("CTR", ctr),
                ("revenue per 1000 impressions ($)", rpm_test),
                ("revenue per user ($)", rev),
            )
        ],
    )
    bp.text(
        f"Sample-ratio check: p = {srm.p_value:.3g} "
        f"({'mismatch!' if srm.mismatch else 'no mismatch'}). "
        f"**Decision: {decision}.** {reason}"
    )
