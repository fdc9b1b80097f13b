"""The indexing pipeline: embed a folder of images in batches and add them to a run's index.

``mlsd index-images FOLDER --run RUN`` (:mod:`.commands`) runs :func:`index_folder`.

The chapter's indexing pipeline (book ch. 2, "Serving") embeds new catalogue images with the
served encoder and adds them to the index, so they become searchable without retraining or
rebuilding. :func:`index_folder` does that for any folder of images (recursively: PNG, JPEG,
BMP, GIF, WebP), ``batch_size`` images at a time so memory stays bounded, reporting progress
after each batch. The run directory's served index, its id labels (the file paths relative to
the folder) and ``serving.json`` are updated in place; a running server picks them up on
``POST /v1/visual-search/reload``.

An image is stored once: the SHA-256 of each indexed file's bytes is kept beside the index
(``index_hashes.json``: ``{sha256: id}``), so indexing the same folder again (or a copy of a
file under another name) adds nothing and says how many were already there. A folder with no
decodable image is refused (:class:`~mlsd.data.DataError`) before anything is written, so
``--replace --skip-bad`` never leaves an empty index behind.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlsd.artifacts import artifacts_dir_of, write_json
from mlsd.data import DataError
from mlsd.index import VectorIndex
from mlsd.serving import read_artifact_json
from mlsd.systems.visual_search.datasets import IMAGE_SUFFIXES, list_images
from mlsd.systems.visual_search.features import ImageDecodeError, decode_image
from mlsd.systems.visual_search.serving import load_searcher, update_index

log = logging.getLogger(__name__)

HASHES_FILE = "index_hashes.json"  # beside the index: {sha256 of an image file's bytes: id}

IndexProgress = Callable[[int, int], None]  # (images done, images total)


@dataclass(frozen=True)
class IndexFolderResult:
    indexed: int
    skipped: list[str]
    index_size: int
    first_id: int
    seconds: float
    already_indexed: int = 0  # files whose bytes the index already holds: not stored again


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
    is skipped (and listed in the result) with ``skip_bad=True``; a folder with no decodable
    image at all raises :class:`~mlsd.data.DataError` and writes nothing. A file whose bytes
    are already indexed (same SHA-256) is counted in ``already_indexed`` and not stored again.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "not a directory of images")
    files = list_images(folder)
    if not files:
        raise DataError(folder, f"no image files ({', '.join(IMAGE_SUFFIXES)}) under it")
    artifacts = artifacts_dir_of(run_dir)
    searcher = load_searcher(artifacts)
    encoder, size = searcher.encoder, searcher.image_size
    if replace:
        empty = np.zeros((0, encoder.dim), np.float32)
        index = VectorIndex.build("flat", empty, np.zeros(0, np.int64))
        labels: dict[int, str] = {}
        hashes: dict[str, int] = {}
    else:
        index, labels = searcher.index, dict(searcher.labels)
        hashes = read_hashes(artifacts, {int(i) for i in index.ids})
    first_id = int(index.ids.max()) + 1 if len(index) else 0
    next_id, skipped, already = first_id, [], 0
    t0 = time.perf_counter()
    for start in range(0, len(files), batch_size):
        batch, names, digests = [], [], []
        for f in files[start : start + batch_size]:
            try:
                raw = f.read_bytes()
                digest = hashlib.sha256(raw).hexdigest()
                if digest in hashes or digest in digests:
                    already += 1
                    continue
                batch.append(decode_image(raw, size))
            except (ImageDecodeError, OSError) as exc:
                if not skip_bad:
                    raise DataError(f, str(exc)) from None
                log.warning("skipped %s: %s", f, exc)
                skipped.append(str(f))
                continue
            names.append(str(f.relative_to(folder)))
            digests.append(digest)
        if batch:
            ids = np.arange(next_id, next_id + len(batch), dtype=np.int64)
            index.add(encoder.encode(np.stack(batch)), ids)
            labels.update({int(i): n for i, n in zip(ids, names, strict=True)})
            hashes.update({d: int(i) for d, i in zip(digests, ids, strict=True)})
            next_id += len(batch)
        if progress is not None:
            progress(min(start + batch_size, len(files)), len(files))
    indexed = next_id - first_id
    if indexed == 0 and already == 0:
        raise DataError(
            folder,
            f"no decodable image among its {len(files)} image files ({len(skipped)} skipped as "
            "bad): nothing written, the index is unchanged",
        )
    if indexed or replace:
        write_json(artifacts / HASHES_FILE, hashes)  # before update_index: in the manifest
        update_index(artifacts, index, labels)
    seconds = time.perf_counter() - t0
    log.info(
        "indexed %d images from %s in %.1f s (%d already indexed, %d skipped); index holds %d",
        indexed,
        folder,
        seconds,
        already,
        len(skipped),
        len(index),
    )
    return IndexFolderResult(indexed, skipped, len(index), first_id, seconds, already)


def read_hashes(artifacts_dir: Path, ids: set[int]) -> dict[str, int]:
    """``{sha256: id}`` of the images indexed by earlier calls, those still in the index only
    (none when the file is missing, e.g. an index built by the run itself from arrays)."""
    path = artifacts_dir / HASHES_FILE
    if not path.is_file():
        return {}
    raw = read_artifact_json(path)
    if not isinstance(raw, dict):
        raise DataError(path, "not a JSON object of {sha256: id}")
    return {str(d): int(i) for d, i in raw.items() if isinstance(i, int) and i in ids}
