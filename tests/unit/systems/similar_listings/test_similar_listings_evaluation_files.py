"""The file protocol: every prefix of a test session, answered from the whole session."""

from __future__ import annotations

import numpy as np

from mlsd.systems.similar_listings.evaluation_files import (
    next_item_scores,
    prefix_cases,
    session_scores,
)
from mlsd.systems.similar_listings.features import Sessions
from mlsd.systems.similar_listings.model import ListingSimilarity


class Matrix(ListingSimilarity):
    def __init__(self, m: np.ndarray) -> None:
        self.m = m

    def similarity(self, query: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.m[np.asarray(query)]
        return out


def _sessions(*clicks: list[int]) -> Sessions:
    lens = [len(c) for c in clicks]
    return Sessions(
        np.r_[0, np.cumsum(lens)].astype(np.int64),
        np.concatenate([np.asarray(c, np.int64) for c in clicks]),
        np.full(len(clicks), -1, np.int64),
        np.zeros(len(clicks), np.int64),
    )


def test_every_prefix_is_a_case_and_every_click_ranks_the_final_item() -> None:
    c = prefix_cases(_sessions([1, 2, 3], [5, 6]))
    assert list(c.offsets) == [0, 1, 3, 4] and list(c.items) == [1, 1, 2, 5]
    assert list(c.target) == [2, 3, 6] and list(c.last()) == [1, 2, 5]
    assert list(c.final_query) == [1, 2, 5] and list(c.final_target) == [3, 3, 6]


def test_session_scores_weigh_earlier_clicks_by_the_decay() -> None:
    rng = np.random.default_rng(0)
    m = Matrix(rng.normal(size=(8, 8)))
    c = prefix_cases(_sessions([1, 2, 3]))
    s = session_scores(m, c, 0, len(c), 0.5)
    np.testing.assert_allclose(s[0], m.m[1])
    np.testing.assert_allclose(s[1], 0.5 * m.m[1] + m.m[2])
    np.testing.assert_allclose(session_scores(m, c, 0, len(c), 0.0)[1], m.m[2])


def test_the_whole_session_finds_what_the_last_item_misses() -> None:
    sim = np.zeros((6, 6))
    sim[0, 3] = 1.0  # the first click points at 3
    sim[1, 3], sim[1, 4] = 0.9, 1.0  # the last click slightly prefers 4
    c = prefix_cases(_sessions([0, 1, 3]))
    whole = next_item_scores(Matrix(sim), c, 0.5, k=1)
    last = next_item_scores(Matrix(sim), c, 0.0, k=1)
    assert whole == {"hr@1": 0.5, "mrr@1": 0.5}  # the prefix [0] misses 1 (ties go by id)
    assert last == {"hr@1": 0.0, "mrr@1": 0.0}


def test_long_prefixes_keep_their_last_clicks_and_chunks_cover_every_case() -> None:
    c = prefix_cases(_sessions(list(range(15))))
    assert len(c) == 14 and list(c.items[c.offsets[-2] : c.offsets[-1]]) == list(range(4, 14))
    sim = np.eye(16)[:, ::-1].copy()  # item i points at 15 - i
    scores = next_item_scores(Matrix(sim), c, 0.5, k=20)
    assert scores["hr@20"] == 1.0  # k covers every item: every case is scored
