"""Re-ranking (book ch. 6, "Re-ranking"): business rules on top of the ranked list.

Remove what the user already watched (and anything ineligible), boost fresh videos, and
diversify: either a cap on videos per category in the top k, or maximal marginal relevance
(MMR: each pick trades its score against its similarity to what is already picked).
"""

from __future__ import annotations

import numpy as np


def freshness_boost(scores: np.ndarray, age_days: np.ndarray, boost: float) -> np.ndarray:
    """``score × (1 + boost · exp(-age / 2))``: a video uploaded today gains ``boost``."""
    return scores * (1.0 + boost * np.exp(-np.maximum(age_days, 0) / 2.0))


def category_cap(order: np.ndarray, categories: np.ndarray, k: int, cap: int) -> np.ndarray:
    """Walk ``order`` (best first), allowing at most ``cap`` videos per category in the top k.

    When the cap leaves fewer than ``k`` videos, the skipped ones fill the list in order.
    """
    counts: dict[object, int] = {}
    picked: list[int] = []
    skipped: list[int] = []
    for i in order.tolist():
        c = categories[i]
        if counts.get(c, 0) < cap:
            picked.append(i)
            counts[c] = counts.get(c, 0) + 1
        else:
            skipped.append(i)
        if len(picked) == k:
            break
    picked += skipped[: k - len(picked)]
    return np.asarray(picked, dtype=np.int64)


def mmr(scores: np.ndarray, emb: np.ndarray, k: int, lam: float = 0.7) -> np.ndarray:
    """Maximal marginal relevance over unit embeddings ``emb``: indices of the k picks."""
    n = len(scores)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    s = (scores - scores.min()) / max(float(np.ptp(scores)), 1e-12)
    sim = emb @ emb.T
    picked = [int(np.argmax(s))]
    max_sim = sim[picked[0]].copy()
    available = np.ones(n, dtype=bool)
    available[picked[0]] = False
    while len(picked) < min(k, n):
        value = np.where(available, lam * s - (1 - lam) * max_sim, -np.inf)
        j = int(np.argmax(value))
        picked.append(j)
        available[j] = False
        max_sim = np.maximum(max_sim, sim[j])
    return np.asarray(picked, dtype=np.int64)


def rerank(
    ids: np.ndarray,
    scores: np.ndarray,
    categories: np.ndarray,
    age_days: np.ndarray,
    k: int,
    *,
    watched: set[int] | None = None,
    method: str = "cap",
    cap: int = 3,
    boost: float = 0.3,
    emb: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The final top ``k``: ``(video ids, final scores)`` after filtering, boost, diversity."""
    keep = np.ones(len(ids), dtype=bool)
    if watched:
        keep &= ~np.isin(ids, np.fromiter(watched, np.int64, len(watched)))
    ids, scores, categories, age_days = ids[keep], scores[keep], categories[keep], age_days[keep]
    boosted = freshness_boost(scores, age_days, boost)
    if method == "cap":
        pick = category_cap(np.argsort(-boosted, kind="stable"), categories, k, cap)
    elif method == "mmr":
        if emb is None:
            raise ValueError("MMR re-ranking needs the candidates' embeddings")
        pick = mmr(boosted, emb[keep], k)
    elif method == "none":
        pick = np.argsort(-boosted, kind="stable")[:k]
    else:
        raise ValueError(f"unknown re-ranking method {method!r}; use cap, mmr or none")
    return ids[pick], boosted[pick]
