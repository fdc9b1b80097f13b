"""Step 5 of the book, offline evaluation: the metrics every system reports.

Three families, each a set of pure functions over numpy arrays:

* **Classification and calibration** (chapter "Ad Click Prediction on Social Platforms": the
  chapter's offline metric is normalized cross entropy, NCE; a well-calibrated model is what an
  ad auction needs). ``y`` is an int array of 0/1 labels, ``p`` the predicted probabilities.
* **Ranking and retrieval** (chapters "Visual Search", "Video Recommendation", "Event
  Recommendation", ...): precision, recall, MAP, nDCG and MRR at ``k``, plus catalog coverage and
  intra-list diversity. Definitions follow microsoft/recommenders (``python_evaluation``):
  precision divides by ``k``; AP@k divides by ``min(k, |relevant|)``; the mean is over the users
  that have at least one relevant item; a user with no recommendations scores 0.
* **Serving latency**: percentiles of measured samples (step 6's latency budget).

Undefined values (AUC of a single-class sample, NCE of a constant label) come back as ``nan``,
never as an exception, so one degenerate slice does not break a whole report.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from typing import Literal, TypeVar

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

_EPS = 1e-15

U = TypeVar("U", bound=Hashable)
R = TypeVar("R", bound=Collection[int])


def _check_binary(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate labels and probabilities; return them as int64 / float64 1-d arrays."""
    y_arr = np.asarray(y).ravel()
    p_arr = np.asarray(p, dtype=np.float64).ravel()
    if y_arr.shape != p_arr.shape:
        raise ValueError(f"y has {y_arr.size} values but p has {p_arr.size}")
    if y_arr.size == 0:
        raise ValueError("y and p are empty: no metric is defined on zero examples")
    if not np.isin(y_arr, (0, 1)).all():
        bad = np.flatnonzero(~np.isin(y_arr, (0, 1)))[0]
        raise ValueError(f"y must hold only 0/1 labels; y[{bad}] = {y_arr[bad].item()!r}")
    if not np.isfinite(p_arr).all() or (p_arr < 0).any() or (p_arr > 1).any():
        bad = np.flatnonzero(~(np.isfinite(p_arr) & (p_arr >= 0) & (p_arr <= 1)))[0]
        raise ValueError(f"p must be probabilities in [0, 1]; p[{bad}] = {p_arr[bad].item()!r}")
    return y_arr.astype(np.int64), p_arr


def _binary_entropy(rate: float) -> float:
    if not 0.0 < rate < 1.0:
        return math.nan
    return -(rate * math.log(rate) + (1.0 - rate) * math.log(1.0 - rate))


# --------------------------------------------------------------------------------------------
# classification and calibration
# --------------------------------------------------------------------------------------------


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean binary cross entropy (natural log); ``p`` is clipped to ``[1e-15, 1 - 1e-15]``."""
    y_arr, p_arr = _check_binary(y, p)
    q = np.clip(p_arr, _EPS, 1.0 - _EPS)
    return float(-np.mean(y_arr * np.log(q) + (1 - y_arr) * np.log1p(-q)))


def normalized_cross_entropy(y: np.ndarray, p: np.ndarray, base_rate: float | None = None) -> float:
    """The book's NCE: log loss divided by the entropy of the background CTR.

    NCE < 1 means the model beats always predicting the background rate (He et al., 2014,
    "Practical Lessons from Predicting Clicks on Ads at Facebook"). ``base_rate`` defaults to
    the sample's own positive rate; pass the training rate to compare test sets fairly.
    Returns ``nan`` when the base rate is 0 or 1 (the entropy is 0).
    """
    y_arr, p_arr = _check_binary(y, p)
    rate = float(y_arr.mean()) if base_rate is None else float(base_rate)
    entropy = _binary_entropy(rate)
    if math.isnan(entropy):
        return math.nan
    return log_loss(y_arr, p_arr) / entropy


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve; ``nan`` when ``y`` holds a single class."""
    y_arr, p_arr = _check_binary(y, p)
    if np.unique(y_arr).size < 2:
        return math.nan
    return float(roc_auc_score(y_arr, p_arr))


