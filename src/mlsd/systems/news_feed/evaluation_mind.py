"""The news-recommendation benchmark's files: the click head, trained on the earlier impressions
and evaluated on the later ones with the benchmark's metrics.

Features of an (impression, news) pair, point-in-time: the news' category and subcategory, the
share of the user's click history in that category and subcategory, the history's length, the
cosine of the news title with the history's titles (hashed bag of words, :mod:`mlsd.text`), the
news' impressions and click rate before the impression's time, its age since first shown, and
the impression's size. LightGBM (the click head) against two baselines: popularity (the click
rate so far) and category match. Metrics per impression with at least one click and one skip,
averaged: AUC, MRR, nDCG@5, nDCG@10 (the benchmark's definitions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.metrics import roc_auc_score

from mlsd.features import hash_values
from mlsd.models import LightGBMClick
from mlsd.report import Blueprint
from mlsd.rng import seed_of
from mlsd.systems.news_feed.datasets import MindFiles
from mlsd.text import make_encoder

PRIOR = 20.0
RANKERS = ("popularity", "category_match", "lightgbm")


def mind_features(files: MindFiles) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The feature frame of every impression row, and the rows' keys (impression, label, split)."""
    news, beh, imp = files.news, files.behaviors, files.impressions
    nid = {n: i for i, n in enumerate(news["news_id"])}
    cat = news["category"].to_numpy()
    sub = news["subcategory"].to_numpy()
    n = imp["news_id"].map(nid).to_numpy(np.int64)
    row = imp["impression"].to_numpy(np.int64)
    ts = beh["ts"].to_numpy(np.int64)[row]
    # the history as a sparse matrix behaviours x news, each row summing to 1
    h_rows = np.repeat(np.arange(len(beh)), beh["history"].map(len).to_numpy())
    h_news = np.array([nid[x] for h in beh["history"] for x in h], np.int64)
    hist_len = beh["history"].map(len).to_numpy(np.float64)
    H = sparse.csr_matrix(
        (1.0 / np.maximum(hist_len[h_rows], 1.0), (h_rows, h_news)), shape=(len(beh), len(news))
    )
    cat_codes, cat_idx = np.unique(cat, return_inverse=True)
    sub_codes, sub_idx = np.unique(sub, return_inverse=True)
    C = sparse.csr_matrix(
        (np.ones(len(news)), (np.arange(len(news)), cat_idx)), shape=(len(news), len(cat_codes))
    )
    S = sparse.csr_matrix(
        (np.ones(len(news)), (np.arange(len(news)), sub_idx)), shape=(len(news), len(sub_codes))
    )
    cat_share = np.asarray((H @ C)[row, cat_idx[n]]).ravel()
    sub_share = np.asarray((H @ S)[row, sub_idx[n]]).ravel()
    vec = make_encoder("hashing").encode(news["title"].astype(str).tolist()).astype(np.float64)
    profile = np.asarray(H @ vec)
    sim = (profile[row] * vec[n]).sum(axis=1)
    # point-in-time popularity: impressions and clicks of the news strictly before ts
    label = imp["label"].to_numpy(np.float64)
    g = pd.DataFrame({"n": n, "ts": ts, "imp": 1.0, "click": label})
    per = g.groupby(["n", "ts"], sort=True)[["imp", "click"]].sum()
    cum = per.groupby(level=0).cumsum() - per
    before = cum.reindex(pd.MultiIndex.from_arrays([n, ts])).to_numpy()
    first = g.groupby("n")["ts"].min().reindex(n).to_numpy()
    train = beh["split"].to_numpy()[row] == "train"
    rate = float(label[train].mean()) if train.any() else float(label.mean())
    size = np.bincount(row, minlength=len(beh))[row]
    X = pd.DataFrame(
        {
            "c_category": hash_values("mind_category", cat[n]),
            "c_subcategory": hash_values("mind_subcategory", sub[n]),
            "d_hist_len": np.log1p(hist_len[row]),
            "d_hist_cat_share": cat_share,
            "d_hist_subcat_share": sub_share,
            "d_title_sim": sim,
            "d_news_impressions": np.log1p(before[:, 0]),
            "d_news_ctr": (before[:, 1] + PRIOR * rate) / (before[:, 0] + PRIOR),
            "d_news_age_h": (ts - first) / 3600.0,
            "d_imp_size": size.astype(np.float64),
        }
    )
    keys = pd.DataFrame(
        {"impression": row, "label": label.astype(np.int64), "split": beh["split"].to_numpy()[row]}
    )
    return X, keys


