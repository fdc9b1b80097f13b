"""Step 3, before features: exploratory data analysis of the table a system's models learn from.

The book asks for a look at the data before any feature is built: what each column holds, how
much of it is missing, how the label is balanced, and whether a column predicts the label *too*
well (a leak: a column written after the label, or the label itself under another name).
:func:`profile_frame` computes all of it on a seeded uniform sample of at most ``max_rows`` rows:

* per column: dtype, kind (numeric or categorical), missing share, cardinality and a distribution
  summary (mean, standard deviation, quantiles for numbers; the most frequent value and its share
  for categories);
* the label's balance (count and share per class);
* a leakage check per column: the column is cut into codes (its categories, or quantile bins of
  a number, missing values a code of their own), each code is replaced by the label rate of the
  *other* folds (out-of-fold target encoding, so a unique id cannot memorise its row), and the
  encoded column is scored against the label by ROC-AUC (``max(auc, 1 - auc)``) and by mutual
  information as a share of the label's entropy. A column past either threshold is flagged.

Columns the system names as ground truth (the world's true probability, never a feature) are
profiled and scored, but reported as the ceiling rather than flagged. The result,
:class:`EdaResult`, is frozen and typed; ``metrics()`` is ``{"eda": ...}`` in ``metrics.json``;
:func:`report_eda` writes the blueprint's section with two figures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from mlsd.data import duckdb_query
from mlsd.rng import rng

if TYPE_CHECKING:
    from mlsd.report import Blueprint

MAX_ROWS = 200_000
AUC_FLAG = 0.9  # a single column ranking the label this well is suspicious
MI_FLAG = 0.5  # ... or explaining half of the label's entropy on its own
N_BINS = 32  # quantile bins of a numeric column for the leakage check
N_FOLDS = 5
SMOOTHING = 20.0  # pseudo-rows of the prior in the out-of-fold label rate
MIN_MINORITY = 30  # rows of the rarer class below which nothing is flagged


@dataclass(frozen=True)
class ColumnProfile:
    """One column of the profiled table."""

    name: str
    dtype: str
    kind: Literal["numeric", "categorical"]
    missing_share: float
    cardinality: int  # distinct non-missing values
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    p50: float | None = None
    p99: float | None = None
    max: float | None = None
    top: str | None = None  # the most frequent value (categorical)
    top_share: float | None = None

    def summary(self) -> str:
        """The distribution in a few words, for the blueprint's table."""
        if self.kind == "numeric":
            if self.mean is None:
                return "all missing"
            return (
                f"mean {self.mean:.4g}, sd {self.std:.3g}; min {self.min:.4g}, "
                f"median {self.p50:.4g}, p99 {self.p99:.4g}, max {self.max:.4g}"
            )
        if self.top is None:
            return "all missing"
        return f"top {self.top!s:.24} ({self.top_share:.1%})"


@dataclass(frozen=True)
class LeakageCheck:
    """How well one column alone predicts the label (out of fold)."""

    column: str
    roc_auc: float  # max(auc, 1 - auc) of the out-of-fold encoded column
    mi_share: float  # mutual information with the label / the label's entropy
    flagged: bool
    ground_truth: bool = False  # the world's truth, never a feature: the ceiling, not a leak


@dataclass(frozen=True)
class EdaResult:
    """The exploratory data analysis of one table."""

    table: str
    label: str
    rows_total: int
    rows_profiled: int
    label_counts: tuple[tuple[str, int], ...]  # (class, rows) in the profiled rows
    columns: tuple[ColumnProfile, ...]
    leakage: tuple[LeakageCheck, ...]
    auc_flag: float = AUC_FLAG
    mi_flag: float = MI_FLAG

    @property
    def flagged(self) -> tuple[str, ...]:
        return tuple(c.column for c in self.leakage if c.flagged)

    @property
    def positive_rate(self) -> float:
        total = sum(n for _, n in self.label_counts)
        pos = sum(n for v, n in self.label_counts if v in ("1", "True", "true"))
        return pos / total if total else math.nan

    def metrics(self) -> dict[str, Any]:
        return {
            "eda": {
                "table": self.table,
                "label": self.label,
                "rows_total": self.rows_total,
                "rows_profiled": self.rows_profiled,
                "label_counts": dict(self.label_counts),
                "positive_rate": self.positive_rate,
                "columns": {
                    c.name: {
                        "kind": c.kind,
                        "missing_share": c.missing_share,
                        "cardinality": c.cardinality,
                        "summary": c.summary(),
                    }
                    for c in self.columns
                },
                "leakage": {
                    c.column: {
                        "roc_auc": c.roc_auc,
                        "mi_share": c.mi_share,
                        "flagged": c.flagged,
                        "ground_truth": c.ground_truth,
                    }
                    for c in self.leakage
                },
                "flagged": list(self.flagged),
                "thresholds": {"roc_auc": self.auc_flag, "mi_share": self.mi_flag},
            }
        }