def pr_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the precision-recall curve as average precision; ``nan`` without positives."""
    y_arr, p_arr = _check_binary(y, p)
    if y_arr.sum() == 0:
        return math.nan
    return float(average_precision_score(y_arr, p_arr))


def calibration_ratio(y: np.ndarray, p: np.ndarray) -> float:
    """Observed over expected positives, ``sum(y) / sum(p)``: 1 is calibrated.

    Above 1 the model under-predicts (more clicks happened than it expected), below 1 it
    over-predicts. ``nan`` when the model expects no positives at all.
    """
    y_arr, p_arr = _check_binary(y, p)
    expected = float(p_arr.sum())
    if expected <= 0.0:
        return math.nan
    return float(y_arr.sum()) / expected


def _equal_mass_bins(p: np.ndarray, n_bins: int) -> list[np.ndarray]:
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    order = np.argsort(p, kind="stable")
    return [idx for idx in np.array_split(order, min(n_bins, p.size)) if idx.size]


def reliability_curve(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Reliability diagram data over equal-mass bins (sorted by ``p``, split into equal counts).

    Returns one row per bin: ``bin``, ``mean_predicted``, ``observed_rate``, ``count``.
    Equal-mass bins suit skewed click probabilities, where equal-width bins leave most empty.
    """
    y_arr, p_arr = _check_binary(y, p)
    rows = [
        (i, float(p_arr[idx].mean()), float(y_arr[idx].mean()), int(idx.size))
        for i, idx in enumerate(_equal_mass_bins(p_arr, n_bins))
    ]
    return pd.DataFrame(rows, columns=["bin", "mean_predicted", "observed_rate", "count"])


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """ECE: the count-weighted mean ``|observed_rate - mean_predicted|`` over equal-mass bins."""
    curve = reliability_curve(y, p, n_bins)
    weights = curve["count"].to_numpy(dtype=np.float64)
    gaps = (curve["observed_rate"] - curve["mean_predicted"]).abs().to_numpy()
    return float(np.sum(weights * gaps) / weights.sum())


def share_of_achievable_gain(
    baseline_logloss: float, model_logloss: float, oracle_logloss: float
) -> float:
    """How much of the gap between a baseline and the oracle a model closes.

    ``(baseline - model) / (baseline - oracle)``: 0 is no better than the baseline, 1 matches
    the ground-truth probabilities of the simulated world. ``nan`` when baseline and oracle are
    (nearly) equal, because there is then nothing to gain.
    """
    denom = baseline_logloss - oracle_logloss
    if not math.isfinite(denom) or abs(denom) < 1e-12:
        return math.nan
    return (baseline_logloss - model_logloss) / denom


