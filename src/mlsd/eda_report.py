"""The blueprint's exploratory-data-analysis section: the label's balance, the column profile,
the leakage check, and two figures (label balance and missing shares; each column's
single-column ROC-AUC). The numbers come from :func:`mlsd.eda.profile_frame`."""

from __future__ import annotations

import math
from collections.abc import Sequence

from mlsd.eda import MIN_MINORITY, EdaResult, LeakageCheck
from mlsd.report import Blueprint


def write_eda_section(bp: Blueprint, result: EdaResult, note: str = "") -> None:
    """The blueprint's EDA section: the label's balance, the column profile, the leakage check
    and two figures (label balance and missing shares; each column's single-column ROC-AUC)."""
    bp.section("Exploratory data analysis")
    sampled = (
        f"a seeded uniform sample of {result.rows_profiled:,} of its {result.rows_total:,} rows"
        if result.rows_profiled < result.rows_total
        else f"all {result.rows_total:,} rows"
    )
    balance = ", ".join(
        f"{v}: {n:,} ({n / result.rows_profiled:.2%})" for v, n in result.label_counts
    )
    bp.text(
        f"Before any feature is built, the table the models learn from (**{result.table}**, "
        f"label `{result.label}`) is profiled on {sampled}. Label balance: {balance}. "
        + (note + " " if note else "")
    )
    bp.table(
        ["column", "dtype", "missing", "distinct", "distribution"],
        [
            [c.name, c.dtype, f"{c.missing_share:.1%}", c.cardinality, c.summary()]
            for c in result.columns
        ],
        caption="Per-column profile.",
    )
    flagged = result.flagged
    bp.text(
        "Leakage check: each column alone, out-of-fold target-encoded, against the label; "
        f"flagged at ROC-AUC ≥ {result.auc_flag:g} or mutual information ≥ "
        f"{result.mi_flag:.0%} of the label's entropy. "
        + (
            f"**Flagged: {', '.join(f'`{c}`' for c in flagged)}**: check how they are logged "
            "before using them as features."
            if flagged
            else "No column is flagged."
        )
        + (
            f" With fewer than {MIN_MINORITY} rows of one class, nothing is flagged: the "
            "figures below are too noisy to act on."
            if min((n for _, n in result.label_counts), default=0) < MIN_MINORITY
            else ""
        )
        + "".join(
            f" `{c.column}` is the world's ground truth (never a feature): its ROC-AUC "
            f"{c.roc_auc:.3f} is the ceiling no feature can pass."
            for c in result.leakage
            if c.ground_truth
        )
    )
    ranked = sorted(result.leakage, key=lambda c: -c.roc_auc if not math.isnan(c.roc_auc) else 0)
    bp.table(
        ["column", "single-column ROC-AUC", "MI / H(label)", "flag"],
        [
            [
                c.column,
                c.roc_auc,
                c.mi_share,
                "ground truth" if c.ground_truth else ("LEAK?" if c.flagged else ""),
            ]
            for c in ranked
        ],
        caption="Leakage check, most predictive column first.",
    )
    _figures(bp, result, ranked)


def _figures(bp: Blueprint, result: EdaResult, ranked: Sequence[LeakageCheck]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.0, 3.2), width_ratios=(1, 2.4))
    ax1.bar([v for v, _ in result.label_counts], [n for _, n in result.label_counts])
    ax1.set_title(f"label {result.label}")
    ax1.set_ylabel("rows")
    names = [c.name for c in result.columns]
    ax2.bar(range(len(names)), [c.missing_share for c in result.columns], color="tab:orange")
    ax2.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax2.set_ylabel("missing share")
    ax2.set_ylim(0, max(0.05, max((c.missing_share for c in result.columns), default=0) * 1.2))
    ax2.set_title("missing values per column")
    bp.figure(fig, "eda_profile", "Label balance and the share of missing values per column.")
    if not ranked:
        return
    fig, ax = plt.subplots(figsize=(7.0, 0.25 * len(ranked) + 1.2))
    colours = [
        "tab:green" if c.ground_truth else ("tab:red" if c.flagged else "tab:blue") for c in ranked
    ]
    ax.barh(
        [c.column for c in ranked][::-1], [c.roc_auc for c in ranked][::-1], color=colours[::-1]
    )
    ax.axvline(result.auc_flag, color="tab:red", linestyle="--", label="flag threshold")
    ax.set_xlim(0.5, 1.0)
    ax.set_xlabel("single-column ROC-AUC (out of fold)")
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(loc="lower right", fontsize=7)
    bp.figure(
        fig,
        "eda_leakage",
        "Each column alone against the label: red is flagged, green "
        "is ground truth (never a feature).",
    )
