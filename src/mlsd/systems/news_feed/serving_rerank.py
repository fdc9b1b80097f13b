"""Re-ranking, the chapter's last stage: diversity, freshness and the demotion hook.

The ranker's scores are turned into within-request percentiles (so the rules mean the same for
every ranker, whatever its score's units), then

* **freshness**: ``+ freshness_weight * exp(-age_h / freshness_h)``;
* **demotion hook**: posts another system flagged (misleading, harmful) lose ``demote_by``
  (the hook is a boolean per candidate: the world's flags offline, plus the posts flagged through
  the API at serving);
* **diversity**, greedily from the top: at most ``max_per_author`` posts of one author and no
  more than ``max_media_run`` posts of one media type in a row; a post that breaks a rule waits
  until one that does not is placed (or nothing else is left).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class RerankConfig:
    max_per_author: int = 2
    max_media_run: int = 3
    freshness_weight: float = 0.1
    freshness_h: float = 24.0
    demote_by: float = 0.5

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def adjusted_scores(
    score: np.ndarray, age_h: np.ndarray, demoted: np.ndarray, config: RerankConfig
) -> np.ndarray:
    """Percentile of ``score`` within the request, plus freshness, minus the demotion."""
    n = len(score)
    if n == 0:
        return np.zeros(0)
    pct = np.empty(n)
    pct[np.argsort(score, kind="stable")] = (np.arange(n) + 0.5) / n
    fresh = config.freshness_weight * np.exp(-np.maximum(age_h, 0.0) / config.freshness_h)
    return np.asarray(pct + fresh - config.demote_by * np.asarray(demoted, np.float64))


def rerank(
    score: np.ndarray,
    author: np.ndarray,
    media: np.ndarray,
    age_h: np.ndarray,
    demoted: np.ndarray,
    config: RerankConfig,
    k: int | None = None,
) -> np.ndarray:
    """The order (indices into the candidates) of one request after re-ranking; the first
    ``k`` (all by default)."""
    adjusted = adjusted_scores(score, age_h, demoted, config)
    order = list(np.argsort(-adjusted, kind="stable"))
    k = len(order) if k is None else min(k, len(order))
    picked: list[int] = []
    per_author: dict[int, int] = {}
    while order and len(picked) < k:
        run_media = media[picked[-1]] if picked else None
        run = 0
        for i in reversed(picked):
            if media[i] != run_media:
                break
            run += 1
        choice = next(
            (
                j
                for j, i in enumerate(order)
                if per_author.get(int(author[i]), 0) < config.max_per_author
                and not (media[i] == run_media and run >= config.max_media_run)
            ),
            0,  # every rule broken: the best left
        )
        i = order.pop(choice)
        picked.append(int(i))
        per_author[int(author[i])] = per_author.get(int(author[i]), 0) + 1
    return np.asarray(picked, np.int64)


def rerank_sessions(
    cand: pd.DataFrame,
    score: np.ndarray,
    author: np.ndarray,
    media: np.ndarray,
    age_h: np.ndarray,
    demoted: np.ndarray,
    config: RerankConfig,
    k: int,
) -> np.ndarray:
    """A policy score per candidate that sorts each session (``cand["session"]``) in its
    re-ranked order: ``-position`` for its top ``k``, below them the rest by score."""
    out = np.full(len(cand), -1e9)
    sessions = cand["session"].to_numpy()
    bounds = np.flatnonzero(np.r_[True, sessions[1:] != sessions[:-1], True])
    for lo, hi in itertools.pairwise(bounds):
        rows = np.arange(lo, hi)
        top = rerank(score[rows], author[rows], media[rows], age_h[rows], demoted[rows], config, k)
        out[rows[top]] = -np.arange(len(top), dtype=np.float64)
    return out