# ---- computing ------------------------------------------------------------------------------
def sample_parquet(
    sql: str, seed: int, max_rows: int = MAX_ROWS, **tables: pd.DataFrame | str | Path
) -> tuple[pd.DataFrame, int]:
    """``(a seeded uniform sample of at most max_rows rows of the query, the query's rows)``.

    ``sql`` is a SELECT over the named ``tables`` (Parquet paths or frames, as in
    :func:`mlsd.data.duckdb_query`); the rows are counted and sampled in DuckDB, so a large log
    never enters memory whole."""
    total = int(duckdb_query(f"SELECT count(*) AS n FROM ({sql})", **tables)["n"].iloc[0])
    if total <= max_rows:
        return duckdb_query(sql, **tables), total
    keep_seed = int(rng(seed, "eda/sample").integers(0, 2**31))
    frame = duckdb_query(
        f"SELECT * FROM ({sql}) USING SAMPLE reservoir({max_rows} ROWS) REPEATABLE ({keep_seed})",
        **tables,
    )
    return frame, total


def _profile_column(name: str, s: pd.Series) -> ColumnProfile:
    n = len(s)
    missing = int(s.isna().sum())
    present = s.dropna()
    numeric = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
    base: dict[str, Any] = {
        "name": name,
        "dtype": str(s.dtype),
        "missing_share": missing / n if n else math.nan,
        "cardinality": int(present.nunique()),
    }
    if numeric:
        if present.empty:
            return ColumnProfile(kind="numeric", **base)
        v = present.to_numpy(np.float64)
        q50, q99 = np.quantile(v, [0.5, 0.99])
        return ColumnProfile(
            kind="numeric",
            mean=float(v.mean()),
            std=float(v.std()),
            min=float(v.min()),
            p50=float(q50),
            p99=float(q99),
            max=float(v.max()),
            **base,
        )
    if present.empty:
        return ColumnProfile(kind="categorical", **base)
    counts = present.astype(str).value_counts()
    return ColumnProfile(
        kind="categorical", top=str(counts.index[0]), top_share=float(counts.iloc[0]) / n, **base
    )


