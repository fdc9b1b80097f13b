"""The indexing pipeline: embed a folder of images in batches and add them to a run's index.

The chapter's indexing pipeline (book ch. 2, "Serving") embeds new catalogue images with the
served encoder and adds them to the index, so they become searchable without retraining or
rebuilding. :func:`index_folder` does that for any folder of images (recursively: PNG, JPEG,
BMP, GIF, WebP), ``batch_size`` images at a time so memory stays bounded, reporting progress
after each batch. The run directory's served index, its id labels (the file paths relative to
the folder) and ``serving.json`` are updated in place; a running server picks them up on
``POST /v1/visual-search/reload``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlsd.data import DataError
from mlsd.systems.visual_search.datasets import ImageDecodeError, decode_image, list_images
from mlsd.systems.visual_search.index import VectorIndex
from mlsd.systems.visual_search.serving import (
    INDEX_DIR,
    SERVING_FILE,
    ServingArtifactError,
    artifacts_dir_of,
    load_searcher,
    write_labels,
)

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
        index = VectorIndex.build("flat", np.zeros((0, encoder.dim), np.float32),
                                  np.zeros(0, np.int64))  # fmt: skip
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
    _save(artifacts, index, labels)
    seconds = time.perf_counter() - t0
    log.info("indexed %d images from %s in %.1f s (%d skipped); index holds %d",
             next_id - first_id, folder, seconds, len(skipped), len(index))  # fmt: skip
    return IndexFolderResult(next_id - first_id, skipped, len(index), first_id, seconds)


def _save(artifacts: Path, index: VectorIndex, labels: dict[int, str]) -> None:
    index.save(artifacts / INDEX_DIR)
    write_labels(artifacts, labels)
    meta_path = artifacts / SERVING_FILE
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ServingArtifactError(f"{meta_path}: unreadable serving artifact: {exc}") from exc
    meta.update(index_kind=index.kind, index_size=len(index))
    tmp = meta_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, separators=(",", ":")))
    tmp.replace(meta_path)
