"""The MovieLens protocol: the seeded 75/25 per-item split, top-k without seen items, and the
protocol run end to end on a small synthetic ml-100k file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlsd.data import DataError
from mlsd.systems.video_rec.evaluation_movielens import (
    compute_movielens,
    evaluate_lists,
    stratified_split,
    top_k_unseen,
)


def test_split_is_75_25_per_item_and_seeded() -> None:
    rng = np.random.default_rng(0)
    r = pd.DataFrame({"item": np.repeat(np.arange(5), 40), "user": rng.integers(0, 50, 200)})
    train, test = stratified_split(r)
    for i in range(5):
        assert train[r["item"].to_numpy() == i].sum() == 30
    again, _ = stratified_split(r)
    assert (train == again).all() and not (train & test).any()


def test_top_k_unseen_removes_seen_items() -> None:
    scores = np.array([[0.9, 0.8, 0.1, 0.5]])
    assert top_k_unseen(scores, [np.array([0])], 2) == [[1, 3]]


def test_evaluate_lists_scores_a_perfect_list_one() -> None:
    res = evaluate_lists({0: [3, 1]}, {0: {1, 3}})
    assert res["map"] == 1.0 and res["ndcg@10"] == pytest.approx(1.0)
    assert res["recall@10"] == 1.0 and res["precision@10"] == pytest.approx(0.2)


def test_protocol_runs_every_model_and_reports_the_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pairs = [(u, i) for u in range(1, 31) for i in rng.choice(np.arange(1, 60), 12, replace=False)]
    (tmp_path / "u.data").write_text(
        "".join(
            f"{u}\t{i}\t{rng.integers(1, 6)}\t{880_000_000 + j}\n" for j, (u, i) in enumerate(pairs)
        )
    )
    res = compute_movielens(f"movielens:{tmp_path}", "hashing", 0)
    assert res.split["train"] + res.split["test"] == len(pairs) == res.rows
    assert set(res.models) == {"popular", "co_watch", "ease", "two_tower"}
    assert res.models["ease"]["l2"] in {float(k) for k in res.models["ease"]["validation_ndcg@10"]}
    m = res.metrics()
    for name in res.models:
        assert set(m["models"][name]) >= {"map", "ndcg@10", "precision@10", "recall@10"}
    assert m["data"]["format"] == "ml-100k" and m["movielens"]["split"] == res.split
    with pytest.raises(DataError, match="movielens:PATH"):
        compute_movielens(f"criteo:{tmp_path}", "hashing", 0)
