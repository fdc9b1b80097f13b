"""Step 3 for video search: text normalisation and tokenisation (both halves of text search use
it), a video's searchable document, and the feature frame of the candidates the fusion ranks.

Normalisation as the chapter lists it: Unicode NFKC, lower case, punctuation and hyphens to
spaces, English stop words removed (bm25s's list), and a light stemmer (plural ``s``, ``ies``,
``ing``) so that "noodles" finds "noodle". A video's document is its title twice (a field
boost), its tags and its description.

The candidates' features (``d_*``, the frame contract of :mod:`mlsd.models`): each retriever's
score and rank for the pair (every candidate gets every score, also when another retriever
found it), the reciprocal-rank-fusion score, the video's freshness (days since upload at the
query's day), popularity, duration and the length of its text, and the query's length and
out-of-vocabulary share. No video id and no world latent is a feature.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from bm25s.stopwords import STOPWORDS_EN

STOPWORDS = frozenset(STOPWORDS_EN) | {"how", "my", "video"}
_NON_WORD = re.compile(r"[^0-9a-z]+")
RRF_K = 60  # reciprocal rank fusion: 1 / (RRF_K + rank)
RETRIEVERS = ("bm25", "semantic", "visual")


def stem(word: str) -> str:
    if len(word) > 5 and word.endswith("ing"):
        return word[:-3]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """The normalised tokens of ``text`` (possibly none)."""
    norm = _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).lower())
    return [stem(w) for w in norm.split() if w not in STOPWORDS]


def video_document(title: str, description: str, tags: str) -> str:
    """What text search indexes for a video: the title twice, the tags, the description."""
    return " ".join((title, title, tags.replace(",", " "), description))


def documents(videos: pd.DataFrame) -> list[str]:
    if "text" in videos.columns:  # a real collection: title and text
        return [f"{t} {t} {x}" for t, x in zip(videos["title"], videos["text"], strict=True)]
    return [
        video_document(t, d, g)
        for t, d, g in zip(videos["title"], videos["description"], videos["tags"], strict=True)
    ]


def rrf(ranks: Sequence[np.ndarray], k: int = RRF_K) -> np.ndarray:
    """Reciprocal rank fusion of 1-based ranks (``inf`` = not retrieved): sum of 1/(k + rank)."""
    return np.sum([1.0 / (k + r) for r in ranks], axis=0)


@dataclass(frozen=True)
class Candidates:
    """One query's candidates (row positions in the catalogue) and their retriever signals:
    ``scores[r]`` and ``ranks[r]`` (1-based, ``inf`` where ``r`` did not retrieve it)."""

    rows: np.ndarray
    scores: dict[str, np.ndarray]
    ranks: dict[str, np.ndarray]


def candidate_frame(
    cands: Candidates,
    day: np.ndarray | int,
    upload_day: np.ndarray,
    popularity: np.ndarray,
    duration_s: np.ndarray,
    doc_len: np.ndarray,
    query_len: int,
    query_oov: float,
    depth: int,
) -> pd.DataFrame:
    """The ``d_*`` features of one query's candidates (columns in a fixed order)."""
    r = cands.rows
    cols: dict[str, np.ndarray] = {}
    for name in RETRIEVERS:
        if name not in cands.scores:
            continue
        cols[f"d_{name}"] = cands.scores[name].astype(np.float64)
        rank = cands.ranks[name]
        cols[f"d_{name}_log_rank"] = np.log1p(np.where(np.isfinite(rank), rank, 2 * depth))
    cols["d_rrf"] = rrf([cands.ranks[n] for n in RETRIEVERS if n in cands.ranks])
    cols["d_age_days"] = (np.asarray(day) - upload_day[r]).astype(np.float64)
    cols["d_log_popularity"] = np.log1p(popularity[r].astype(np.float64))
    cols["d_log_duration"] = np.log1p(duration_s[r].astype(np.float64))
    cols["d_doc_len"] = doc_len[r].astype(np.float64)
    cols["d_query_len"] = np.full(len(r), float(query_len))
    cols["d_query_oov"] = np.full(len(r), float(query_oov))
    return pd.DataFrame(cols)
