"""Step 5 on a labelled text file: the text models with the metrics of published baselines.

Per class: precision, recall and F1 (multi-class: the arg-max class; multi-label: each class's
probability >= 0.5), macro-F1 and weighted F1 (scikit-learn's definitions), one-vs-rest PR-AUC;
and for "any harm" (every class but the benign one) PR-AUC and ROC-AUC of the largest harm-class
score. The served model is the one with the best mean PR-AUC on the validation rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import f1_score, precision_recall_fscore_support

from mlsd.metrics import pr_auc, roc_auc
from mlsd.report import Blueprint
from mlsd.systems.harmful_content.evaluation import Thresholds, choose_thresholds
from mlsd.systems.harmful_content.features import Prepared


def _mean(values: list[float]) -> float:
    ok = [v for v in values if not math.isnan(v)]
    return float(np.mean(ok)) if ok else math.nan


def file_metrics(
    Y: np.ndarray, P: np.ndarray, classes: tuple[str, ...], benign: int | None, multilabel: bool
) -> dict[str, Any]:
    K = len(classes)
    if multilabel:
        truth, pred = Y, (P >= 0.5).astype(np.int64)
    else:
        truth, pred = Y.argmax(axis=1), P.argmax(axis=1)
    prec, rec, f1, support = precision_recall_fscore_support(
        truth, pred, labels=None if multilabel else list(range(K)), zero_division=0
    )
    per = {
        c: {
            "precision": float(prec[k]),
            "recall": float(rec[k]),
            "f1": float(f1[k]),
            "support": int(support[k]),
            "pr_auc": pr_auc(Y[:, k], P[:, k]),
        }
        for k, c in enumerate(classes)
    }
    harm = [k for k in range(K) if k != benign]
    anyy = Y[:, harm].max(axis=1)
    anyp = P[:, harm].max(axis=1)
    avg = "macro"
    return {
        "per_class": per,
        "macro_f1": float(f1_score(truth, pred, average=avg, zero_division=0)),
        "weighted_f1": float(f1_score(truth, pred, average="weighted", zero_division=0)),
        "mean_pr_auc": _mean([per[c]["pr_auc"] for c in classes]),
        "any_harm_pr_auc": pr_auc(anyy, anyp),
        "any_harm_roc_auc": roc_auc(anyy, anyp),
    }


@dataclass(frozen=True)
class FileEvaluation:
    classes: tuple[str, ...]
    scores: dict[str, dict[str, Any]]
    val_scores: dict[str, float]
    chosen: str
    thresholds: Thresholds

    def metrics(self) -> dict[str, Any]:
        return {
            "models": {
                n: {**s, "val_mean_pr_auc": self.val_scores[n]} for n, s in self.scores.items()
            },
            "oracle": None,
            "chosen_model": self.chosen,
            "thresholds": self.thresholds.to_dict(),
        }


def compute_file_eval(p: Prepared, scores: dict[str, dict[str, np.ndarray]]) -> FileEvaluation:
    Yv, Yt = p.Y[p.val], p.Y[p.test]
    test = {
        n: file_metrics(Yt, P, p.classes, p.benign, p.multilabel) for n, P in scores["test"].items()
    }
    val = {
        n: file_metrics(Yv, P, p.classes, p.benign, p.multilabel)["mean_pr_auc"]
        for n, P in scores["val"].items()
    }
    chosen = max(val, key=lambda n: (np.nan_to_num(val[n], nan=-1.0), n))
    return FileEvaluation(
        p.classes, test, val, chosen, choose_thresholds(Yv, scores["val"][chosen], p.classes)
    )


def report_file_eval(bp: Blueprint, ev: FileEvaluation) -> None:
    bp.text(
        "The text models on the file's test rows. Macro-F1 and weighted F1 as scikit-learn "
        "defines them; PR-AUC one-vs-rest per class; *any harm* is every class but the benign "
        f"one. Served: **{ev.chosen}** (best mean PR-AUC on the validation rows)."
    )
    bp.table(
        ["model", "macro-F1", "weighted F1", "mean PR-AUC", "any-harm PR-AUC", "any-harm ROC-AUC"],
        [
            [
                n,
                s["macro_f1"],
                s["weighted_f1"],
                s["mean_pr_auc"],
                s["any_harm_pr_auc"],
                s["any_harm_roc_auc"],
            ]
            for n, s in ev.scores.items()
        ],
    )
    m = ev.scores[ev.chosen]["per_class"]
    bp.table(
        ["class", "support", "precision", "recall", "F1", "PR-AUC"],
        [
            [c, m[c]["support"], m[c]["precision"], m[c]["recall"], m[c]["f1"], m[c]["pr_auc"]]
            for c in ev.classes
        ],
    )
