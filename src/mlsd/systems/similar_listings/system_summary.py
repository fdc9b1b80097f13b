"""The summary of a similar-listings run: the headline figures of every step, in a few lines."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlsd.report import Blueprint
from mlsd.runner import Skipped, Summary
from mlsd.systems.similar_listings import REQUIREMENTS
from mlsd.systems.similar_listings.evaluation import K
from mlsd.systems.similar_listings.model_lineup import (
    SKIPGRAM_BOOKED,
    SKIPGRAM_FULL,
    SKIPGRAM_REGION,
)

if TYPE_CHECKING:
    from mlsd.systems.similar_listings.system import SimilarListingsState


def report_summary(bp: Blueprint, state: SimilarListingsState, skipped: list[Skipped]) -> None:
    lines = []
    ev = state.evaluation
    if ev is not None:
        s, base = ev.scores, ev.best_baseline
        full, booked = s[ev.chosen_model], s.get(SKIPGRAM_BOOKED)
        verdict = "beats" if full["booked_rank"] < s[base]["booked_rank"] else "does NOT beat"
        lines.append(
            f"- {ev.chosen_model} {verdict} the best baseline ({base}) on the booked-listing "
            f"rank: {full['booked_rank']:.1f} vs {s[base]['booked_rank']:.1f} (oracle "
            f"{ev.oracle['booked_rank']:.1f}); "
            + ("better" if full[f"next_hr@{K}"] > s[base][f"next_hr@{K}"] else "worse")
            + f" on next-click HR@{K}: {full[f'next_hr@{K}']:.3f} vs "
            f"{s[base][f'next_hr@{K}']:.3f}; booked HR@{K} {full[f'booked_hr@{K}']:.3f} vs "
            f"{s[base][f'booked_hr@{K}']:.3f}."
            if ev.oracle is not None
            else ""
        )
        vs = ev.vs_baseline
        if vs is not None:
            lines.append(
                f"- Paired per booking session: booked rank {vs['diff']:+.2f} vs "
                f"{vs['baseline']} (95% CI [{vs['ci_low']:+.2f}, {vs['ci_high']:+.2f}])."
            )
        for b, tests in (ev.paired or {}).items():
            lines.append(
                f"- Paired per test session vs {b}: "
                + "; ".join(
                    f"{m} {c['diff']:+.3g} [{c['ci_low']:+.3g}, {c['ci_high']:+.3g}]"
                    for m, c in tests.items()
                )
                + "."
            )
        if ev.oracle is not None and ev.oracle["booked_rank"] > s[base]["booked_rank"]:
            lines.append(
                f"- The oracle's true similarity ranks the booked listing worse than {base}: "
                "which listing is booked depends on the user and on what everyone books "
                "(price, quality, capacity), which counts of clicks capture and the similarity "
                "of two listings' styles does not (nor does the cosine of two embeddings; the "
                "skip-gram's own input-output score, trained against negatives of the region, "
                "keeps it)."
            )
        region = s.get(SKIPGRAM_REGION)
        if booked is not None and region is not None and "skipgram" in s:
            lines.append(
                f"- Refinements, booked rank / next HR@{K}: plain "
                f"{s['skipgram']['booked_rank']:.1f} / {s['skipgram'][f'next_hr@{K}']:.3f}; "
                f"+ booked global context {booked['booked_rank']:.1f} / "
                f"{booked[f'next_hr@{K}']:.3f}; + region negatives "
                f"{region['booked_rank']:.1f} / {region[f'next_hr@{K}']:.3f}; both "
                f"{s[SKIPGRAM_FULL]['booked_rank']:.1f} / {s[SKIPGRAM_FULL][f'next_hr@{K}']:.3f}."
            )
    if state.file_evaluation is not None:
        fe = state.file_evaluation
        lines.append(f"- On the file: {fe.summary()}")
    if state.serving is not None:
        lat = state.serving.latency_ms["total"]
        lines.append(
            f"- Served over a {state.serving.index_kind} index per region: p99 "
            f"{lat['p99']:.2f} ms against a {REQUIREMENTS.latency_budget_ms:g} ms budget."
        )
    if state.online is not None:
        lines.append(f"- A/B test: **{state.online.ab.decision}**: {state.online.ab.reason}")
    if state.monitoring is not None:
        lines.append(f"- Monitoring: {state.monitoring.reason}.")
        c = state.monitoring.curve
        if c is not None and c.rows:
            lines.append(
                f"- Daily retrain, simulated over {len(c.rows)} days: booked rank "
                f"{c.mean('daily_booked_rank'):.1f} retrained daily vs "
                f"{c.mean('static_booked_rank'):.1f} trained once; next-click HR@{K} "
                f"{c.mean(f'daily_next_hr@{K}'):.3f} vs {c.mean(f'static_next_hr@{K}'):.3f}."
            )
    Summary.of(lines, skipped).report(bp)
