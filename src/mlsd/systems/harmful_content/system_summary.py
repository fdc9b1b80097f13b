"""The blueprint's closing section for harmful content: what this run shows, in numbers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlsd.runner import Skipped, Summary, require
from mlsd.systems.harmful_content import REQUIREMENTS
from mlsd.systems.harmful_content.model import BASELINE

if TYPE_CHECKING:
    from mlsd.systems.harmful_content.system import HarmState


def compute_summary(state: HarmState, skipped: list[Skipped]) -> Summary:
    p = require(state.prepared, "the prepared posts (step 3)")
    serving = require(state.serving, "the serving report (step 6)")
    lines = [f"- Data: {len(p.inputs):,} posts ({p.source}); harm in {p.Y.max(axis=1).mean():.2%}."]
    if state.offline is not None:
        ev = state.offline
        m, b = ev.scores[ev.chosen], ev.scores[ev.baseline]
        o = ev.oracle or {}
        lines.append(
            f"- Served **{ev.chosen}**: mean PR-AUC {m['mean_pr_auc']:.3f} vs TF-IDF "
            f"{b['mean_pr_auc']:.3f} and oracle {o.get('mean_pr_auc', float('nan')):.3f} "
            f"({ev.gap_closed(ev.chosen):.0%} of the gap closed); mean recall at 95% precision "
            f"{m['mean_recall@p95']:.3f} (oracle {o.get('mean_recall@p95', float('nan')):.3f})."
        )
        late, early = ev.scores.get("late_fusion"), ev.scores.get("early_multi_task")
        single = ev.scores.get("early_single_task")
        if late and early and single:
            lines.append(
                f"- Late vs early fusion: {late['mean_pr_auc']:.3f} vs {early['mean_pr_auc']:.3f}; "
                f"multi-task vs one network per class: {early['mean_pr_auc']:.3f} vs "
                f"{single['mean_pr_auc']:.3f} (mean PR-AUC)."
            )
    if state.files is not None:
        f = state.files
        best, base = f.scores[f.chosen], f.scores[BASELINE]
        lines.append(
            f"- Served **{f.chosen}**: macro-F1 {best['macro_f1']:.3f}, mean PR-AUC "
            f"{best['mean_pr_auc']:.3f} (TF-IDF {base['mean_pr_auc']:.3f})."
        )
    lines.append(
        f"- Serving: p99 {serving.latency_ms['p99']:.1f} ms per post "
        f"(budget {REQUIREMENTS.latency_budget_ms:.0f} ms)."
    )
    if state.online is not None:
        lines.append(f"- Enforcement A/B: **{state.online.ab.decision}**: {state.online.ab.reason}")
    if state.monitoring is not None:
        mon = state.monitoring
        lines.append(
            f"- Monitoring: {len(mon.alerts)} alerts; "
            f"{'retrain triggered' if mon.retrain else 'no retrain'}: {mon.reason}."
        )
    return Summary.of(lines, skipped)
