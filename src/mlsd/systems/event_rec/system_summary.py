"""The run's summary: the headline of each step, from the typed results of the steps."""

from __future__ import annotations

from mlsd.systems.event_rec.evaluation import OfflineEvaluation
from mlsd.systems.event_rec.evaluation_continual import ContinualLearning
from mlsd.systems.event_rec.evaluation_online import OnlineTest
from mlsd.systems.event_rec.model import MODELS
from mlsd.systems.event_rec.monitoring import Monitoring
from mlsd.systems.event_rec.serving_latency import ServingChoice


def summary_lines(
    offline: OfflineEvaluation,
    serving: ServingChoice,
    continual: ContinualLearning | None,
    online: OnlineTest | None,
    monitoring: Monitoring | None,
) -> list[str]:
    s, o = offline.scores, offline.scores["oracle"]
    lines = [
        "- nDCG@10 / MAP@10 on the test days (every choice made on the validation days): "
        + "; ".join(f"{n} {s[n]['ndcg@10']:.4f} / {s[n]['map@10']:.4f}" for n in MODELS)
        + f"; oracle {o['ndcg@10']:.4f} / {o['map@10']:.4f}.",
        f"- Served model: **{serving.chosen}**, {serving.because}; total latency p99 "
        f"{serving.latency_ms['total']['p99']:.1f} ms.",
    ]
    kept = next(
        f for f in offline.filtering if f["radius_km"] is not None and f["radius_km"] == 8.0
    )
    lines.append(
        f"- Event filtering (8 km, 7 days) keeps {kept['recall_of_positives']:.1%} of the "
        f"positives with {kept['candidates_per_session']:.0f} candidates per session."
    )
    for a, b in (
        ("lightgbm_lambdarank", "lightgbm_pointwise"),
        ("lightgbm_pointwise", "lightgbm_lambdarank"),
    ):
        d = offline.paired.get(f"{a} vs {b}")
        if d is not None:
            sign = 1.0 if a == "lightgbm_lambdarank" else -1.0
            nd, mp = d["ndcg@10"], d["map@10"]
            lo, hi = sorted((sign * nd["ci_low"], sign * nd["ci_high"]))
            lines.append(
                f"- LambdaRank minus pointwise LightGBM on the test days: nDCG@10 "
                f"{sign * nd['diff']:+.4f} (95% CI [{lo:.4f}, {hi:.4f}]), MAP@10 "
                f"{sign * mp['diff']:+.4f}."
            )
    if offline.ablation:
        worst = max(
            (g for g in offline.ablation if g != "(none)"),
            key=lambda g: offline.ablation[g].get("ndcg_drop", 0.0),
        )
        lines.append(
            f"- Ablation: the **{worst}** group contributes most "
            f"(nDCG@10 drop {offline.ablation[worst]['ndcg_drop']:.4f})."
        )
    if continual is not None:
        gain = continual.metrics()["continual_learning"]["mean_ndcg_gain"]
        lines.append(
            f"- Continual learning: retraining {continual.model} daily changes nDCG@10 by "
            f"{gain:+.4f} on average over the test days."
        )
    if online is not None:
        lines.append(f"- A/B test: **{online.ab.decision}**: {online.ab.reason}")
        il = online.interleaving
        if il is not None:
            lines.append(
                f"- Interleaving (team draft, clicks): {il.a} wins {il.wins_a:,} sessions, "
                f"{il.b} {il.wins_b:,}, ties {il.ties:,} (p = {il.p_value:.2g})."
            )
    if monitoring is not None:
        lines.append(f"- Monitoring: {len(monitoring.alerts)} alerts; {monitoring.reason}.")
    return lines
