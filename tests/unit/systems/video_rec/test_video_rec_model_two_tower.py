"""The two-tower: it learns, embeds unit vectors, is seeded without touching torch's global RNG,
and saves as a state dict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mlsd.systems.video_rec.features import Catalogue, UserSide
from mlsd.systems.video_rec.model import FitReport
from mlsd.systems.video_rec.model_two_tower import (
    TwoTowerRetriever,
    tower_training_pairs,
    vocab_index,
)
from mlsd.systems.video_rec.serving import Recommender
from mlsd.systems.video_rec.world import VideoRecWorld


def test_two_tower_learns_and_embeds_unit_vectors(
    fitted: tuple[VideoRecWorld, Recommender, FitReport],
) -> None:
    _, rec, _ = fitted
    assert rec.tower.losses_[-1] < rec.tower.losses_[0]
    emb = rec.tower.video_embeddings(rec.cat)
    assert emb.shape == (len(rec.cat.videos), 32)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)


def _small_fit(
    world_log: tuple[VideoRecWorld, pd.DataFrame, Catalogue], seed: int
) -> tuple[TwoTowerRetriever, Catalogue]:
    w, log, cat = world_log
    u, v, d = (log[c].to_numpy().astype(np.int64) for c in ("user_id", "video_id", "day"))
    us = UserSide.build(cat, u, v, d, log["click"].to_numpy(), cat.n_creators)
    x, pos = tower_training_pairs(us, w.users, log, 10)
    tower = TwoTowerRetriever(dim=8, out_dim=8, epochs=2, seed=seed)
    return tower.fit(cat, x, pos, len(w.users)), cat


def test_fit_is_seeded_and_leaves_the_global_torch_rng_alone(
    world_log: tuple[VideoRecWorld, pd.DataFrame, Catalogue],
) -> None:
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    a, cat = _small_fit(world_log, 5)
    assert torch.equal(torch.get_rng_state(), before)  # no global seeding
    b, _ = _small_fit(world_log, 5)
    c, _ = _small_fit(world_log, 6)
    assert a.losses_ == b.losses_
    np.testing.assert_array_equal(a.video_embeddings(cat), b.video_embeddings(cat))
    assert not np.array_equal(a.video_embeddings(cat), c.video_embeddings(cat))


def test_save_and_load_give_the_same_embeddings(
    world_log: tuple[VideoRecWorld, pd.DataFrame, Catalogue], tmp_path: Path
) -> None:
    tower, cat = _small_fit(world_log, 0)
    tower.save(tmp_path / "tower")
    back = TwoTowerRetriever.load(tmp_path / "tower")
    assert back.get_params() == tower.get_params() and back.losses_ == tower.losses_
    np.testing.assert_array_equal(back.video_embeddings(cat), tower.video_embeddings(cat))


def test_vocab_index_maps_unknown_values_to_zero() -> None:
    assert vocab_index(np.array(["b", "a", "zz", None]), ("a", "b")).tolist() == [2, 1, 0, 0]
