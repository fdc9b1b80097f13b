"""Step 3 for visual search: the run's images, split so no image is both trained on and scored.

A run has three sets (book ch. 2, "Data preparation"): the **training** images the encoders
learn from, the **catalogue** that is indexed and searched, and the **queries** (user uploads)
scored against it, each with its ground truth (:class:`RetrievalSet`). From the world, products
are split by seed into training and evaluation products; the catalogue is the evaluation
products' photos and the queries are fresh photos of them. From files (``--data``), images are
split at random by seed into training images and held-out queries and catalogue.

Holding a catalogue as pixels is what does not scale (a million 32×32 RGB photos are 3 GB;
their 64-dim embeddings 256 MB), so the catalogue is an :class:`ImageSource` read ``chunk``
images at a time: an in-memory array (files) or the world's photographer (rendered on demand).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from mlsd.data import DataError
from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.runner import ProgressFn
from mlsd.systems.visual_search.datasets import read_dataset
from mlsd.systems.visual_search.world import QUERY_PHOTO_BASE, VisualSearchWorld

CHUNK = 4096
QUERIES_PER_PRODUCT = 2
FILE_TRAIN_SHARE = 0.5  # of the images in --data: the rest is held out for queries and index
FILE_QUERIES = {"tiny": 100, "small": 300, "medium": 1_000, "large": 2_000}
MAX_TRAIN_PRODUCTS = 2_000  # the encoder trains on the photos of at most this many products
MAX_QUERY_PRODUCTS = 2_000  # offline queries: photos of at most this many held-out products
# The evaluation reduces the encoders' embeddings by a PCA fitted on the training images to up
# to 32 dimensions (evaluation_size.SIZE_DIMS): fewer training images cannot be evaluated.
MIN_TRAIN_IMAGES = 32


# ---- image sources ------------------------------------------------------------------------------
class ImageSource(Protocol):
    """A sequence of uint8 ``(S, S, 3)`` images read a chunk (or a selection) at a time."""

    def __len__(self) -> int: ...

    def chunks(self, size: int = CHUNK) -> Iterator[np.ndarray]: ...

    def take(self, positions: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class ArrayImages:
    """Images already in memory (real data files)."""

    images: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def chunks(self, size: int = CHUNK) -> Iterator[np.ndarray]:
        for start in range(0, len(self.images), size):
            yield self.images[start : start + size]

    def take(self, positions: np.ndarray) -> np.ndarray:
        return np.asarray(self.images[np.asarray(positions, dtype=np.int64)])


@dataclass(frozen=True)
class WorldPhotos:
    """The world's photos ``(product_ids[i], photo_idx[i])``, rendered when read."""

    world: VisualSearchWorld
    product_ids: np.ndarray
    photo_idx: np.ndarray

    def __len__(self) -> int:
        return len(self.product_ids)

    def chunks(self, size: int = CHUNK) -> Iterator[np.ndarray]:
        return self.world.iter_photos(self.product_ids, self.photo_idx, chunk=size)

    def take(self, positions: np.ndarray) -> np.ndarray:
        pos = np.asarray(positions, dtype=np.int64)
        return self.world.photos(self.product_ids[pos], self.photo_idx[pos])


# ---- the retrieval set ------------------------------------------------------------------------
@dataclass
class RetrievalSet:
    """Training images, the catalogue to index and the queries, with their ground truth.

    ``*_groups`` name the product (world) or class (files) of each image; ``*_cats`` the
    category for partial relevance (``None`` when there is none, as for class-labelled files).
    ``index_images`` is an array or an :class:`ImageSource` read in chunks (any size).
    """

    train_images: np.ndarray
    train_groups: np.ndarray
    index_images: np.ndarray | ImageSource
    index_groups: np.ndarray
    query_images: np.ndarray
    query_groups: np.ndarray
    index_cats: np.ndarray | None = None
    query_cats: np.ndarray | None = None

    @property
    def index_ids(self) -> np.ndarray:
        return np.arange(self.n_index, dtype=np.int64)

    @property
    def n_index(self) -> int:
        return len(self.index_groups)

    @property
    def index_source(self) -> ImageSource:
        imgs = self.index_images
        return ArrayImages(imgs) if isinstance(imgs, np.ndarray) else imgs

    def with_queries(self, mask: np.ndarray) -> RetrievalSet:
        """The same catalogue with only the queries where ``mask`` is true."""
        cats = None if self.query_cats is None else self.query_cats[mask]
        return replace(
            self,
            query_images=self.query_images[mask],
            query_groups=self.query_groups[mask],
            query_cats=cats,
        )


