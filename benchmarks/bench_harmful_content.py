"""Harmful content: the cost of classifying one post, by what it carries, and batched.

Book ch. 5 ("Serving"): a post is classified when it goes up. This benchmark builds a served
model on a small world (the early-fusion multi-task network over the MiniLM text embedding, in
place of the run's text branch, the image CNN's logits and descriptors, author and engagement)
and measures
:meth:`HarmScorer.classify` one post at a time, one torch thread: text only, text + image (PNG
decoded and resized), and the per-post cost of :meth:`HarmScorer.score` on batches of 64 (the
``mlsd classify-posts`` path). Texts are new to the encoder (its cache is cleared each time).
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import BenchResult, latency_stats_ms
from mlsd.systems.harmful_content import CLASSES
from mlsd.systems.harmful_content.evaluation import choose_thresholds
from mlsd.systems.harmful_content.features import post_meta
from mlsd.systems.harmful_content.model import Lineup, make_reps
from mlsd.systems.harmful_content.model_fusion import HarmClassifier
from mlsd.systems.harmful_content.model_image import ImageCNN
from mlsd.systems.harmful_content.serving import (
    HarmScorer,
    Post,
    encode_png,
    load_scorer,
    save_serving_artifacts,
)
from mlsd.systems.harmful_content.world import HarmWorld
from mlsd.systems.harmful_content.world_config import HarmWorldConfig
from mlsd.text import make_encoder
from mlsd.training import torch_threads
from mlsd.world import Scale

log = logging.getLogger(__name__)
BATCH = 64


def served(directory: Path, quick: bool) -> tuple[HarmScorer, HarmWorld]:
    kind = "hashing" if quick else "minilm"
    cfg = HarmWorldConfig.for_scale(Scale.TINY).with_(n_posts=2_000, image_size=32)
    w = HarmWorld(Scale.TINY, 0, cfg)
    posts = w.posts
    has = posts["has_image"].to_numpy()
    images = np.zeros((len(posts), 32, 32, 3), np.uint8)
    images[has] = w.images(np.flatnonzero(has))
    Y = w.labels()
    cnn = ImageCNN(epochs=2).fit(images[has], Y[has])
    texts = posts["text"].tolist()
    with torch_threads(1):
        emb = make_encoder(kind).encode(texts)
    reps = make_reps(texts, emb, images, has, post_meta(posts), cnn, len(CLASSES))
    model = HarmClassifier(epochs=3).fit(reps.early(), Y)
    lineup = Lineup({"early_multi_task": model}, cnn, np.clip(Y.mean(axis=0), 1e-6, 1))
    th = choose_thresholds(Y, model.predict_proba(reps.early()), CLASSES)
    authors = w.authors[["author_id", "signup_day", "followers", "past_violations"]]
    save_serving_artifacts(
        directory,
        lineup,
        "early_multi_task",
        th,
        CLASSES,
        kind,
        32,
        authors,
        30,
        reps.meta.shape[1],
    )
    return load_scorer(directory), w


def run(quick: bool = False) -> BenchResult:
    n = 30 if quick else 200
    with tempfile.TemporaryDirectory() as tmp:
        scorer, w = served(Path(tmp) / "artifacts", quick)
        rows = np.flatnonzero(w.posts["has_image"].to_numpy())[: n + BATCH]
        images = w.images(rows)
        posts = [
            Post(f"{w.posts['text'].iat[int(r)]} #{i}", encode_png(images[i]), 3)
            for i, r in enumerate(rows)
        ]
        out = []
        with torch_threads(1):
            scorer.classify(posts[0])  # warm-up (model load)
            for label, make in (
                ("text only", lambda p: Post(p.text, None, p.author_id)),
                ("text + image", lambda p: p),
            ):
                scorer.encoder.cache.clear()
                times = []
                for p in posts[:n]:
                    t0 = time.perf_counter()
                    scorer.classify(make(p))
                    times.append(time.perf_counter() - t0)
                out.append({"request": label, **latency_stats_ms(times)})
            scorer.encoder.cache.clear()
            t0 = time.perf_counter()
            scorer.score(posts[n : n + BATCH])
            per_post = (time.perf_counter() - t0) / BATCH
        out.append({"request": f"batch of {BATCH}, per post", "mean_ms": per_post * 1e3})
    return BenchResult(
        name="harmful_content",
        description="classify one post (text only, text + image) and per post in a batch",
        rows=out,
        summary={
            "p99_ms_text_image": out[1]["p99_ms"],
            "batch_per_post_ms": per_post * 1e3,
            "encoder": scorer.encoder.name,
        },
        params={"requests": n, "batch": BATCH, "quick": quick},
    )
