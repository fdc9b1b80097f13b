"""Steps 6 and 7 of the chapter: serving (the latency budget picks the model, the artifacts are
written) and monitoring (drift per day, alerts, the retrain trigger); then the run's summary."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd

from mlsd import metrics as mm
from mlsd import monitoring as mon
from mlsd.runner import RunContext
from mlsd.stores import FrameStore
from mlsd.systems.ad_click import REQUIREMENTS
from mlsd.systems.ad_click.evaluation import _figure, predict
from mlsd.systems.ad_click.serving import AdClickScorer, save_serving_artifacts
from mlsd.training import torch_threads

log = logging.getLogger(__name__)

N_CANDIDATES = 100
WARMUP = 5
LATENCY_REQUESTS = {"tiny": 100, "small": 400, "medium": 500, "large": 500}


# ---- 6. serving -------------------------------------------------------------------------------
def step_serving(ctx: RunContext) -> None:
    models: dict[str, Any] = ctx.state["models"]
    n_req = LATENCY_REQUESTS[str(ctx.options.scale)]
    budget = REQUIREMENTS.latency_budget_ms
    rng = np.random.default_rng(ctx.options.seed + 7)
    world = ctx.state.get("world")
    if world is not None:
        # the counts carried to the end of the log; the count tables are not needed after this
        tables = ctx.state.pop("streamer").tables()
        store = FrameStore(tables)  # columnar, over the frames themselves (no copy)
        ctx.state["tables"] = tables
        user_ids = world.users["user_id"].to_numpy()
        active = world.ads.loc[world.ads["created_day"] < world.n_days, "ad_id"].to_numpy()
        requests = [
            (
                int(rng.choice(user_ids)),
                int(rng.integers(24)),
                str(rng.choice(["ios", "web"])),
                rng.choice(active, size=min(N_CANDIDATES, len(active)), replace=False).tolist(),
            )
            for _ in range(n_req)
        ]
        what = f"{N_CANDIDATES} candidates: online-store lookups, feature assembly and the model"
    else:
        X = ctx.state["X"]
        blocks = [X.iloc[rng.integers(0, len(X), N_CANDIDATES)] for _ in range(n_req)]
        what = f"{N_CANDIDATES} rows of ready-made features through the model (no store)"

    scorers: dict[str, AdClickScorer] = {}
    rows = []
    with torch_threads(ctx.options.settings.torch_threads):  # as `mlsd serve` runs
        for name, model in models.items():
            ctx.progress(f"timing {name}", len(scorers), len(models))
            scorer = AdClickScorer(model, store, name) if world is not None else None
            if scorer is not None:
                scorers[name] = scorer
            lat = _time_requests(scorer, model, requests if world is not None else blocks)
            m = ctx.metrics["models"][name]
            m["latency_ms"] = {"p50": lat["p50"], "p99": lat["p99"], "mean": lat["mean"]}
            m["meets_budget"] = bool(lat["p99"] <= budget)
    val_nce = ctx.state["val_nce"]
    eligible = [n for n in models if ctx.metrics["models"][n]["meets_budget"]]
    pool = eligible or list(models)
    chosen = min(pool, key=lambda n: val_nce[n])
    m = ctx.metrics["models"][chosen]
    because = (
        f"lowest validation NCE ({val_nce[chosen]:.4f}) among the models whose p99 "
        f"({m['latency_ms']['p99']:.2f} ms for {N_CANDIDATES} candidates) meets the "
        f"{budget:g} ms budget"
        if eligible
        else f"no model met the {budget:g} ms budget on this machine; served the most accurate "
        f"({chosen}) and flagged it"
    )
    ctx.metrics["chosen_model"] = chosen
    ctx.metrics["chosen_because"] = because
    ctx.metrics["latency_budget_ms"] = budget
    ctx.metrics["latency_measured"] = what
    for name in models:
        mt = ctx.metrics["models"][name]
        rows.append(
            [
                ("**" + name + "**") if name == chosen else name,
                val_nce[name],
                mt["nce"],
                mt.get("share_of_achievable_gain"),
                mt["latency_ms"]["p50"],
                mt["latency_ms"]["p99"],
                mt["meets_budget"],
            ]
        )
    if world is not None:
        save_serving_artifacts(ctx.artifacts_dir, models[chosen], chosen, ctx.state.pop("tables"))
        ctx.state["scorers"] = scorers
        ctx.state["scorer"] = scorers[chosen]
    else:
        models[chosen].save(ctx.artifacts_dir / "model.pkl")
        ctx.skip(
            "serving_api",
            "the HTTP scorer looks users and ads up in the online store; "
            "a feature file has no entities (the model is saved as artifacts/model.pkl)",
        )

    bp = ctx.blueprint
    bp.section("Serving")
    bp.text(
        f"Latency measured in-process, one thread, over {n_req - WARMUP} requests of {what}. "
        f"The served model is the most accurate one whose p99 meets the {budget:g} ms budget: "
        f"**{chosen}**, "
        f"because it has the {because}."
        if eligible
        else f"**{chosen}** is served: {because}."
    )
    bp.table(
        [
            "model",
            "validation NCE",
            "test NCE",
            "share of achievable gain",
            "p50 ms",
            "p99 ms",
            f"p99 ≤ {budget:g} ms",
        ],
        rows,
        caption="The accuracy / latency trade-off that picks the served model.",
    )
    if world is not None:
        bp.text(
            "`mlsd serve ad-click --run <this directory>` serves it: `POST /v1/ad-click/score` "
            "with a user, a context and up to 500 candidate ad ids returns calibrated click "
            "probabilities ranked by expected value (p × bid). Features come from the online "
            "store (in-process by default, Redis when `MLSD_REDIS_URL` is set); `/healthz`, "
            "`/readyz`, `/metrics` (Prometheus) and `/docs` (OpenAPI) come with it."
        )


def _time_requests(
    scorer: AdClickScorer | None, model: Any, requests: list[Any]
) -> dict[str, float]:
    """Latency of each request in ms (the first few are warm-up and not counted)."""
    samples = []
    for j, req in enumerate(requests):
        t0 = time.perf_counter()
        if scorer is not None:
            scorer.score(*req)
        else:
            model.predict_proba(req)
        if j >= WARMUP:
            samples.append((time.perf_counter() - t0) * 1e3)
    return mm.latency_summary(np.asarray(samples))


# ---- 7. monitoring ----------------------------------------------------------------------------
def monitored_columns(X: pd.DataFrame) -> list[str]:
    """Dense features whose distribution should be stable: cumulative counts and ages grow by
    construction every day, so they are watched through the rates derived from them instead."""
    return [
        c
        for c in X.columns
        if c.startswith("d_") and not c.endswith(("_imps", "_clicks")) and "age_days" not in c
    ]


def step_monitoring(ctx: RunContext) -> None:
    X: pd.DataFrame = ctx.state["X"]
    y: np.ndarray = ctx.state["y"]
    split = ctx.state["split"]
    model = ctx.state["models"][ctx.metrics["chosen_model"]]
    rng = np.random.default_rng(ctx.options.seed + 11)
    tr = split["train"]
    if "meta" in ctx.state:  # the reference is the most recent training day: what the model saw
        train_days = ctx.state["meta"]["day"].to_numpy()[tr]
        tr = tr[train_days == train_days.max()]
    ref_idx = np.sort(rng.choice(tr, size=min(len(tr), 50_000), replace=False))
    ref = X.iloc[ref_idx]
    ref_pred = predict(model, ref)
    columns = monitored_columns(X)
    if "meta" in ctx.state:
        days = ctx.state["meta"]["day"].to_numpy()
        windows = {
            int(d): np.flatnonzero(days == d)
            for d in sorted(set(days[split["validation"]]) | set(days[split["test"]]))
        }
    else:
        windows = {0: split["test"]}
    thresholds = mon.DriftThresholds()
    daily = pd.DataFrame(
        [
            mon.daily_monitoring_row(
                d,
                ref,
                X.iloc[idx],
                columns,
                reference_p=ref_pred,
                p=predict(model, X.iloc[idx]),
                y=y[idx],
            )
            for d, idx in windows.items()
        ]
    )
    alerts = mon.drift_alerts(
        daily, thresholds, baseline_nce=ctx.state["val_nce"][ctx.metrics["chosen_model"]]
    )
    psi_cols = [c for c in daily.columns if c.startswith("psi_")]
    rows, per_window = [], []
    for rec in daily.to_dict("records"):
        worst = max(psi_cols, key=lambda c: rec[c]) if psi_cols else None
        label = f"day {int(rec['day'])}" if "meta" in ctx.state else "test"
        per_window.append(
            {
                "window": label,
                "max_feature": worst.removeprefix("psi_") if worst else None,
                "max_feature_psi": rec[worst] if worst else None,
                "prediction_psi": rec["prediction_psi"],
                "calibration": rec["calibration"],
                "nce": rec["nce"],
                "features": {c.removeprefix("psi_"): rec[c] for c in psi_cols},
            }
        )
        rows.append(
            [
                label,
                f"{worst.removeprefix('psi_')} ({rec[worst]:.3f})"
                if worst
                else "no dense features",
                rec["prediction_psi"],
                rec["calibration"],
                rec["nce"],
            ]
        )
    retrain, why = mon.retrain_trigger(alerts)
    ctx.metrics["monitoring"] = {
        "reference": f"{len(ref):,} rows of the last training window",
        "columns": columns,
        "thresholds": asdict(thresholds),
        "windows": per_window,
        "alerts": [a.to_dict() for a in alerts],
        "retrain": retrain,
        "retrain_reason": why,
    }
    bp = ctx.blueprint
    bp.section("Monitoring")
    bp.text(
        "Each day after training is compared with the last training day: the population "
        "stability index (PSI) of the dense features that should be stable (rates and context; "
        "cumulative counts and ages grow by construction) and of the served model's "
        "predictions, and calibration (observed / expected clicks). PSI above "
        f"{thresholds.psi_alert:g} or calibration off by more than "
        f"{thresholds.calibration_tolerance:.0%} raises an alert; alerts trigger a retrain."
    )
    bp.table(["window", "most drifted feature (PSI)", "prediction PSI", "calibration", "NCE"], rows)
    if alerts:
        more = [f"- … and {len(alerts) - 12} more in metrics.json"] if len(alerts) > 12 else []
        bp.text("\n".join([f"- {a.message}" for a in alerts[:12]] + more))
    bp.text(f"**Retrain triggered: {'yes' if retrain else 'no'}.** {why}")
    if len(per_window) > 1 and psi_cols:
        fig, ax = _figure(6.4, 3.2)
        labels = [w["window"] for w in per_window]
        ax.plot(
            labels, [w["max_feature_psi"] for w in per_window], marker="o", label="max feature PSI"
        )
        ax.plot(
            labels, [w["prediction_psi"] for w in per_window], marker="o", label="prediction PSI"
        )
        ax.axhline(thresholds.psi_alert, color="r", ls="--", lw=1, label="alert threshold")
        ax.set(ylabel="PSI", title="Drift against the last training day")
        ax.legend(fontsize=8)
        bp.figure(fig, "drift", "Feature and prediction drift per day.")


# ---- summary ----------------------------------------------------------------------------------
def step_summary(ctx: RunContext) -> None:
    mt = ctx.metrics
    chosen = mt["chosen_model"]
    m = mt["models"][chosen]
    lines = [
        f"- Data: {mt['data']['rows']:,} rows, positive rate {mt['data']['positive_rate']:.2%} "
        f"({mt['data']['source']}).",
        f"- Served model: **{chosen}**, {mt['chosen_because']}.",
        f"- Test NCE {m['nce']:.4f} vs baseline {mt['models'][mt['baseline_model']]['nce']:.4f}"
        + (
            f" and oracle {mt['oracle']['nce']:.4f}; share of the achievable gain "
            f"**{m['share_of_achievable_gain']:.0%}**."
            if mt.get("oracle")
            else "."
        ),
        f"- Calibration (observed/expected) {m['calibration']:.3f} on the test days, "
        f"{m['validation_calibration']:.3f} on the day after training"
        + (
            f"; {m['calibration_before_correction']:.3f} before the downsampling correction."
            if m.get("calibration_before_correction") is not None
            else "."
        ),
        f"- Latency p99 {m['latency_ms']['p99']:.2f} ms for {N_CANDIDATES} candidates "
        f"(budget {mt['latency_budget_ms']:g} ms).",
    ]
    if mt.get("online"):
        on = mt["online"]
        lines.append(f"- A/B test: **{on['decision']}**: {on['reason']}")
    if mt.get("monitoring"):
        lines.append(
            f"- Monitoring: {len(mt['monitoring']['alerts'])} alerts; retrain "
            f"{'triggered' if mt['monitoring']['retrain'] else 'not triggered'}."
        )
    for s in mt.get("skipped", []):
        lines.append(f"- Skipped {s['step']}: {s['reason']}.")
    ctx.blueprint.section("What this run shows")
    ctx.blueprint.text("\n".join(lines))
