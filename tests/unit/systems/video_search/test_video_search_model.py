"""BM25 with bm25s, the dual encoder and the learned fusion, on tiny seeded inputs."""

from __future__ import annotations

import numpy as np

from mlsd.systems.video_search.model import TextSearch
from mlsd.systems.video_search.model_dual import DualEncoder
from mlsd.systems.video_search.model_fusion import FusionRanker
from mlsd.systems.video_search.serving import VideoSearcher
from mlsd.systems.video_search.world import VideoSearchWorld

DOCS = ["guitar chords for beginners", "cat video", "cats playing with a laser", "soup recipe"]


def test_bm25_ranks_matching_documents_and_knows_its_vocabulary() -> None:
    m = TextSearch().fit(DOCS)
    rows, scores = m.search("cat laser", 10)
    assert rows[0] == 2 and set(rows) == {1, 2} and (scores > 0).all()
    assert m.search("nothing matches", 10)[0].size == 0
    assert m.oov_share("cat zebra") == 0.5


def test_the_dual_encoder_learns_the_logged_pairs(world: VideoSearchWorld) -> None:
    rows = np.arange(60)
    frames = world.frames(rows)
    topic = world.videos["topic"].to_numpy()[rows]
    queries = np.eye(16, dtype=np.float32)[topic]  # one direction per topic
    enc = DualEncoder(dim=8, width=4, hidden=16, epochs=15, batch_size=32, random_state=0)
    enc.fit(queries, frames, rows)
    assert enc.train_loss_[-1] < enc.train_loss_[0]
    v = enc.encode_videos(frames)
    q = enc.encode_queries(queries)
    same = (q @ v.T)[topic[:, None] == topic[None, :]].mean()
    diff = (q @ v.T)[topic[:, None] != topic[None, :]].mean()
    assert same > diff + 0.03


def test_the_learned_fusion_beats_rrf_on_the_world(
    world: VideoSearchWorld, searcher: VideoSearcher
) -> None:
    assert isinstance(searcher.fusion, FusionRanker)
    q = world.queries(2, 60, "test")
    ranks = searcher.rank_many(q["text"].tolist(), q["day"].to_numpy(), ("fusion", "rrf_all"))
    top_grade = {
        m: np.mean(
            [world.grades(int(i), r[:3]).mean() for i, r in zip(q["intent_id"], rs, strict=True)]
        )
        for m, rs in ranks.items()
    }
    assert top_grade["fusion"] > top_grade["rrf_all"] - 0.1
    assert set(searcher.fusion.importances()) == set(searcher.fusion.columns_)
