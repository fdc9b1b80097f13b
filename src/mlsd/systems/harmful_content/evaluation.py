"""Step 5, offline: every model per class and overall, next to the world's oracle.

Per class: PR-AUC (average precision), ROC-AUC and recall at 95% precision (the best recall the
scores allow at that precision on the test days). Overall: their means over the classes (each
class counts the same, so the rare ones matter) and "any harm" (the maximum class score against
"some class applies"). The oracle is the world's true probability of each class. The served
model is the multimodal model with the best mean PR-AUC on the **validation** days; its
per-class thresholds are chosen there too (:func:`choose_thresholds`) and only then measured on
the test days. Slices: posts whose text is obfuscated, posts of new accounts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_curve

from mlsd.metrics import pr_auc, roc_auc
from mlsd.report import Blueprint

TARGET_PRECISION = 0.95
BANDS = (("remove", 0.95), ("review", 0.30), ("demote", 0.10))


def recall_at_precision(y: np.ndarray, p: np.ndarray, target: float = TARGET_PRECISION) -> float:
    """The largest recall at which precision is at least ``target``; nan without positives."""
    y = np.asarray(y)
    if y.sum() == 0:
        return math.nan
    prec, rec, _ = precision_recall_curve(y, p)
    ok = prec >= target
    return float(rec[ok].max()) if ok.any() else 0.0


def threshold_for_precision(y: np.ndarray, p: np.ndarray, target: float) -> float:
    """The lowest score threshold whose precision (scores >= it) is at least ``target``; inf when
    no threshold reaches it (the band is then empty)."""
    y = np.asarray(y)
    if y.sum() == 0:
        return math.inf
    prec, _, thr = precision_recall_curve(y, p)
    ok = np.flatnonzero(prec[:-1] >= target)
    return float(thr[ok[0]]) if len(ok) else math.inf


def _nan_mean(values: list[float]) -> float:
    arr = np.array([v for v in values if not math.isnan(v)])
    return float(arr.mean()) if arr.size else math.nan


def class_metrics(Y: np.ndarray, P: np.ndarray, classes: tuple[str, ...]) -> dict[str, Any]:
    """Per class and their means; ``any_harm`` on the maximum class score."""
    per: dict[str, dict[str, float]] = {}
    for c, name in enumerate(classes):
        y, p = Y[:, c], P[:, c]
        per[name] = {
            "pr_auc": pr_auc(y, p),
            "roc_auc": roc_auc(y, p),
            "recall@p95": recall_at_precision(y, p),
            "positives": int(y.sum()),
        }
    anyy, anyp = Y.max(axis=1), P.max(axis=1)
    return {
        "mean_pr_auc": _nan_mean([m["pr_auc"] for m in per.values()]),
        "mean_roc_auc": _nan_mean([m["roc_auc"] for m in per.values()]),
        "mean_recall@p95": _nan_mean([m["recall@p95"] for m in per.values()]),
        "any_harm_pr_auc": pr_auc(anyy, anyp),
        "any_harm_roc_auc": roc_auc(anyy, anyp),
        "per_class": per,
    }


@dataclass(frozen=True)
class Thresholds:
    """Per class: the score from which a post is removed, reviewed, demoted (inf: never)."""

    classes: tuple[str, ...]
    remove: np.ndarray
    review: np.ndarray
    demote: np.ndarray

    def to_dict(self) -> dict[str, dict[str, float | None]]:
        def f(v: float) -> float | None:
            return float(v) if math.isfinite(v) else None

        return {
            c: {
                "remove": f(self.remove[i]),
                "review": f(self.review[i]),
                "demote": f(self.demote[i]),
            }
            for i, c in enumerate(self.classes)
        }


def choose_thresholds(Y: np.ndarray, P: np.ndarray, classes: tuple[str, ...]) -> Thresholds:
    """Per class on validation: remove at >= 95% precision, review at >= 30%, demote at >= 10%
    (each band's threshold never above the stricter one's)."""
    bands = {}
    for band, target in BANDS:
        bands[band] = np.array(
            [threshold_for_precision(Y[:, c], P[:, c], target) for c in range(len(classes))]
        )
    review = np.minimum(bands["review"], bands["remove"])
    demote = np.minimum(bands["demote"], review)
    return Thresholds(classes, bands["remove"], review, demote)


def at_thresholds(Y: np.ndarray, P: np.ndarray, th: Thresholds) -> dict[str, dict[str, Any]]:
    """Test precision and recall of each class's remove and review bands."""
    out: dict[str, dict[str, Any]] = {}
    for c, name in enumerate(th.classes):
        row: dict[str, Any] = {}
        for band, t in (("remove", th.remove[c]), ("review", th.review[c])):
            flagged = P[:, c] >= t
            tp = int((flagged & (Y[:, c] == 1)).sum())
            row[f"{band}_precision"] = tp / flagged.sum() if flagged.sum() else math.nan
            row[f"{band}_recall"] = tp / Y[:, c].sum() if Y[:, c].sum() else math.nan
            row[f"{band}_flagged"] = int(flagged.sum())
        out[name] = row
    return out


