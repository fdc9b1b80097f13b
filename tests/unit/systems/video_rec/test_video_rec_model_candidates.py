"""The popular and co-watch candidate sources, their artifacts, and the merge."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlsd.systems.video_rec.model_candidates import (
    CoWatchSource,
    PopularSource,
    merge_candidates,
)


def test_popular_excludes_and_decays() -> None:
    src = PopularSource(decay=0.5).fit(
        np.array([0, 0, 1, 2]), np.array([0, 0, 2, 2]), np.array([1, 1, 1, 0]), 3
    )
    assert src.recommend(3).tolist()[0] == 1  # one recent click beats two old half-weight ones
    assert 1 not in src.recommend(2, {1}).tolist()


def test_cowatch_recommends_videos_watched_together() -> None:
    users = np.array([0, 0, 1, 1, 2, 2])
    vids = np.array([0, 1, 0, 1, 2, 3])
    src = CoWatchSource().fit(users, vids, np.ones(6), 4)
    recs = src.recommend([np.array([0]), np.array([3]), np.array([], dtype=np.int64)], 5)
    assert recs[0].tolist() == [1] and recs[1].tolist() == [2] and recs[2].tolist() == []


def test_sources_save_and_load_without_pickle(tmp_path: Path) -> None:
    users, vids = np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 0, 1, 2, 3])
    pop = PopularSource(decay=0.5).fit(vids, np.array([0, 1, 2, 2, 2, 2]), np.ones(6), 5)
    pop.save(tmp_path / "popular.npz")
    back = PopularSource.load(tmp_path / "popular.npz")
    assert back.decay == 0.5 and back.recommend(5).tolist() == pop.recommend(5).tolist()
    co = CoWatchSource(history_len=7).fit(users, vids, np.ones(6), 4)
    co.save(tmp_path / "cowatch.npz")
    again = CoWatchSource.load(tmp_path / "cowatch.npz")
    hist = [np.array([0]), np.array([2, 3])]
    assert again.history_len == 7
    assert (again.scores(hist) != co.scores(hist)).nnz == 0
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically: no temporary left behind


def test_merge_dedupes_keeps_sources_and_excludes() -> None:
    ids, src = merge_candidates({"a": np.array([3, 1, -1]), "b": np.array([1, 2, 5])}, {5})
    assert ids.tolist() == [3, 1, 2]
    assert src == [["a"], ["a", "b"], ["b"]]