def _codes(s: pd.Series) -> np.ndarray:
    """Integer codes of a column: categories as they are, numbers cut into quantile bins;
    missing values get a code of their own."""
    numeric = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
    n_bins = max(2, min(N_BINS, len(s) // 50))  # about 50 rows a bin at least
    if numeric and s.nunique(dropna=True) > n_bins:
        v = s.to_numpy(np.float64)
        edges = np.unique(np.nanquantile(v, np.linspace(0, 1, n_bins + 1)[1:-1]))
        codes = np.searchsorted(edges, v, side="right").astype(np.int64)
        codes[np.isnan(v)] = -1
        return codes
    codes, _ = pd.factorize(s, use_na_sentinel=True)
    return codes.astype(np.int64)


def _out_of_fold_rate(codes: np.ndarray, y: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Each row's code replaced by the smoothed label rate of its code in the other folds."""
    prior = float(y.mean())
    out = np.empty(len(y), dtype=np.float64)
    shifted = codes - codes.min()
    n_codes = int(shifted.max()) + 1
    all_n = np.bincount(shifted, minlength=n_codes).astype(np.float64)
    all_pos = np.bincount(shifted, weights=y, minlength=n_codes)
    for f in range(N_FOLDS):
        mine = folds == f
        n = all_n - np.bincount(shifted[mine], minlength=n_codes)
        pos = all_pos - np.bincount(shifted[mine], weights=y[mine], minlength=n_codes)
        out[mine] = ((pos + SMOOTHING * prior) / (n + SMOOTHING))[shifted[mine]]
    return out


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC-AUC by the rank-sum (Mann-Whitney) formula, ties averaged: the same figure as
    :func:`mlsd.metrics.roc_auc`, without its validation overhead (one call per column)."""
    from scipy.stats import rankdata

    pos = y > 0.5
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(score)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _entropy_bits(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def _mi_share(score: np.ndarray, y: np.ndarray) -> float:
    """Mutual information between the score (in 16 quantile bins) and the binary label, as a
    share of the label's entropy."""
    edges = np.unique(np.quantile(score, np.linspace(0, 1, 17)[1:-1]))
    bins = np.searchsorted(edges, score, side="right")
    joint = np.zeros((edges.size + 1, 2))
    np.add.at(joint, (bins, y.astype(np.int64)), 1.0)
    joint /= joint.sum()
    h_y = _entropy_bits(joint.sum(axis=0))
    if h_y == 0:
        return math.nan
    mi = h_y + _entropy_bits(joint.sum(axis=1)) - _entropy_bits(joint.ravel())
    return max(0.0, mi / h_y)


def check_leakage(
    frame: pd.DataFrame,
    y: np.ndarray,
    seed: int,
    *,
    ground_truth: Sequence[str] = (),
    auc_flag: float = AUC_FLAG,
    mi_flag: float = MI_FLAG,
) -> tuple[LeakageCheck, ...]:
    """Every column of ``frame`` scored alone against the binary label ``y`` (out of fold)."""
    y = np.asarray(y, dtype=np.float64)
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("the leakage check needs a binary 0/1 label")
    folds = rng(seed, "eda/folds").integers(0, N_FOLDS, size=len(y))
    minority = int(min(y.sum(), len(y) - y.sum()))
    can_flag = minority >= MIN_MINORITY  # fewer rows of a class: the figures are noise
    checks = []
    for col in frame.columns:
        score = _out_of_fold_rate(_codes(frame[col]), y, folds)
        auc = _auc(y, score)
        auc = max(auc, 1.0 - auc) if not math.isnan(auc) else math.nan
        mi = _mi_share(score, y)
        truth = col in ground_truth
        flagged = can_flag and not truth and (auc >= auc_flag or mi >= mi_flag)
        checks.append(LeakageCheck(str(col), auc, mi, flagged, truth))
    return tuple(checks)


def profile_frame(
    frame: pd.DataFrame,
    label: str,
    *,
    table: str,
    seed: int,
    rows_total: int | None = None,
    ground_truth: Sequence[str] = (),
    skip_leakage: Sequence[str] = (),
    max_rows: int = MAX_ROWS,
    auc_flag: float = AUC_FLAG,
    mi_flag: float = MI_FLAG,
) -> EdaResult:
    """Profile ``frame`` (its ``label`` column binary 0/1) on a seeded sample of at most
    ``max_rows`` rows. ``ground_truth`` columns are scored as the ceiling, never flagged;
    ``skip_leakage`` columns (row ids, timestamps) are profiled but not scored."""
    if label not in frame.columns:
        raise ValueError(f"the EDA table {table!r} has no label column {label!r}")
    if frame.empty:
        raise ValueError(f"the EDA table {table!r} is empty")
    total = len(frame) if rows_total is None else rows_total
    if len(frame) > max_rows:
        keep = np.sort(rng(seed, "eda/rows").choice(len(frame), max_rows, replace=False))
        frame = frame.iloc[keep]
    y = frame[label].to_numpy()
    counts = pd.Series(y).astype(str).value_counts().sort_index()
    features = frame.drop(columns=[label])
    columns = tuple(_profile_column(str(c), features[c]) for c in features.columns)
    scored = features.drop(columns=[c for c in skip_leakage if c in features.columns])
    leakage = check_leakage(
        scored, y, seed, ground_truth=ground_truth, auc_flag=auc_flag, mi_flag=mi_flag
    )
    return EdaResult(
        table=table,
        label=label,
        rows_total=int(total),
        rows_profiled=len(frame),
        label_counts=tuple((str(k), int(v)) for k, v in counts.items()),
        columns=columns,
        leakage=leakage,
        auc_flag=auc_flag,
        mi_flag=mi_flag,
    )


def leakage_by_column(result: EdaResult) -> Mapping[str, LeakageCheck]:
    return {c.column: c for c in result.leakage}


# ---- the blueprint ---------------------------------------------------------------------------
def report_eda(bp: Blueprint, result: EdaResult, note: str = "") -> None:
    """The blueprint's EDA section (:func:`mlsd.eda_report.write_eda_section`)."""
    from mlsd.eda_report import write_eda_section

    write_eda_section(bp, result, note)
