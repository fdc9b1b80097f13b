"""The MovieLens protocol: the seeded 75/25 per-item split, top-k without seen items, and the
protocol run end to end on a small synthetic ml-100k file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlsd.data import DataError
from mlsd.systems.video_rec.datasets import load_movielens
from mlsd.systems.video_rec.datasets_synthetic import SyntheticShape, write_synthetic_movielens
from mlsd.systems.video_rec.evaluation_cf import CF_MODELS, GRIDS
from mlsd.systems.video_rec.evaluation_movielens import (
    ALL_MODELS,
    compute_movielens,
    evaluate_lists,
    run_protocol,
    stratified_split,
    top_k_unseen,
)
from mlsd.text import make_encoder


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
    assert list(res.models) == list(ALL_MODELS)
    assert res.models["ease"]["l2"] in {float(k) for k in res.models["ease"]["validation_ndcg@10"]}
    for name in CF_MODELS:  # each learner: its grid scored on validation, the best refitted
        r = res.models[name]
        assert len(r["validation_ndcg@10"]) == len(GRIDS[name][2]) >= 2
        assert max(r["validation_ndcg@10"].values()) == r["validation_ndcg@10"][_label(r)]
        assert r["train_seconds"] > 0 and r["tuning_seconds"] > 0
    m = res.metrics()
    for name in res.models:
        assert set(m["models"][name]) >= {"map", "ndcg@10", "precision@10", "recall@10"}
    assert m["data"]["format"] == "ml-100k" and m["movielens"]["split"] == res.split
    with pytest.raises(DataError, match="movielens:PATH"):
        compute_movielens(f"criteo:{tmp_path}", "hashing", 0)


def _label(r: dict[str, object]) -> str:
    """The grid point's label of the chosen params (the tuned keys only)."""
    params = r["params"]
    assert isinstance(params, dict)
    name = next(n for n, g in GRIDS.items() if set(g[1]) <= set(params))
    keys = list(GRIDS[name][2][0])
    return ", ".join(
        f"{k}={params[k]:g}" if isinstance(params[k], float) else f"{k}={params[k]}" for k in keys
    )


def test_unknown_models_are_refused(tmp_path: Path) -> None:
    write_synthetic_movielens(
        tmp_path, SyntheticShape(users=20, items=30, ratings=300, min_per_user=5), seed=0
    )
    with pytest.raises(ValueError, match="unknown models \\['svd'\\]"):
        run_protocol(load_movielens(str(tmp_path)), make_encoder("hashing"), 0, models=["svd"])


def test_synthetic_file_has_the_shape_asked_for(tmp_path: Path) -> None:
    shape = SyntheticShape(users=50, items=70, ratings=1500, min_per_user=10, max_per_user=60)
    path = write_synthetic_movielens(tmp_path, shape, seed=3)
    ml = load_movielens(str(tmp_path))
    r = ml.ratings
    assert path.name == "u.data" and ml.layout == "ml-100k" and len(r) == 1500
    assert r["user"].nunique() == 50 and r["item"].nunique() <= 70
    per_user = r.groupby("user").size()
    assert per_user.min() >= 10 and per_user.max() <= 60
    assert not r.duplicated(["user", "item"]).any() and r["rating"].between(1, 5).all()
    counts = np.sort(r.groupby("item").size().to_numpy())[::-1]
    assert counts[: len(counts) // 10].sum() > 2 * counts[-len(counts) // 10 :].sum()  # long tail
    again = tmp_path / "again"
    write_synthetic_movielens(again, shape, seed=3)
    assert (again / "u.data").read_bytes() == path.read_bytes()
    with pytest.raises(ValueError, match="ratings must be between"):
        write_synthetic_movielens(tmp_path, SyntheticShape(users=5, items=5, ratings=10))