@dataclass(frozen=True)
class OfflineEvaluation:
    classes: tuple[str, ...]
    scores: dict[str, dict[str, Any]]  # model -> class_metrics on the test days
    val_scores: dict[str, float]  # model -> mean PR-AUC on validation
    oracle: dict[str, Any] | None
    chosen: str
    baseline: str
    thresholds: Thresholds
    at_thresholds: dict[str, dict[str, Any]]
    slices: dict[str, dict[str, float]]  # slice -> model -> any-harm PR-AUC
    slice_sizes: dict[str, int] = field(default_factory=dict)

    def gap_closed(self, name: str) -> float:
        if self.oracle is None:
            return math.nan
        base = self.scores[self.baseline]["mean_pr_auc"]
        denom = self.oracle["mean_pr_auc"] - base
        return (self.scores[name]["mean_pr_auc"] - base) / denom if denom > 1e-9 else math.nan

    def metrics(self) -> dict[str, Any]:
        models: dict[str, Any] = {}
        for name, s in self.scores.items():
            models[name] = {**s, "val_mean_pr_auc": self.val_scores.get(name)}
            if self.oracle is not None:
                models[name]["share_of_gap_closed"] = self.gap_closed(name)
        return {
            "models": models,
            "oracle": self.oracle,
            "chosen_model": self.chosen,
            "thresholds": self.thresholds.to_dict(),
            "thresholds_on_test": self.at_thresholds,
            "slices": {"sizes": self.slice_sizes, **self.slices},
        }


def compute_offline(
    classes: tuple[str, ...],
    val: tuple[np.ndarray, dict[str, np.ndarray]],
    test: tuple[np.ndarray, dict[str, np.ndarray]],
    oracle_test: np.ndarray | None,
    servable: tuple[str, ...],
    baseline: str,
    slices: dict[str, np.ndarray],
) -> OfflineEvaluation:
    """``val`` / ``test``: the labels and each model's ``(n, C)`` scores; ``slices``: boolean
    masks over the test rows."""
    Yv, Pv = val
    Yt, Pt = test
    scores = {name: class_metrics(Yt, P, classes) for name, P in Pt.items()}
    val_scores = {name: class_metrics(Yv, P, classes)["mean_pr_auc"] for name, P in Pv.items()}
    eligible = [n for n in servable if n in Pv]
    chosen = max(eligible, key=lambda n: (np.nan_to_num(val_scores[n], nan=-1.0), n))
    th = choose_thresholds(Yv, Pv[chosen], classes)
    oracle = class_metrics(Yt, oracle_test, classes) if oracle_test is not None else None
    slice_scores: dict[str, dict[str, float]] = {}
    sizes: dict[str, int] = {}
    for sname, mask in slices.items():
        sizes[sname] = int(mask.sum())
        y = Yt[mask].max(axis=1) if mask.any() else np.zeros(0)
        row = {
            n: (pr_auc(y, P[mask].max(axis=1)) if mask.any() else math.nan) for n, P in Pt.items()
        }
        if oracle_test is not None and mask.any():
            row["oracle"] = pr_auc(y, oracle_test[mask].max(axis=1))
        slice_scores[sname] = row
    return OfflineEvaluation(
        classes,
        scores,
        val_scores,
        oracle,
        chosen,
        baseline,
        th,
        at_thresholds(Yt, Pt[chosen], th),
        slice_scores,
        sizes,
    )


