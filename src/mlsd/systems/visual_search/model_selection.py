"""Step 4 for visual search: choosing the encoder's training on validation (book ch. 2).

The contrastive encoder has knobs the chapter leaves open: the embedding size, how long to
train. They are chosen on a *validation* split carved from the training images only (never on
the queries or the catalogue that step 5 scores):

* :func:`validation_split` holds out a seeded share of the training images (class labels: real
  files) or of the training groups (world products: a held-out product is never trained on);
* :func:`validation_map` scores an encoder on it: half of the held-out images are queries, the
  other half the index, relevance is the same group, mAP@k under exact search;
* :func:`choose_on_validation` trains each candidate on the rest, keeps the best by validation
  mAP (ties to the cheaper, earlier candidate), and records every candidate's figure.

The module knows encoders only by their ``fit`` / ``encode`` methods, so the model module can
call it without an import cycle.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, Self

import numpy as np

from mlsd import metrics as mm
from mlsd.index import exact_top_k
from mlsd.rng import rng

log = logging.getLogger(__name__)

K = 10
VAL_SHARE = 0.2  # of the training images (or groups) held out for the choice
HoldOut = Literal["images", "groups"]


class Encoder(Protocol):
    """What this module needs of an encoder (every :class:`.model.ImageEncoder` has it)."""

    def fit(self, images: np.ndarray, groups: np.ndarray) -> Self: ...

    def encode(self, images: np.ndarray, batch_size: int = 512) -> np.ndarray: ...


def validation_split(
    groups: np.ndarray, seed: int, hold_out: HoldOut = "images", share: float = VAL_SHARE
) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``(fit, validation)`` of the training images, seeded. ``hold_out="images"``
    for class labels (files: every class is in both parts), ``"groups"`` for products (a
    held-out product is never trained on)."""
    g = np.asarray(groups)
    gen = rng(seed, "model-selection/validation-split")
    if hold_out == "images":
        held = gen.random(len(g)) < share
    elif hold_out == "groups":
        uniq = np.unique(g)
        n_held = max(2, round(share * len(uniq)))
        held = np.isin(g, gen.choice(uniq, size=min(n_held, len(uniq)), replace=False))
    else:
        raise ValueError(f"hold_out must be 'images' or 'groups', got {hold_out!r}")
    return np.flatnonzero(~held), np.flatnonzero(held)


def map_at_k(
    index_emb: np.ndarray,
    index_groups: np.ndarray,
    query_emb: np.ndarray,
    query_groups: np.ndarray,
    k: int = K,
) -> float:
    """mAP@k of exact search: relevant are the index images of the query's group."""
    top = exact_top_k(index_emb, query_emb, k)[1]
    members: dict[Any, set[int]] = {}
    for i, grp in enumerate(np.asarray(index_groups).tolist()):
        members.setdefault(grp, set()).add(i)
    scores = [
        mm.average_precision_at_k([int(r) for r in top[q] if r >= 0], members[grp], k)
        for q, grp in enumerate(np.asarray(query_groups).tolist())
        if grp in members
    ]
    return float(np.mean(scores)) if scores else float("nan")


def validation_map(
    encoder: Encoder, images: np.ndarray, groups: np.ndarray, seed: int, k: int = K
) -> float:
    """mAP@k of ``encoder`` on held-out ``images``: a seeded half are queries, the rest the
    index (a group's images split between the two, so every query has relevant images)."""
    g = np.asarray(groups)
    is_query = rng(seed, "model-selection/validation-queries").random(len(g)) < 0.5
    emb = encoder.encode(images)
    return map_at_k(emb[~is_query], g[~is_query], emb[is_query], g[is_query], k)


@dataclass(frozen=True)
class Candidate:
    """One setting tried on validation: its label, its parameters and how to build it."""

    label: str
    params: dict[str, Any]
    make: Callable[[], Encoder]


@dataclass(frozen=True)
class Choice:
    """The candidates' validation mAP@k (in the order tried) and the chosen one."""

    rows: tuple[dict[str, Any], ...]
    chosen: str
    fit_images: int
    validation_images: int

    def metrics(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen,
            "fit_images": self.fit_images,
            "validation_images": self.validation_images,
            "candidates": list(self.rows),
        }


def choose_on_validation(
    candidates: Sequence[Candidate],
    images: np.ndarray,
    groups: np.ndarray,
    seed: int,
    hold_out: HoldOut = "images",
) -> Choice:
    """Fit every candidate on the training images less the validation split, score each on it,
    choose the best validation mAP@k (the earlier candidate on a tie)."""
    if not candidates:
        raise ValueError("no candidates to choose from")
    fit_idx, val_idx = validation_split(groups, seed, hold_out)
    if len(fit_idx) < 2 or len(val_idx) < 2:
        raise ValueError(f"too few images ({len(groups)}) to hold out a validation split")
    rows: list[dict[str, Any]] = []
    for cand in candidates:
        t0 = time.perf_counter()
        enc = cand.make().fit(images[fit_idx], groups[fit_idx])
        score = validation_map(enc, images[val_idx], groups[val_idx], seed)
        rows.append(
            {
                "candidate": cand.label,
                **cand.params,
                "validation_map": score,
                "seconds": round(time.perf_counter() - t0, 2),
            }
        )
        log.info("validation: %s mAP@%d %.4f", cand.label, K, score)

    def rank(i: int) -> tuple[float, int]:  # nan (no query had a relevant image) ranks last
        score = float(rows[i]["validation_map"])
        return (score if np.isfinite(score) else -np.inf, -i)

    best = max(range(len(rows)), key=rank)
    return Choice(tuple(rows), candidates[best].label, len(fit_idx), len(val_idx))
