"""Normalisation and tokenisation, documents, reciprocal-rank fusion."""

from __future__ import annotations

import numpy as np

from mlsd.systems.video_search.features import rrf, tokenize, video_document


def test_tokenize_normalises_like_the_chapter() -> None:
    assert tokenize("Ｐasta-Noodles, the BEST!") == ["pasta", "noodle", "best"]
    assert tokenize("Strumming puppies") == ["strumm", "puppy"]
    assert tokenize("the of and") == []
    assert tokenize("") == []


def test_the_title_counts_twice_in_a_document() -> None:
    doc = video_document("guitar chords", "a lesson", "guitar,chords")
    assert tokenize(doc).count("guitar") == 3


def test_rrf_rewards_agreement_and_ignores_missing() -> None:
    s = rrf([np.array([1.0, 2.0, np.inf]), np.array([1.0, np.inf, np.inf])])
    assert s[0] > s[1] > s[2] == 0.0