def _row(name: str, s: dict[str, Any], ev: OfflineEvaluation) -> list[Any]:
    gap = ev.gap_closed(name) if name != "oracle" else 1.0
    return [
        name,
        s["mean_pr_auc"],
        s["mean_roc_auc"],
        s["mean_recall@p95"],
        s["any_harm_pr_auc"],
        ev.val_scores.get(name, math.nan) if name != "oracle" else math.nan,
        gap,
    ]


HEADER = [
    "model",
    "mean PR-AUC",
    "mean ROC-AUC",
    "mean recall@P95",
    "any-harm PR-AUC",
    "val mean PR-AUC",
    "share of gap closed",
]


def report_offline(
    bp: Blueprint, ev: OfflineEvaluation, groups: dict[str, tuple[str, ...]]
) -> None:
    bp.text(
        "Every model on the test days, per class and averaged over the classes (each class "
        "counts the same). *Share of gap closed*: how much of the distance from TF-IDF + "
        "logistic regression to the oracle (the world's true probabilities) a model covers. "
        f"Served: **{ev.chosen}**, the multimodal model with the best mean PR-AUC on the "
        "validation days."
    )
    rows = [_row(n, s, ev) for n, s in ev.scores.items()]
    if ev.oracle is not None:
        rows.append(_row("oracle", ev.oracle, ev))
    bp.table(HEADER, rows)
    for title, names in groups.items():
        present = [n for n in names if n in ev.scores]
        if present:
            bp.text(f"**{title}**")
            bp.table(HEADER, [_row(n, ev.scores[n], ev) for n in present])
    bp.text(f"**Per class: {ev.chosen} (served) against the oracle** (test days)")
    rows = []
    for c in ev.classes:
        m = ev.scores[ev.chosen]["per_class"][c]
        o = ev.oracle["per_class"][c] if ev.oracle else {}
        b = ev.scores[ev.baseline]["per_class"][c]
        rows.append(
            [
                c,
                m["positives"],
                b["pr_auc"],
                m["pr_auc"],
                o.get("pr_auc"),
                m["roc_auc"],
                m["recall@p95"],
                o.get("recall@p95"),
            ]
        )
    bp.table(
        [
            "class",
            "test positives",
            f"{ev.baseline} PR-AUC",
            "PR-AUC",
            "oracle PR-AUC",
            "ROC-AUC",
            "recall@P95",
            "oracle recall@P95",
        ],
        rows,
    )
    bp.text(
        "**Per-class thresholds** chosen on the validation days (remove at >= 95% precision, "
        "review at >= 30%, demote at >= 10%; '-' where validation never reaches the precision), "
        "then measured on the test days:"
    )
    th = ev.thresholds.to_dict()
    bp.table(
        [
            "class",
            "remove from",
            "review from",
            "demote from",
            "test precision (remove)",
            "test recall (remove)",
            "test precision (review band up)",
            "test recall (review band up)",
        ],
        [
            [
                c,
                th[c]["remove"] if th[c]["remove"] is not None else "-",
                th[c]["review"] if th[c]["review"] is not None else "-",
                th[c]["demote"] if th[c]["demote"] is not None else "-",
                ev.at_thresholds[c]["remove_precision"],
                ev.at_thresholds[c]["remove_recall"],
                ev.at_thresholds[c]["review_precision"],
                ev.at_thresholds[c]["review_recall"],
            ]
            for c in ev.classes
        ],
    )
    if ev.slices:
        cols = list(next(iter(ev.slices.values())))
        bp.text("**Slices** (any-harm PR-AUC on the test days):")
        bp.table(
            ["slice", "posts", *cols],
            [[s, ev.slice_sizes[s], *(row.get(n) for n in cols)] for s, row in ev.slices.items()],
        )
