"""Step 5 on a session click log (``--data sessions:PATH``): the next-item protocol.

Every prefix of a test session is a case for the item that follows it (SR-GNN's protocol).
The item-to-item models here answer from the prefix's last item: the 20 items most similar to
it (itself excluded) are the recommendation; HR@20 is the share of cases whose next item is
among them, MRR@20 the mean reciprocal rank (0 beyond 20). There is no oracle on a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mlsd.report import Blueprint
from mlsd.systems.similar_listings.datasets import FileData
from mlsd.systems.similar_listings.model import ListingSimilarity, region_top_k
from mlsd.systems.similar_listings.model_lineup import SKIPGRAM

K_FILE = 20


@dataclass(frozen=True)
class FileEvaluation:
    scores: dict[str, dict[str, float]]
    cases: int
    chosen_model: str

    def metrics(self) -> dict[str, Any]:
        return {
            "models": self.scores,
            "oracle": None,
            "chosen_model": self.chosen_model,
            "evaluation": {
                "protocol": "next item after every test prefix",
                "k": K_FILE,
                "cases": self.cases,
            },
        }

    def summary(self) -> str:
        return (
            "; ".join(
                f"{n} HR@{K_FILE} {s[f'hr@{K_FILE}']:.3f} MRR@{K_FILE} {s[f'mrr@{K_FILE}']:.3f}"
                for n, s in self.scores.items()
            )
            + f" ({self.cases:,} cases)"
        )


def evaluate_file(models: dict[str, ListingSimilarity], data: FileData) -> FileEvaluation:
    test = data.test
    q, t = [], []
    for s in range(len(test)):
        c = test.clicks(s)
        q += list(c[:-1])
        t += list(c[1:])
    query, target = np.asarray(q, np.int64), np.asarray(t, np.int64)
    region = data.listings["region"].to_numpy()
    scores: dict[str, dict[str, float]] = {}
    for name, model in models.items():
        if len(query) == 0:
            scores[name] = {f"hr@{K_FILE}": float("nan"), f"mrr@{K_FILE}": float("nan")}
            continue
        top = region_top_k(model, query, region, K_FILE, chunk=256)
        hit = top == target[:, None]
        pos = np.where(hit.any(1), hit.argmax(1) + 1, 0)
        scores[name] = {
            f"hr@{K_FILE}": float(hit.any(1).mean()),
            f"mrr@{K_FILE}": float(np.where(pos > 0, 1.0 / np.maximum(pos, 1), 0.0).mean()),
        }
    chosen = SKIPGRAM if SKIPGRAM in models else next(iter(models))
    return FileEvaluation(scores, len(query), chosen)


def report_file_evaluation(bp: Blueprint, result: FileEvaluation) -> None:
    bp.section("Offline evaluation (next item on the file's test sessions)")
    bp.text(
        f"{result.cases:,} cases: every prefix of a test session, the item that follows it as "
        f"the target; each model recommends the {K_FILE} items most similar to the prefix's "
        "last item."
    )
    bp.table(
        ["model", f"HR@{K_FILE}", f"MRR@{K_FILE}"],
        [[n, s[f"hr@{K_FILE}"], s[f"mrr@{K_FILE}"]] for n, s in result.scores.items()],
    )
