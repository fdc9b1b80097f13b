"""Step 6 for visual search: the scorer (decode, embed, search) and its artifacts; no HTTP.

The chapter's serving design (book ch. 2, "Serving"): the prediction pipeline decodes and
preprocesses the query image, the embedding service turns it into a vector, and the
nearest-neighbour service returns the closest catalogue images; the indexing pipeline adds new
catalogue images to the index (:mod:`.serving_ingest`). :class:`VisualSearcher` is the
prediction pipeline in-process, with the time split into decode + embed and search;
:func:`load_scorer` loads it from a run directory. Its HTTP router is
:mod:`mlsd.api.routes.visual_search`.

A run directory's ``artifacts/`` hold ``encoder/`` (the served encoder, saved as data by
:mod:`mlsd.model_io`: PCA arrays or the CNN's state dict, and JSON), ``index/`` (the FAISS index
in FAISS's own format and the catalogue id of each row), ``index_labels.json`` (a readable label
per id), ``serving.json`` (the model's name, image size, dimensions and the index's kind and
size) and ``manifest.json`` (the hash of every file, checked before anything is loaded).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from mlsd.artifacts import artifacts_dir_of, verify_manifest, write_json, write_manifest
from mlsd.index import VectorIndex
from mlsd.serving import ServingArtifactError, read_artifact_json
from mlsd.settings import Settings
from mlsd.systems.visual_search.features import MAX_SIDE, decode_image
from mlsd.systems.visual_search.model import CNNEncoder, ImageEncoder

log = logging.getLogger(__name__)

SYSTEM = "visual-search"
ENCODER_DIR = "encoder"
INDEX_DIR = "index"
LABELS_FILE = "index_labels.json"
SERVING_FILE = "serving.json"


@dataclass(frozen=True)
class SearchResult:
    ids: list[int]
    scores: list[float]
    labels: list[str]
    embed_ms: float
    search_ms: float


class VisualSearcher:
    """Decode → embed → nearest neighbours, with the time of each half measured."""

    def __init__(
        self,
        encoder: ImageEncoder,
        index: VectorIndex,
        model_name: str,
        image_size: int,
        labels: dict[int, str] | None = None,
    ) -> None:
        self.encoder = encoder
        self.index = index
        self.model_name = model_name
        self.image_size = image_size
        self.labels = labels or {}

    def search_images(self, images: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch search: ``(scores, ids)`` for already-decoded ``(N, S, S, 3)`` images."""
        return self.index.search(self.encoder.encode(images), k)

    def search_bytes(self, data: bytes, k: int) -> SearchResult:
        """One uploaded image; raises :class:`~.features.ImageDecodeError` for bytes that are no
        image (or an image over ``MAX_SIDE`` pixels a side)."""
        t0 = time.perf_counter()
        image = decode_image(data, self.image_size, MAX_SIDE)
        emb = self.encoder.encode(image[None])
        t1 = time.perf_counter()
        scores, ids = self.index.search(emb, k)
        t2 = time.perf_counter()
        keep = ids[0] >= 0
        id_list = [int(i) for i in ids[0][keep]]
        return SearchResult(
            ids=id_list,
            scores=[float(s) for s in scores[0][keep]],
            labels=[self.labels.get(i, str(i)) for i in id_list],
            embed_ms=(t1 - t0) * 1000.0,
            search_ms=(t2 - t1) * 1000.0,
        )


# ---- artifacts ---------------------------------------------------------------------------------
def save_serving_artifacts(
    artifacts_dir: Path,
    encoder: ImageEncoder,
    model_name: str,
    index: VectorIndex,
    image_size: int,
    labels: dict[int, str] | None = None,
) -> None:
    """Write the encoder, the index, the id labels and ``serving.json`` (each atomically), and
    last the manifest of the folder."""
    out = Path(artifacts_dir)
    out.mkdir(parents=True, exist_ok=True)
    encoder.save(out / ENCODER_DIR)
    index.save(out / INDEX_DIR)
    write_labels(out, labels or {})
    meta = {
        "system": SYSTEM,
        "model_name": model_name,
        "model_class": type(encoder).__name__,
        "image_size": image_size,
        "dim": encoder.dim,
        "index_kind": index.kind,
        "index_size": len(index),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_json(out / SERVING_FILE, meta)
    write_manifest(out)


def write_labels(artifacts_dir: Path, labels: dict[int, str]) -> None:
    write_json(artifacts_dir / LABELS_FILE, {str(k): v for k, v in labels.items()})


def update_index(artifacts_dir: Path, index: VectorIndex, labels: dict[int, str]) -> None:
    """Replace the served index and its labels, record its kind and size in ``serving.json``,
    and write the manifest again (what :mod:`.serving_ingest` does after adding images)."""
    index.save(artifacts_dir / INDEX_DIR)
    write_labels(artifacts_dir, labels)
    meta = read_artifact_json(artifacts_dir / SERVING_FILE)
    if not isinstance(meta, dict):
        raise ServingArtifactError(f"{artifacts_dir / SERVING_FILE}: not a JSON object")
    meta.update(index_kind=index.kind, index_size=len(index))
    write_json(artifacts_dir / SERVING_FILE, meta)
    write_manifest(artifacts_dir)


def load_searcher(artifacts_dir: Path, num_threads: int = 1) -> VisualSearcher:
    """The searcher an ``artifacts/`` folder describes, its CNN on ``num_threads`` threads.

    The folder is checked against its manifest first (:func:`mlsd.artifacts.verify_manifest`),
    and the encoder is read as data (no pickle)."""
    artifacts_dir = Path(artifacts_dir)
    verify_manifest(artifacts_dir, required=(SERVING_FILE, ENCODER_DIR, INDEX_DIR, LABELS_FILE))
    meta = read_artifact_json(artifacts_dir / SERVING_FILE)
    if not isinstance(meta, dict) or not isinstance(meta.get("image_size"), int):
        raise ServingArtifactError(f"{artifacts_dir / SERVING_FILE}: field 'image_size' missing")
    try:
        encoder = ImageEncoder.load(artifacts_dir / ENCODER_DIR)
        index = VectorIndex.load(artifacts_dir / INDEX_DIR)
    except (OSError, TypeError, ValueError, RuntimeError, KeyError) as exc:
        raise ServingArtifactError(f"{artifacts_dir}: unreadable encoder or index: {exc}") from exc
    if isinstance(encoder, CNNEncoder):
        encoder.num_threads = num_threads
    raw = read_artifact_json(artifacts_dir / LABELS_FILE)
    labels = {int(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
    log.info("loaded %s with a %s index of %d images", meta["model_name"], index.kind, len(index))
    return VisualSearcher(encoder, index, str(meta["model_name"]), meta["image_size"], labels)


def load_scorer(run_dir: Path, settings: Settings) -> VisualSearcher:
    """What ``mlsd serve visual-search`` serves: the searcher of a run directory (or of a bare
    ``artifacts/`` folder), its CNN on ``settings.torch_threads`` threads."""
    return load_searcher(artifacts_dir_of(run_dir), settings.torch_threads)
