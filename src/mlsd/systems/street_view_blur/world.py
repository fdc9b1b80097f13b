"""The simulated street: images captured along routes over days, every face and plate known.

A capture car drives routes and takes pictures day after day (``world_render`` paints each).
Each image's conditions are drawn from its day: at first a fifth of the images are taken at
night, a tenth in fog, with little camera blur. Two days after the training period the fleet
starts to change (new cameras, winter): night, fog, blur and exposure drift further each day,
what monitoring has to notice. Every box is known, so every metric has a perfect detector beside it.

The world hands out :class:`ImageSet` s: the images (``n × H × W × 3`` BGR ``uint8``), one row
per object (``image, label, x, y, w, h, occluded``) and one per image (``image, day, night, fog,
blur``). Users of the blurred imagery report a face or plate left visible with a probability
(:meth:`StreetWorld.reports`): the online experiment's outcome.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from mlsd.rng import rng
from mlsd.systems.street_view_blur.world_render import FACE, PLATE, Conditions, render_scene
from mlsd.world import Scale

log = logging.getLogger(__name__)

CLASSES = ("face", "plate")
assert CLASSES[FACE] == "face" and CLASSES[PLATE] == "plate"
BOX_COLUMNS = ("image", "label", "x", "y", "w", "h", "occluded")


@dataclass(frozen=True)
class StreetConfig:
    width: int
    height: int
    n_train: int
    n_val: int
    n_test: int
    train_days: int  # the days the labelled images come from
    ab_days: int
    ab_images_per_day: int
    monitor_days: int
    monitor_images_per_day: int
    epochs: int  # the detectors' training epochs at this scale

    @classmethod
    def for_scale(cls, scale: Scale) -> StreetConfig:
        if scale == Scale.TINY:
            return cls(128, 96, 32, 12, 12, 4, 2, 16, 2, 8, epochs=2)
        if scale == Scale.SMALL:
            return cls(128, 96, 600, 120, 200, 20, 4, 150, 6, 100, epochs=12)
        if scale == Scale.MEDIUM:
            return cls(160, 120, 3000, 400, 800, 40, 7, 500, 10, 150, epochs=16)
        return cls(192, 144, 20_000, 2000, 4000, 60, 14, 2000, 14, 500, epochs=20)

    def with_(self, **changes: int) -> StreetConfig:
        return replace(self, **changes)


@dataclass(frozen=True)
class ImageSet:
    """Images with their boxes (``BOX_COLUMNS``, pixels) and per-image facts (``meta``)."""

    images: np.ndarray  # (n, H, W, 3) uint8 BGR
    boxes: pd.DataFrame
    meta: pd.DataFrame  # image, day, night, fog, blur (the world's; files: day 0, no night)
    names: tuple[str, ...] = ()  # file names (files only)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def boxes_of(self, i: int) -> pd.DataFrame:
        return self.boxes[self.boxes["image"] == i]

    def subset(self, idx: np.ndarray) -> ImageSet:
        """The images ``idx`` renumbered 0..len(idx)-1."""
        idx = np.asarray(idx, dtype=np.int64)
        remap = {int(old): new for new, old in enumerate(idx)}
        b = self.boxes[self.boxes["image"].isin(list(remap))].copy()
        b["image"] = b["image"].map(remap).astype(np.int64)
        m = self.meta.iloc[idx].copy()
        m["image"] = np.arange(len(idx), dtype=np.int64)
        names = tuple(self.names[i] for i in idx) if self.names else ()
        return ImageSet(self.images[idx], b.reset_index(drop=True), m.reset_index(drop=True), names)


def empty_boxes() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image": np.zeros(0, np.int64),
            "label": np.zeros(0, np.int64),
            **{c: np.zeros(0, np.float64) for c in ("x", "y", "w", "h", "occluded")},
        }
    )


def conditions(r: np.random.Generator, drift: float) -> Conditions:
    """An image's capture conditions; ``drift`` 0 = the training period, 1 = a changed fleet."""
    return Conditions(
        night=bool(r.random() < 0.2 + 0.35 * drift),
        fog=float(r.uniform(0.2, 0.5)) if r.random() < 0.1 + 0.35 * drift else 0.0,
        blur=float(r.uniform(0.0, 0.6 + 1.2 * drift)),
        exposure=float(r.uniform(0.85, 1.15) * (1 - 0.25 * drift)),
    )


class StreetWorld:
    """The street world of one seed and scale."""

    def __init__(self, scale: Scale, seed: int, config: StreetConfig | None = None) -> None:
        self.scale = scale
        self.seed = seed
        self.config = config or StreetConfig.for_scale(scale)

    def render(self, purpose: str, n: int, days: np.ndarray, drift: np.ndarray) -> ImageSet:
        """``n`` images of stream ``purpose``; image ``i`` is captured on ``days[i]``."""
        cfg = self.config
        images = np.zeros((n, cfg.height, cfg.width, 3), np.uint8)
        rows, meta = [], []
        for i in range(n):
            r = rng(self.seed, f"street-view/{purpose}/{i}")
            cond = conditions(r, float(drift[i]))
            crowd = 2.5 if r.random() < 0.1 else 1.0
            images[i], objects = render_scene(cfg.width, cfg.height, r, cond, crowd)
            rows += [(i, label, *box, occ) for label, box, occ in objects]
            meta.append((i, int(days[i]), cond.night, cond.fog, cond.blur))
        boxes = pd.DataFrame(rows, columns=list(BOX_COLUMNS)) if rows else empty_boxes()
        boxes = boxes.astype({"image": np.int64, "label": np.int64})
        frame = pd.DataFrame(meta, columns=["image", "day", "night", "fog", "blur"])
        return ImageSet(images, boxes, frame)

    def labelled(self, split: str) -> ImageSet:
        """The labelled images of ``split`` (train / val / test), from the training period."""
        cfg = self.config
        n = {"train": cfg.n_train, "val": cfg.n_val, "test": cfg.n_test}[split]
        days = rng(self.seed, f"street-view/days/{split}").integers(0, cfg.train_days, n)
        return self.render(split, n, np.sort(days), np.zeros(n))

    def day_images(self, purpose: str, day: int, n: int) -> ImageSet:
        """``n`` fresh images of day ``day`` after the training period (``day`` >= 1): the first
        two days like the training period, then the fleet's drift grows day by day."""
        drift = float(np.clip((day - 2) / max(1, self.config.monitor_days - 2), 0.0, 1.0))
        days = np.full(n, self.config.train_days + day)
        return self.render(f"{purpose}/{day}", n, days, np.full(n, drift))

    def reports(self, unblurred: np.ndarray, image_ids: np.ndarray, purpose: str) -> np.ndarray:
        """User reports per image: each image is viewed a Poisson(40) number of times and each
        view reports each face or plate left visible (``unblurred`` per image) with
        probability 0.5%."""
        r = rng(self.seed, f"street-view/reports/{purpose}")
        views = r.poisson(40.0, len(image_ids))
        p = 1.0 - (1.0 - 0.005) ** np.asarray(unblurred, dtype=np.float64)
        return r.binomial(views, p).astype(np.float64)
