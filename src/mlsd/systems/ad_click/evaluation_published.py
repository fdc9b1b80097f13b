"""Published figures for CTR models on the public data sets mlsd's file readers target.

A run on a real file is judged against what the field reports for this kind of data, so the
blueprint of a file run names those figures, as published numbers with their source, beside
its own. They are **not** comparable one for one: the benchmark's splits, data sizes, features
and tuning differ from a run on the user's file, and mlsd never tunes on the test part to chase
them. The source: the BARS open benchmark for CTR prediction (Zhu et al., "BARS: Towards Open
Benchmarking for Recommender Systems", SIGIR 2022, arXiv:2205.09626), its leaderboard files
``docs/CTR/leaderboard/frappe_x1.csv`` and ``criteo_x1.csv`` in github.com/reczoo/BARS
(commit 1ffaf73), test ROC-AUC.
"""

from __future__ import annotations

from mlsd.report import Blueprint

__all__ = ["PUBLISHED_AUC", "SOURCE", "report_published"]

SOURCE = (
    "Zhu et al., SIGIR 2022, arXiv:2205.09626; leaderboards frappe_x1.csv and "
    "criteo_x1.csv, github.com/reczoo/BARS/tree/main/docs/CTR/leaderboard (commit 1ffaf73)"
)
# data set -> model -> published test ROC-AUC (the models of this chapter's line-up)
PUBLISHED_AUC: dict[str, dict[str, float]] = {
    "Frappe (libFM layout), Frappe_x1": {
        "LR": 0.9356,
        "FM": 0.9671,
        "DeepFM": 0.9842,
        "DCN-V2": 0.9845,
    },
    "Criteo, Criteo_x1": {"LR": 0.7886, "FM": 0.8022, "DeepFM": 0.8137, "DCN-V2": 0.8142},
}


def report_published(bp: Blueprint) -> None:
    """The published figures, with their source and what they can and cannot be compared with."""
    models = list(next(iter(PUBLISHED_AUC.values())))
    bp.text(
        "Published figures for this kind of data, for context: test ROC-AUC of the chapter's "
        f"models in the BARS open benchmark ({SOURCE}). They come from the benchmark's own "
        "splits of the full public data sets, with its features and tuning, so they are not "
        "this run's numbers to match; nothing in this run is tuned on its test part. BARS lists "
        "no gradient-boosted trees."
    )
    bp.table(
        ["data set (BARS name)", *models],
        [[name, *(auc[m] for m in models)] for name, auc in PUBLISHED_AUC.items()],
        caption="Published test ROC-AUC (BARS leaderboards); not measured by this run.",
    )
