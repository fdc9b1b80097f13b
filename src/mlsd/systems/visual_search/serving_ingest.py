"""The indexing pipeline: embed a folder of images in batches and add them to a run's index.

``mlsd index-images FOLDER --run RUN`` (:mod:`.commands`) runs :func:`index_folder`.

The chapter's indexing pipeline (book ch. 2, "Serving") embeds new catalogue images with the
served encoder and adds them to the index, so they become searchable without retraining or
rebuilding. :func:`index_folder` does that for any folder of images (recursively: PNG, JPEG,
BMP, GIF, WebP), ``batch_size`` images at a time so memory stays bounded, reporting progress
after each batch. The run directory's served index, its id labels (the file paths relative to
the folder) and ``serving.json`` are updated in place; a running server picks them up on
``POST /v1/visual-search/reload``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlsd.artifacts import artifacts_dir_of
from mlsd.data import DataError
from mlsd.index import VectorIndex
from mlsd.systems.visual_search.datasets import list_images
from mlsd.systems.visual_search.features import ImageDecodeError, decode_image
from mlsd.systems.visual_search.serving import load_searcher, update_index

log = logging.getLogger(__name__)

IndexProgress = Callable[[int, int], None]  # (images done, images total)


@dataclass(frozen=True)
class IndexFolderResult:
    indexed: int
    skipped: list[str]
    index_size: int
    first_id: int
    seconds: float


def index_folder(
    folder: Path,
    run_dir: Path,
    batch_size: int = 256,
    progress: IndexProgress | None = None,
    *,
    replace: bool = False,
    skip_bad: bool = False,
) -> IndexFolderResult:
    """Embed every image under ``folder`` with ``run_dir``'s encoder and add it to its index.

    ``replace=True`` starts a fresh exact index instead of adding to the served one.
    A file that is not a decodable image raises :class:`~mlsd.data.DataError` naming it, or
    is skipped (and listed in the result) with ``skip_bad=True``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "not a directory of images")
    files = list_images(folder)
    if not files:
        raise DataError(folder, "no image files (.png, .jpg, .jpeg, .bmp, .gif, .webp) under it")
    artifacts = artifacts_dir_of(run_dir)
    searcher = load_searcher(artifacts)
    encoder, size = searcher.encoder, searcher.image_size
    if replace:
        empty = np.zeros((0, encoder.dim), np.float32)
        index = VectorIndex.build("flat", empty, np.zeros(0, np.int64))
        labels: dict[int, str] = {}
    else:
        index, labels = searcher.index, dict(searcher.labels)
    first_id = int(index.ids.max()) + 1 if len(index) else 0
    next_id, skipped = first_id, []
    t0 = time.perf_counter()
    for start in range(0, len(files), batch_size):
        batch, names = [], []
        for f in files[start : start + batch_size]:
            try:
                batch.append(decode_image(f.read_bytes(), size))
                names.append(str(f.relative_to(folder)))
            except (ImageDecodeError, OSError) as exc:
                if not skip_bad:
                    raise DataError(f, str(exc)) from None
                log.warning("skipped %s: %s", f, exc)
                skipped.append(str(f))
        if batch:
            ids = np.arange(next_id, next_id + len(batch), dtype=np.int64)
            index.add(encoder.encode(np.stack(batch)), ids)
            labels.update({int(i): n for i, n in zip(ids, names, strict=True)})
            next_id += len(batch)
        if progress is not None:
            progress(min(start + batch_size, len(files)), len(files))
    update_index(artifacts, index, labels)
    seconds = time.perf_counter() - t0
    log.info(
        "indexed %d images from %s in %.1f s (%d skipped); index holds %d",
        next_id - first_id,
        folder,
        seconds,
        len(skipped),
        len(index),
    )
    return IndexFolderResult(next_id - first_id, skipped, len(index), first_id, seconds)
