"""Step 3: the features of a post, the same function offline and online.

* **text**: the all-MiniLM-L6-v2 sentence embedding (:mod:`mlsd.text`; the tiny world and the
  tests use its hashing stand-in); every distinct text is embedded once;
* **image**: the pixels (the CNN of :mod:`.model_image` turns them into an embedding), blank
  with ``has_image`` 0 for a post without one;
* **author and engagement**: account age, a new-account flag, followers, past violations, and
  the first hour's views, shares, comments and reports (the classifier runs at the first hour:
  :data:`~.world.DECISION_H`), counts ``log1p``'d and rates per view.

The split is by time: training days, validation days (thresholds, the served model), test days
(the offline numbers and the online experiment), then the drift days (monitoring).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlsd.report import Blueprint
from mlsd.text import CachedEncoder

if TYPE_CHECKING:
    from mlsd.systems.harmful_content.world import HarmWorld

META_COLUMNS = (
    "log_account_age",
    "new_account",
    "log_followers",
    "log_past_violations",
    "log_views_1h",
    "shares_per_view",
    "comments_per_view",
    "log_reports_1h",
    "reports_per_view",
    "has_image",
)
ENGAGEMENT = ("views_1h", "shares_1h", "comments_1h", "reports_1h")
NEW_ACCOUNT_DAYS = 30


def meta_features(
    account_age_days: np.ndarray,
    followers: np.ndarray,
    past_violations: np.ndarray,
    engagement: pd.DataFrame,
    has_image: np.ndarray,
) -> np.ndarray:
    """``(n, len(META_COLUMNS))`` float32: the author and first-hour engagement features."""
    age = np.asarray(account_age_days, np.float64)
    views = engagement["views_1h"].to_numpy(np.float64)
    per_view = np.maximum(views, 1.0)
    cols = [
        np.log1p(np.maximum(age, 0)),
        (age < NEW_ACCOUNT_DAYS).astype(np.float64),
        np.log1p(np.maximum(np.asarray(followers, np.float64), 0)),
        np.log1p(np.maximum(np.asarray(past_violations, np.float64), 0)),
        np.log1p(views),
        engagement["shares_1h"].to_numpy(np.float64) / per_view,
        engagement["comments_1h"].to_numpy(np.float64) / per_view,
        np.log1p(engagement["reports_1h"].to_numpy(np.float64)),
        engagement["reports_1h"].to_numpy(np.float64) / per_view,
        np.asarray(has_image, np.float64),
    ]
    return np.stack(cols, axis=1).astype(np.float32)


def post_meta(posts: pd.DataFrame) -> np.ndarray:
    return meta_features(
        posts["account_age_days"].to_numpy(),
        posts["followers"].to_numpy(),
        posts["past_violations"].to_numpy(),
        posts[list(ENGAGEMENT)],
        posts["has_image"].to_numpy(),
    )


@dataclass(frozen=True)
class PostInputs:
    """What the models read for a set of posts (rows aligned)."""

    texts: list[str]
    text_emb: np.ndarray  # (n, 384) float32 unit rows
    images: np.ndarray  # (n, s, s, 3) uint8, blank where has_image is 0
    has_image: np.ndarray  # (n,) bool
    meta: np.ndarray  # (n, len(META_COLUMNS)) float32

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, rows: np.ndarray) -> PostInputs:
        return PostInputs(
            [self.texts[int(i)] for i in rows],
            self.text_emb[rows],
            self.images[rows],
            self.has_image[rows],
            self.meta[rows],
        )


def embed_texts(encoder: CachedEncoder, texts: Sequence[str]) -> np.ndarray:
    return encoder.encode([str(t) for t in texts])


@dataclass(frozen=True)
class TimeSplit:
    """Row indices of the training, validation, test and drift days."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    drift: np.ndarray
    days: dict[str, tuple[int, int]]  # name -> (first day, last day + 1)


def time_split(day: np.ndarray, train_days: int, val_days: int, test_days: int) -> TimeSplit:
    d = np.asarray(day)
    c1, c2, c3 = train_days, train_days + val_days, train_days + val_days + test_days
    return TimeSplit(
        train=np.flatnonzero(d < c1),
        val=np.flatnonzero((d >= c1) & (d < c2)),
        test=np.flatnonzero((d >= c2) & (d < c3)),
        drift=np.flatnonzero(d >= c3),
        days={"train": (0, c1), "val": (c1, c2), "test": (c2, c3), "drift": (c3, int(d.max()) + 1)},
    )


@dataclass(frozen=True)
class Prepared:
    """Step 3's result: the inputs of every post, the labels, the split and where they came
    from (the world, or a labelled text file)."""

    source: str
    classes: tuple[str, ...]
    inputs: PostInputs
    Y: np.ndarray  # (n, C) 0/1
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    drift: np.ndarray
    encoder: str
    embed_seconds: float
    distinct_texts: int
    days: dict[str, tuple[int, int]]
    benign: int | None = None  # a file's benign class (multi-class), if any
    multilabel: bool = True

    def metrics(self) -> dict[str, object]:
        prevalence = {c: float(self.Y[:, k].mean()) for k, c in enumerate(self.classes)}
        return {
            "data": {
                "source": self.source,
                "posts": len(self.inputs),
                "classes": list(self.classes),
                "prevalence": prevalence,
                "any_harm_prevalence": float(self.Y.max(axis=1).mean()),
                "with_image": int(self.inputs.has_image.sum()),
            },
            "features": {
                "text_encoder": self.encoder,
                "distinct_texts": self.distinct_texts,
                "embed_seconds": round(self.embed_seconds, 3),
                "split": {k: len(getattr(self, k)) for k in ("train", "val", "test", "drift")},
                "days": {k: list(v) for k, v in self.days.items()},
                "meta_columns": list(META_COLUMNS),
            },
        }


def report_data(bp: Blueprint, p: Prepared, world: HarmWorld | None) -> None:
    """Step 3 in the blueprint: where the posts come from, the split, the prevalence."""
    m = p.metrics()
    prev = m["data"]["prevalence"]  # type: ignore[index]
    if world is not None:
        cfg = world.config
        bp.text(
            f"The simulated platform: {len(p.inputs):,} posts by {cfg.n_authors:,} authors over "
            f"{cfg.total_days} days ({cfg.train_days} training, {cfg.val_days} validation, "
            f"{cfg.test_days} test, then {cfg.drift_days} days in which a new harm vocabulary "
            f"spreads). {int(p.inputs.has_image.sum()):,} posts carry an image. Harm is rare: "
            f"{p.Y.max(axis=1).mean():.2%} of posts break a policy. Texts come from a pool of "
            f"messages (copied text repeats): {p.distinct_texts:,} distinct texts, embedded "
            f"with {p.encoder} in {p.embed_seconds:.1f} s."
        )
    else:
        bp.text(f"The file {p.source}: {len(p.inputs):,} texts, classes {list(p.classes)}.")
    bp.table(["class", "share of posts"], [[c, v] for c, v in prev.items()])
