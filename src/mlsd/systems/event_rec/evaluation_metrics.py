"""Per-session ranking metrics of the offline evaluation: nDCG@10, MAP@10, MRR, precision and
recall at k, averaged over the sessions (a user's list) with at least one positive; the paired
difference of two rankers on the same sessions; recall of new events."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

KS = (5, 10)


def ranking_metrics(
    session: np.ndarray, y: np.ndarray, s: np.ndarray, mask: np.ndarray | None = None
) -> dict[str, float]:
    """Per-session ranking metrics of scores ``s``, averaged over sessions with a positive (and,
    with ``mask``, over those sessions only)."""
    g = per_session(session, y, s, mask)
    if len(g) == 0:
        return {"sessions": 0}
    out = {
        "ndcg@10": float(g["ndcg@10"].mean()),
        "map@10": float(g["map@10"].mean()),
        "mrr": float(g["rr"].mean()),
        "sessions": len(g),
    }
    for k in KS:
        out[f"precision@{k}"] = float(np.mean(g[f"top{k}"] / k))
        out[f"recall@{k}"] = float(np.mean(g[f"top{k}"] / g["npos"]))
    return out


def per_session(
    session: np.ndarray, y: np.ndarray, s: np.ndarray, mask: np.ndarray | None = None
) -> pd.DataFrame:
    """One row per session with a positive: ``npos``, ``ndcg@10``, ``map@10``, ``rr``, hits.
    Within a session, rows are ranked by score, ties in row order (a stable sort)."""
    session = np.asarray(session)
    order = np.lexsort((-np.asarray(s, np.float64), session))
    sess, yy = session[order], np.asarray(y, np.int64)[order]
    ids, starts = np.unique(sess, return_index=True)
    if len(ids) == 0:
        return pd.DataFrame(columns=["npos", "dcg", "ap", "rr", "ndcg@10", "map@10"])
    group_start = np.repeat(starts, np.diff(np.r_[starts, len(sess)]))
    rank = np.arange(len(sess)) - group_start + 1
    cum = np.cumsum(yy)
    hits = cum - np.r_[0, cum][group_start]  # positives up to and including this row
    top10 = rank <= 10
    cols = {
        "npos": np.add.reduceat(yy, starts),
        "dcg": np.add.reduceat(np.where(top10, yy / np.log2(rank + 1), 0.0), starts),
        "ap": np.add.reduceat(np.where(top10 & (yy == 1), hits / rank, 0.0), starts),
        "rr": np.add.reduceat(np.where((yy == 1) & (hits == 1), 1.0 / rank, 0.0), starts),
        **{f"top{k}": np.add.reduceat(np.where(rank <= k, yy, 0), starts) for k in KS},
    }
    g = pd.DataFrame(cols, index=pd.Index(ids, name="session"))
    g = g[g["npos"] > 0]
    if mask is not None:
        g = g[g.index.isin(np.unique(session[mask]))]
    ideal_cum = np.cumsum(1.0 / np.log2(np.arange(2, 12)))
    idcg = ideal_cum[np.minimum(g["npos"].to_numpy(), 10) - 1] if len(g) else 0.0
    g["ndcg@10"] = g["dcg"] / idcg
    g["map@10"] = g["ap"] / np.minimum(g["npos"], 10)
    return g


def paired_difference(a: pd.DataFrame, b: pd.DataFrame, metric: str) -> dict[str, float]:
    """Mean per-session difference ``a - b`` of ``metric`` with a 95% normal CI (the sessions
    are the same, so the comparison is paired)."""
    d = (a[metric] - b[metric].reindex(a.index)).to_numpy()
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else math.nan
    mean = float(d.mean()) if len(d) else math.nan
    return {"diff": mean, "ci_low": mean - 1.96 * se, "ci_high": mean + 1.96 * se}


def new_event_recall(session: np.ndarray, y: np.ndarray, s: np.ndarray, new: np.ndarray) -> float:
    """Share of the positives that are events in their first day which land in the top 10."""
    df = pd.DataFrame({"session": session, "y": y, "s": s, "new": new})
    df = df.sort_values(["session", "s"], ascending=[True, False], kind="stable")
    df["rank"] = df.groupby("session").cumcount() + 1
    pos = df[(df["y"] == 1) & df["new"]]
    return float((pos["rank"] <= 10).mean()) if len(pos) else math.nan