def classification_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Every classification metric above, keyed ``logloss nce roc_auc pr_auc calibration ece``."""
    y_arr, p_arr = _check_binary(y, p)
    return {
        "logloss": log_loss(y_arr, p_arr),
        "nce": normalized_cross_entropy(y_arr, p_arr),
        "roc_auc": roc_auc(y_arr, p_arr),
        "pr_auc": pr_auc(y_arr, p_arr),
        "calibration": calibration_ratio(y_arr, p_arr),
        "ece": expected_calibration_error(y_arr, p_arr),
    }


# --------------------------------------------------------------------------------------------
# ranking and retrieval
# --------------------------------------------------------------------------------------------


def _top_k(recommended: Sequence[int], k: int) -> Sequence[int]:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    top = recommended[:k]
    if len(set(top)) != len(top):
        raise ValueError(f"recommended list has duplicate items in its top {k}: {list(top)}")
    return top


def precision_at_k(recommended: Sequence[int], relevant: Collection[int], k: int) -> float:
    """Relevant items among the top ``k``, divided by ``k`` (a short list is not rewarded)."""
    top = _top_k(recommended, k)
    return sum(item in relevant for item in top) / k


def recall_at_k(recommended: Sequence[int], relevant: Collection[int], k: int) -> float:
    """Relevant items among the top ``k``, divided by ``|relevant|``; ``nan`` if none relevant."""
    top = _top_k(recommended, k)
    if not relevant:
        return math.nan
    return sum(item in relevant for item in top) / len(relevant)


def hit_rate_at_k(recommended: Sequence[int], relevant: Collection[int], k: int) -> float:
    """1 when at least one relevant item is in the top ``k``, else 0."""
    top = _top_k(recommended, k)
    return float(any(item in relevant for item in top))


def average_precision_at_k(recommended: Sequence[int], relevant: Collection[int], k: int) -> float:
    """AP@k: the sum of precision@i at each relevant rank i, divided by ``min(k, |relevant|)``.

    This is microsoft/recommenders' ``map_at_k`` normalisation (from Spark MLlib), so a perfect
    top-k list scores 1 even when more than ``k`` items are relevant. ``nan`` if none relevant.
    """
    top = _top_k(recommended, k)
    if not relevant:
        return math.nan
    hits, total = 0, 0.0
    for rank, item in enumerate(top, start=1):
        if item in relevant:
            hits += 1
            total += hits / rank
    return total / min(k, len(relevant))


def ndcg_at_k(
    recommended: Sequence[int],
    relevance: Mapping[int, float],
    k: int,
    gain: Literal["linear", "exponential"] = "linear",
) -> float:
    """Graded nDCG@k with the ``log2(rank + 1)`` discount (rank from 1).

    ``relevance`` maps item to grade (missing items have grade 0). ``gain="linear"`` uses the
    grade itself (recommenders' ``score_type="raw"``); ``"exponential"`` uses ``2**grade - 1``.
    The ideal DCG sorts all graded items; ``nan`` when no item has a positive grade.
    """
    top = _top_k(recommended, k)

    def g(grade: float) -> float:
        return 2.0**grade - 1.0 if gain == "exponential" else float(grade)

    dcg = sum(g(relevance.get(item, 0.0)) / math.log2(rank + 1) for rank, item in enumerate(top, 1))
    ideal = sorted((g(v) for v in relevance.values() if v > 0), reverse=True)[:k]
    idcg = sum(v / math.log2(rank + 1) for rank, v in enumerate(ideal, 1))
    if idcg <= 0.0:
        return math.nan
    return dcg / idcg


def reciprocal_rank(recommended: Sequence[int], relevant: Collection[int], k: int) -> float:
    """1 / rank of the first relevant item in the top ``k`` (0 when none); its mean is MRR."""
    top = _top_k(recommended, k)
    for rank, item in enumerate(top, start=1):
        if item in relevant:
            return 1.0 / rank
    return 0.0


def mean_over_users(
    metric: Callable[[Sequence[int], R, int], float],
    recs: Mapping[U, Sequence[int]],
    truth: Mapping[U, R],
    k: int,
) -> float:
    """Mean of a per-user ranking metric (MAP@k, mean nDCG@k, MRR, ...).

    Averages over the users in ``truth`` that have at least one relevant item; a user missing
    from ``recs`` scores as an empty list. ``nan`` when no user has a relevant item.
    """
    scores = [metric(recs.get(user, []), rel, k) for user, rel in truth.items() if len(rel) > 0]
    if not scores:
        return math.nan
    return float(np.mean(scores))


def catalog_coverage(recs: Mapping[U, Sequence[int]], n_items: int) -> float:
    """Share of the catalog's ``n_items`` that appears in at least one user's list."""
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    shown: set[int] = set()
    for items in recs.values():
        shown.update(items)
    return len(shown) / n_items


def intra_list_diversity(
    recs: Mapping[U, Sequence[int]], item_category: Mapping[int, Hashable]
) -> float:
    """Mean over users of the share of item pairs in a list that differ in category.

    0 when every list is a single category, 1 when no two items share one. Lists with fewer
    than two items are skipped; ``nan`` if none remain. Raises ``KeyError`` naming an item that
    has no category.
    """
    scores: list[float] = []
    for user, items in recs.items():
        if len(items) < 2:
            continue
        missing = [i for i in items if i not in item_category]
        if missing:
            raise KeyError(f"item_category has no category for item {missing[0]} (user {user})")
        cats = [item_category[i] for i in items]
        n = len(cats)
        same = sum(cats[a] == cats[b] for a in range(n) for b in range(a + 1, n))
        scores.append(1.0 - same / (n * (n - 1) / 2))
    if not scores:
        return math.nan
    return float(np.mean(scores))


# --------------------------------------------------------------------------------------------
# serving latency
# --------------------------------------------------------------------------------------------


def latency_summary(samples_ms: Sequence[float] | np.ndarray) -> dict[str, float]:
    """``p50 p90 p99 mean max n`` of latency samples in milliseconds (book step 6 budgets)."""
    arr = np.asarray(samples_ms, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError("latency_summary needs at least one sample")
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise ValueError("latency samples must be finite and non-negative milliseconds")
    p50, p90, p99 = np.percentile(arr, [50, 90, 99])
    return {
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "mean": float(arr.mean()),
        "max": float(arr.max()),
        "n": float(arr.size),
    }