def impression_metrics(
    impression: np.ndarray, label: np.ndarray, score: np.ndarray
) -> dict[str, float]:
    """AUC, MRR, nDCG@5 and nDCG@10 per impression (with a click and a skip), averaged."""
    df = pd.DataFrame({"i": impression, "y": label, "s": score})
    out: dict[str, list[float]] = {"auc": [], "mrr": [], "ndcg@5": [], "ndcg@10": []}
    for _, g in df.groupby("i", sort=False):
        y = g["y"].to_numpy()
        if y.min() == y.max():
            continue
        s = g["s"].to_numpy()
        ranked = y[np.argsort(-s, kind="stable")]
        out["auc"].append(float(roc_auc_score(y, s)))
        out["mrr"].append(float((ranked / (np.arange(len(y)) + 1)).sum() / ranked.sum()))
        ideal = np.sort(y)[::-1]
        for k in (5, 10):
            disc = 1.0 / np.log2(np.arange(2, min(k, len(y)) + 2))
            dcg = float(((2 ** ranked[:k] - 1) * disc).sum())
            idcg = float(((2 ** ideal[:k] - 1) * disc).sum())
            out[f"ndcg@{k}"].append(dcg / idcg)
    result = {k: float(np.mean(v)) if v else math.nan for k, v in out.items()}
    result["impressions"] = len(out["auc"])
    return result


@dataclass(frozen=True)
class MindResult:
    source: str
    news: int
    train_impressions: int
    test_impressions: int
    train_rows: int
    test_rows: int
    click_rate: float
    scores: dict[str, dict[str, float]]

    def metrics(self) -> dict[str, Any]:
        return {
            "data": {
                "source": self.source,
                "news": self.news,
                "train_impressions": self.train_impressions,
                "test_impressions": self.test_impressions,
                "train_rows": self.train_rows,
                "test_rows": self.test_rows,
                "click_rate": self.click_rate,
            },
            "models": {n: {"offline": s} for n, s in self.scores.items()},
            "chosen_model": "lightgbm",
            "oracle": None,
        }


def compute_mind(files: MindFiles, seed: int, n_estimators: int) -> MindResult:
    X, keys = mind_features(files)
    train = (keys["split"] == "train").to_numpy()
    test = ~train
    y = keys["label"].to_numpy()
    model = LightGBMClick(
        n_estimators=n_estimators,
        num_leaves=31,
        min_child_samples=20,
        num_threads=1,
        random_state=seed_of(seed, "news-feed/mind/lightgbm"),
    ).fit(X[train], y[train])
    Xt, imp_t, y_t = X[test], keys["impression"].to_numpy()[test], y[test]
    scores = {
        "popularity": impression_metrics(imp_t, y_t, Xt["d_news_ctr"].to_numpy()),
        "category_match": impression_metrics(
            imp_t, y_t, Xt["d_hist_subcat_share"].to_numpy() + Xt["d_hist_cat_share"].to_numpy()
        ),
        "lightgbm": impression_metrics(imp_t, y_t, model.predict_proba(Xt)[:, 1]),
    }
    beh = files.behaviors
    return MindResult(
        files.source,
        len(files.news),
        int((beh["split"] == "train").sum()),
        int((beh["split"] == "test").sum()),
        int(train.sum()),
        int(test.sum()),
        float(y.mean()),
        scores,
    )


def report_mind(bp: Blueprint, result: MindResult) -> None:
    bp.text(
        f"{result.source}: {result.news:,} news; {result.train_impressions:,} training and "
        f"{result.test_impressions:,} test impressions ({result.train_rows:,} and "
        f"{result.test_rows:,} shown news; click rate {result.click_rate:.2%}). The benchmark logs "
        "clicks only, so the click head is trained (LightGBM on point-in-time features) and "
        "compared with popularity and category-match baselines; metrics per impression with a "
        "click and a skip, averaged."
    )
    bp.table(
        ["ranker", "AUC", "MRR", "nDCG@5", "nDCG@10", "impressions"],
        [
            [n, s["auc"], s["mrr"], s["ndcg@5"], s["ndcg@10"], s["impressions"]]
            for n, s in result.scores.items()
        ],
    )
