"""What each label source is worth: a small hand-labelled sample against natural labels.

* **hand-labelled sample**: a seeded tenth of the training posts, labelled by the policy team
  (accurate, costly);
* **natural labels**: every training post whose reports are in (a week after it went up, so the
  last training week has none yet; half the training days in the tiny world), positive for a
  class when it got at least :data:`MIN_REPORTS` reports and most reporters named that class
  (noisy: reporters pick the wrong reason, or report benign posts);
* **all hand labels**: every training post hand-labelled (what the line-up trained on).

TF-IDF + logistic regression and the early-fusion multi-task network are trained on each and
scored on the test days against the true labels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.systems.harmful_content import CLASSES
from mlsd.systems.harmful_content.evaluation import class_metrics
from mlsd.systems.harmful_content.features import Prepared
from mlsd.systems.harmful_content.model import Reps, make_classifier
from mlsd.systems.harmful_content.model_text import TfidfLogistic
from mlsd.systems.harmful_content.world import HarmWorld

HAND_SHARE = 0.10
MIN_REPORTS = 2
REPORT_DELAY_DAYS = 7


def natural_labels(world: HarmWorld, rows: np.ndarray) -> np.ndarray:
    posts = world.posts.iloc[rows]
    reported = posts["reports_total"].to_numpy() >= MIN_REPORTS
    reason = posts["report_reason"].to_numpy()
    return np.stack([reported & (reason == c) for c in range(len(CLASSES))], axis=1).astype(
        np.int64
    )


@dataclass(frozen=True)
class LabelSources:
    rows: dict[str, int]
    scores: dict[str, dict[str, float]]  # source -> model -> mean PR-AUC on test
    natural_quality: dict[str, float]  # precision / recall of natural labels against the truth

    def metrics(self) -> dict[str, Any]:
        return {
            "label_sources": {
                "rows": self.rows,
                "mean_pr_auc": self.scores,
                "natural_label_quality": self.natural_quality,
            }
        }


def compare_label_sources(
    world: HarmWorld, p: Prepared, reps: dict[str, Reps], seed: int, epochs: int = 12
) -> LabelSources:
    train = p.train
    Y_true = p.Y[train]
    day = world.posts["day"].to_numpy()[train]
    r = rng(seed, "harmful-content/hand-sample")
    hand = np.flatnonzero(r.random(len(train)) < HAND_SHARE)
    end = p.days["train"][1]
    cutoff = end - min(REPORT_DELAY_DAYS, end // 2)  # the tiny world has only a few days
    settled = np.flatnonzero(day < cutoff)
    nat = natural_labels(world, train)
    sources = {
        "hand-labelled sample": (hand, Y_true[hand]),
        "natural labels (reports)": (settled, nat[settled]),
        "all hand labels": (np.arange(len(train)), Y_true),
    }
    Yt = p.Y[p.test]
    scores: dict[str, dict[str, float]] = {}
    for name, (idx, Y) in sources.items():
        sub = replace(reps["train"].take(idx), lex=None)  # no TF-IDF fitted on other labels
        tfidf = TfidfLogistic().fit(sub.texts, Y)
        mt = make_classifier("early_multi_task", seed, 1, epochs).fit(sub.early(), Y)
        scores[name] = {
            "tfidf_lr": class_metrics(Yt, tfidf.predict_proba(reps["test"].texts), CLASSES)[
                "mean_pr_auc"
            ],
            "early_multi_task": class_metrics(
                Yt, mt.predict_proba(replace(reps["test"], lex=None).early()), CLASSES
            )["mean_pr_auc"],
        }
    tp = int((nat[settled] & Y_true[settled]).sum())
    quality = {
        "precision": tp / max(int(nat[settled].sum()), 1),
        "recall": tp / max(int(Y_true[settled].sum()), 1),
    }
    rows = {k: len(v[0]) for k, v in sources.items()}
    return LabelSources(rows, scores, quality)


def report_label_sources(bp: Blueprint, ls: LabelSources) -> None:
    q = ls.natural_quality
    bp.text(
        "**What each label source is worth** (mean PR-AUC on the test days, true labels). "
        f"Natural labels (>= {MIN_REPORTS} reports, the majority reason) arrive a week late and "
        f"agree with the policy team's judgement at precision {q['precision']:.2f} and recall "
        f"{q['recall']:.2f}. The image CNN inside early fusion was trained on all hand labels."
    )
    bp.table(
        ["label source", "training posts", "TF-IDF + LR", "early fusion, multi-task"],
        [[s, ls.rows[s], v["tfidf_lr"], v["early_multi_task"]] for s, v in ls.scores.items()],
    )