# ---- step 3 ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DataResult:
    """Step 3: the retrieval set, the world it came from (``None`` for files), the model's image
    size, the class names of files, and the figures ``metrics.json`` records under ``data``."""

    retrieval: RetrievalSet
    world: VisualSearchWorld | None
    image_size: int
    class_names: list[str] | None
    figures: dict[str, Any]
    seed: int = 0
    train_products: int = 0  # world: products whose photos train the encoder
    query_products: int = 0  # world: products the queries show

    def metrics(self) -> dict[str, Any]:
        return {"data": self.figures}


def bounded_sample(ids: np.ndarray, limit: int, generator: np.random.Generator) -> np.ndarray:
    """All of ``ids`` when there are at most ``limit``, else a seeded sample (sorted)."""
    if len(ids) <= limit:
        return ids
    return np.sort(generator.choice(ids, size=limit, replace=False))


def data_from_world(
    world: VisualSearchWorld, seed: int, progress: ProgressFn | None = None
) -> DataResult:
    """Training photos of (at most ``MAX_TRAIN_PRODUCTS``) training products, the evaluation
    products' catalogue (streamed, never rendered here) and fresh query photos of them."""
    t0 = time.perf_counter()
    cfg = world.config
    train_products = bounded_sample(
        world.product_ids("train"), MAX_TRAIN_PRODUCTS, rng(seed, "data/train-products")
    )
    k = cfg.photos_per_product
    tp, tj = np.repeat(train_products, k), np.tile(np.arange(k), len(train_products))
    ep, ej = world.catalog("eval")
    if progress is not None:
        progress("rendering training photos", 0, 2)
    train = np.concatenate(list(world.iter_photos(tp, tj)))
    index = WorldPhotos(world, ep, ej)
    query_products = bounded_sample(
        world.product_ids("eval"), MAX_QUERY_PRODUCTS, rng(seed, "data/query-products")
    )
    qp = np.repeat(query_products, QUERIES_PER_PRODUCT)
    qj = QUERY_PHOTO_BASE + np.tile(np.arange(QUERIES_PER_PRODUCT), len(query_products))
    if progress is not None:
        progress("rendering query photos", 1, 2)
    queries = world.photos(qp, qj)
    rs = RetrievalSet(
        train, tp, index, ep, queries, qp, world.category_of(ep), world.category_of(qp)
    )
    figures = {
        "source": "world",
        "image_size": cfg.image_size,
        "categories": cfg.n_categories,
        "train_products": cfg.n_train_products,
        "eval_products": cfg.n_eval_products,
        "photos_per_product": cfg.photos_per_product,
        "train_images": len(train),
        "index_images": len(index),
        "query_images": len(queries),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return DataResult(
        rs, world, world.image_size, None, figures, seed, len(train_products), len(query_products)
    )


def data_from_files(spec: str, image_size: int, seed: int, scale: str) -> DataResult:
    """``FORMAT:PATH`` images split at random by seed: ``FILE_TRAIN_SHARE`` train, the rest
    held out, of which up to ``FILE_QUERIES[scale]`` (and a quarter) are queries."""
    t0 = time.perf_counter()
    data = read_dataset(spec, image_size)
    n_train, n_q, n_index = file_split_sizes(data.n_images, scale)
    if n_train < MIN_TRAIN_IMAGES or n_q < 1 or n_index < 1:
        need = next(n for n in range(2, 10_000) if _splits(n, scale))
        raise DataError(
            data.source,
            f"too few images to split: {data.n_images} images give {n_train} to train, {n_q} "
            f"queries and {n_index} to index; need at least {need} (the evaluation needs "
            f"{MIN_TRAIN_IMAGES} training images, a query and an image to index)",
        )
    perm = rng(seed, "data/file-split").permutation(data.n_images)
    train_idx, held = perm[:n_train], perm[n_train:]
    q_idx, i_idx = held[:n_q], held[n_q:]
    x, y = data.images, data.labels
    rs = RetrievalSet(x[train_idx], y[train_idx], x[i_idx], y[i_idx], x[q_idx], y[q_idx])
    figures = {
        "source": "file",
        "format": data.fmt,
        "path": data.source,
        "images": data.n_images,
        "classes": len(data.class_names),
        "source_size": data.source_size,
        "image_size": image_size,
        "train_images": len(train_idx),
        "index_images": len(i_idx),
        "query_images": len(q_idx),
        "split": f"random by seed {seed}: {FILE_TRAIN_SHARE:.0%} train, the rest held out "
        "(queries + index)",
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return DataResult(rs, None, image_size, list(data.class_names), figures, seed)


def file_split_sizes(n_images: int, scale: str) -> tuple[int, int, int]:
    """How many of ``n_images`` files train, query and are indexed (see
    :func:`data_from_files`)."""
    n_train = round(FILE_TRAIN_SHARE * n_images)
    n_q = min(FILE_QUERIES[scale], (n_images - n_train) // 4)
    return n_train, n_q, n_images - n_train - n_q


def _splits(n_images: int, scale: str) -> bool:
    n_train, n_q, n_index = file_split_sizes(n_images, scale)
    return n_train >= MIN_TRAIN_IMAGES and n_q >= 1 and n_index >= 1


def report_data(bp: Blueprint, result: DataResult) -> None:
    bp.section("Data preparation")
    if result.world is None:
        _report_files(bp, result)
        return
    cfg, rs = result.world.config, result.retrieval
    n_query = len(rs.query_images)
    sampled = "all" if result.query_products == cfg.n_eval_products else "a seeded sample"
    trained_on = (
        ""
        if result.train_products == cfg.n_train_products
        else f" The encoder trains on a seeded sample of {result.train_products:,} training "
        "products."
    )
    bp.text(
        f"A procedural catalogue of {cfg.n_train_products + cfg.n_eval_products:,} products in "
        f"{cfg.n_categories} categories (shape families); each has its own two colours from a "
        "10-colour palette (so colour alone is ambiguous), a pattern and a printed mark. Every "
        "photo changes viewpoint, scale, position, crop, background clutter, lighting and "
        f"noise; images are {cfg.image_size}×{cfg.image_size} RGB. Products are split by seed: "
        f"the encoder trains on the photos of {cfg.n_train_products:,} products; the other "
        f"{cfg.n_eval_products:,} products' {rs.n_index:,} catalogue photos form the index and "
        f"{n_query:,} fresh user photos of {result.query_products:,} of them ({sampled}) the "
        f"queries.{trained_on} The catalogue is never held as pixels: it is rendered and "
        "embedded in chunks."
    )
    bp.table(
        ["split", "products", "images", "used for"],
        [
            [
                "train",
                result.train_products,
                len(rs.train_images),
                "contrastive pairs; PCA of the baselines",
            ],
            ["index", cfg.n_eval_products, rs.n_index, "the searchable catalogue"],
            ["query", result.query_products, n_query, "user uploads (offline evaluation)"],
        ],
    )


def _report_files(bp: Blueprint, result: DataResult) -> None:
    d, names = result.figures, result.class_names or []
    size = result.image_size
    own = d.get("source_size", "")
    bp.text(
        f"Read **{d['images']:,} images**{f' ({own} pixels)' if own else ''} of {len(names)} "
        f"classes from `{d['path']}` ({d['format']} layout), resized to {size}×{size} RGB. "
        f"Split by seed {result.seed}: "
        f"{d['train_images']:,} images train the encoder; of the held-out rest, "
        f"{d['query_images']:,} are queries and {d['index_images']:,} the index. No image is "
        "both trained on and scored. The class is the relevance label (no partial grades)."
    )
