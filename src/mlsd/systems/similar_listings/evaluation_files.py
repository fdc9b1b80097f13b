"""Step 5 on a session click log (``--data sessions:PATH``): every click of the test sessions.

Every prefix of a test session is a case for the item that follows it (SR-GNN's protocol).
The chapter evaluates with the whole session, not only its last click, so each case is
answered twice:

* **whole session** (the headline): the recommendation for a prefix ``c_1 .. c_i`` scores
  every item by ``sum_j SESSION_DECAY^(i-j) * sim(c_j, item)`` over its last ``MAX_PREFIX``
  clicks (the latest click weighs most, earlier ones still count), each model's similarity as
  it is (co-occurrence counts, cosines, the skip-gram's score);
* **last item**: from ``c_i`` alone (the item-to-item carousel of the page being viewed).

In both the prefix's last item itself is not recommended. HR@20 is the share of cases whose next
item is among the 20 best, MRR@20 the mean reciprocal rank (0 beyond 20). A click log has no
bookings; the chapter's booked-listing rank is approximated by the **final-item rank**: every
click of a test session but the last, the rank of the session's final item among the items
ordered by similarity to that click (1 is best, ties half; lower is better). The decay is fixed
in advance (``SESSION_DECAY``), not chosen on the test sessions. There is no oracle on a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mlsd.report import Blueprint
from mlsd.systems.similar_listings.datasets import FileData
from mlsd.systems.similar_listings.features import Sessions
from mlsd.systems.similar_listings.model import ListingSimilarity, rank_of
from mlsd.systems.similar_listings.model_lineup import SKIPGRAM

K_FILE = 20
SESSION_DECAY = 0.5
MAX_PREFIX = 10  # the last clicks of a prefix that count (0.5^10 < 0.001)
CHUNK = 256  # cases at a time
MAX_ROWS = 2048  # prefix clicks scored at a time (a row of scores per click)


@dataclass(frozen=True)
class PrefixCases:
    """Every prefix of the test sessions: its clicks (CSR) and the item that follows it."""

    offsets: np.ndarray  # (C+1,)
    items: np.ndarray  # the prefixes' clicks, oldest first
    target: np.ndarray  # (C,)
    final_query: np.ndarray  # every click but the last of a session ...
    final_target: np.ndarray  # ... and the session's final item

    def __len__(self) -> int:
        return len(self.target)

    def last(self) -> np.ndarray:
        return self.items[self.offsets[1:] - 1]


def prefix_cases(test: Sessions) -> PrefixCases:
    offsets, items, target, fq, ft = [0], [], [], [], []
    for s in range(len(test)):
        c = [int(x) for x in test.clicks(s)]
        for i in range(1, len(c)):
            items += c[max(0, i - MAX_PREFIX) : i]
            offsets.append(len(items))
            target.append(c[i])
        fq += [x for x in c[:-1] if x != c[-1]]
        ft += [c[-1]] * sum(x != c[-1] for x in c[:-1])

    def arr(x: list[int]) -> np.ndarray:
        return np.asarray(x, np.int64)

    return PrefixCases(arr(offsets), arr(items), arr(target), arr(fq), arr(ft))


def session_scores(
    model: ListingSimilarity, cases: PrefixCases, lo: int, hi: int, decay: float
) -> np.ndarray:
    """``(hi - lo, N)`` scores of the prefixes ``lo .. hi - 1`` (``decay`` 0: the last item)."""
    a, b = int(cases.offsets[lo]), int(cases.offsets[hi])
    sims = model.similarity(cases.items[a:b]).astype(np.float64)
    case_of = np.repeat(np.arange(hi - lo), np.diff(cases.offsets[lo : hi + 1]))
    back = (cases.offsets[lo + 1 : hi + 1] - 1)[case_of] - np.arange(a, b)  # 0 for the last
    w = np.power(float(decay), back)  # 0 ** 0 == 1: decay 0 keeps the last item only
    out = np.zeros((hi - lo, sims.shape[1]))
    np.add.at(out, case_of, sims * w[:, None])
    return out


def next_item_scores(
    model: ListingSimilarity, cases: PrefixCases, decay: float, k: int = K_FILE
) -> dict[str, float]:
    """HR@k and MRR@k of the next item, the prefixes scored by :func:`session_scores`."""
    pos = np.zeros(len(cases), np.int64)
    lo = 0
    while lo < len(cases):
        hi = min(lo + CHUNK, len(cases))
        cap = int(np.searchsorted(cases.offsets, cases.offsets[lo] + MAX_ROWS, side="right"))
        hi = max(lo + 1, min(hi, cap - 1))
        s = session_scores(model, cases, lo, hi, decay)
        s[np.arange(hi - lo), cases.last()[lo:hi]] = -np.inf
        t = cases.target[lo:hi]
        st = s[np.arange(hi - lo), t][:, None]
        ids = np.arange(s.shape[1])[None, :]
        rank = 1 + (s > st).sum(1) + ((s == st) & (ids < t[:, None])).sum(1)  # ties: by id
        pos[lo:hi] = np.where(np.isfinite(st[:, 0]) & (rank <= k), rank, 0)
        lo = hi
    return {
        f"hr@{k}": float((pos > 0).mean()),
        f"mrr@{k}": float(np.where(pos > 0, 1.0 / np.maximum(pos, 1), 0.0).mean()),
    }


@dataclass(frozen=True)
class FileEvaluation:
    scores: dict[str, dict[str, float | None]]
    cases: int
    final_cases: int
    chosen_model: str

    def metrics(self) -> dict[str, Any]:
        return {
            "models": self.scores,
            "oracle": None,
            "chosen_model": self.chosen_model,
            "evaluation": {
                "protocol": "next item after every test prefix, from the whole prefix "
                f"(weights {SESSION_DECAY}^distance) and from its last item",
                "k": K_FILE,
                "session_decay": SESSION_DECAY,
                "cases": self.cases,
                "final_item_cases": self.final_cases,
            },
        }

    def summary(self) -> str:
        return (
            "; ".join(
                f"{n} HR@{K_FILE} {s[f'hr@{K_FILE}']:.3f} MRR@{K_FILE} {s[f'mrr@{K_FILE}']:.3f}"
                for n, s in self.scores.items()
                if s[f"hr@{K_FILE}"] is not None
            )
            + f" ({self.cases:,} cases, whole session)"
        )


def evaluate_file(models: dict[str, ListingSimilarity], data: FileData) -> FileEvaluation:
    cases = prefix_cases(data.test)
    region = data.listings["region"].to_numpy()
    scores: dict[str, dict[str, float | None]] = {}
    for name, model in models.items():
        if len(cases) == 0:
            scores[name] = {f"hr@{K_FILE}": None, f"mrr@{K_FILE}": None}
            continue
        whole = next_item_scores(model, cases, SESSION_DECAY)
        last = next_item_scores(model, cases, 0.0)
        ranks = rank_of(model, cases.final_query, cases.final_target, region)
        row: dict[str, float | None] = dict(whole)
        scores[name] = row | {
            f"last_item_hr@{K_FILE}": last[f"hr@{K_FILE}"],
            f"last_item_mrr@{K_FILE}": last[f"mrr@{K_FILE}"],
            "final_item_rank": float(ranks.mean()) if len(ranks) else None,
            f"final_item_hr@{K_FILE}": float((ranks <= K_FILE).mean()) if len(ranks) else None,
        }
    chosen = SKIPGRAM if SKIPGRAM in models else next(iter(models))
    return FileEvaluation(scores, len(cases), len(cases.final_query), chosen)


def report_file_evaluation(bp: Blueprint, result: FileEvaluation) -> None:
    bp.section("Offline evaluation (every click of the file's test sessions)")
    bp.text(
        f"{result.cases:,} next-item cases: every prefix of a test session, the item that "
        f"follows it as the target. Whole session: each model scores the items by its "
        f"similarity to every click of the prefix, weighted {SESSION_DECAY}^(clicks ago); last "
        f"item: by the similarity to the prefix's last click only. Final-item rank "
        f"({result.final_cases:,} cases): every click of a session ranks the session's final "
        "item (the chapter's booked-listing rank, without bookings); lower is better."
    )
    k = K_FILE
    bp.table(
        [
            "model",
            f"HR@{k} session",
            f"MRR@{k} session",
            f"HR@{k} last item",
            f"MRR@{k} last item",
            "final-item rank ↓",
        ],
        [
            [
                n,
                s[f"hr@{k}"],
                s[f"mrr@{k}"],
                s.get(f"last_item_hr@{k}"),
                s.get(f"last_item_mrr@{k}"),
                s.get("final_item_rank"),
            ]
            for n, s in result.scores.items()
        ],
    )
