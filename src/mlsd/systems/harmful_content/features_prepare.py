"""Step 3 from each source: the simulated platform's posts, or a labelled text file, as the one
:class:`~.features.Prepared` every later step reads.

The world: every post's text embedded (each distinct text once), its image rendered, its author
and first-hour engagement features, split by time. A file: its texts embedded, no image and no
author (the models that need them are not trained), split as published baselines split it
(:func:`~.datasets.read_text_file`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from mlsd.systems.harmful_content import CLASSES
from mlsd.systems.harmful_content.datasets import TextFile
from mlsd.systems.harmful_content.features import PostInputs, Prepared, post_meta, time_split
from mlsd.systems.harmful_content.world import HarmWorld
from mlsd.text import CachedEncoder
from mlsd.training import torch_threads


def prepare_file(f: TextFile, encoder: CachedEncoder) -> Prepared:
    t0 = time.perf_counter()
    with torch_threads(1):
        emb = encoder.encode(f.texts)
    n = len(f.texts)
    inputs = PostInputs(
        f.texts,
        emb,
        np.zeros((n, 1, 1, 3), np.uint8),
        np.zeros(n, bool),
        np.zeros((n, 0), np.float32),
    )
    return Prepared(
        f.source,
        f.classes,
        inputs,
        f.Y,
        f.train,
        f.val,
        f.test,
        np.zeros(0, np.int64),
        encoder.name,
        time.perf_counter() - t0,
        len(set(f.texts)),
        {},
        f.benign,
        f.multilabel,
    )


def prepare_world(
    world: HarmWorld, encoder: CachedEncoder, progress: Callable[[str, float, float], None]
) -> Prepared:
    cfg = world.config
    posts = world.posts
    split = time_split(posts["day"].to_numpy(), cfg.train_days, cfg.val_days, cfg.test_days)
    progress("embedding texts", 0, 1)
    t0 = time.perf_counter()
    texts = posts["text"].tolist()
    with torch_threads(1):  # two threads on two shared cores: 3x slower
        emb = encoder.encode(texts)
    seconds = time.perf_counter() - t0
    has = posts["has_image"].to_numpy()
    images = np.zeros((len(posts), cfg.image_size, cfg.image_size, 3), np.uint8)
    rows = np.flatnonzero(has)
    images[rows] = world.images(rows)
    inputs = PostInputs(texts, emb, images, has, post_meta(posts))
    return Prepared(
        "world",
        CLASSES,
        inputs,
        world.labels(),
        split.train,
        split.val,
        split.test,
        split.drift,
        encoder.name,
        seconds,
        len(set(texts)),
        split.days,
    )
