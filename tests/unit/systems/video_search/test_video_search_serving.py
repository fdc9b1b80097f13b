"""The searcher: artifacts round trip, per-stage timings, re-ranking, new videos without a
restart, and broken artifacts named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlsd.artifacts import pickle_protocol, verify_manifest
from mlsd.serving import ServingArtifactError
from mlsd.systems.video_search.serving import (
    VideoSearcher,
    load_scorer,
    save_serving_artifacts,
)
from mlsd.systems.video_search.world import VideoSearchWorld


@pytest.fixture(scope="module")
def run_dir(searcher: VideoSearcher, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("video-search")
    save_serving_artifacts(run / "artifacts", searcher, "hashing")
    return run


def test_saved_artifacts_serve_the_same_results(searcher: VideoSearcher, run_dir: Path) -> None:
    files = verify_manifest(run_dir / "artifacts")
    assert not [f for f in files if pickle_protocol(run_dir / "artifacts" / f) is not None]
    loaded = load_scorer(run_dir)
    for q in ("guitar chords", "kitten purr", "zzzz"):
        a, b = searcher.search(q, k=10), loaded.search(q, k=10)
        assert [h.video_id for h in a.hits] == [h.video_id for h in b.hits]
        assert set(a.timings_ms) >= {"encode", "text", "visual", "fusion", "rerank", "total"}
    assert loaded.ranker == "fusion"


def test_reranking_drops_flagged_videos_and_reuploads(
    world: VideoSearchWorld, searcher: VideoSearcher
) -> None:
    v = searcher.videos
    dup = v[v["duplicate_of"] >= 0]["video_id"].to_numpy()
    flagged = np.flatnonzero(searcher.flagged)
    assert len(dup) and len(flagged)
    rows = np.concatenate([[dup[0], int(v["duplicate_of"].iat[dup[0]])], flagged[:2], [0, 1]])
    kept = rows[searcher.rerank(rows, 10)]
    assert not set(flagged) & set(kept.tolist())
    assert len({dup[0], int(v["duplicate_of"].iat[dup[0]])} & set(kept.tolist())) == 1


def test_new_videos_are_searchable_without_a_restart(
    world: VideoSearchWorld, run_dir: Path
) -> None:
    s = load_scorer(run_dir)
    n = len(s.videos)
    new = pd.DataFrame(
        {
            "upload_day": [s.day],
            "popularity": [0],
            "duration_s": [60],
            "flagged": [False],
            "title": ["zanzibar quokka unboxing"],
            "description": ["a quokka in zanzibar"],
            "tags": ["quokka"],
        }
    )
    ids = s.add_videos(new, world.frames(np.array([0])))
    assert len(s.videos) == n + 1 and ids[0] == n
    assert s.search("quokka zanzibar", k=5).hits[0].video_id == ids[0]


def test_broken_artifacts_are_named(run_dir: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "run"
    shutil.copytree(run_dir, broken)
    (broken / "artifacts" / "doc_vectors.npy").write_bytes(b"not numpy")
    with pytest.raises(ServingArtifactError, match=r"doc_vectors\.npy"):
        load_scorer(broken)
    (broken / "artifacts" / "doc_vectors.npy").unlink()
    with pytest.raises(ServingArtifactError, match="missing"):
        load_scorer(broken)
