"""Step 6 for visual search: embed the uploaded image, search the index, serve it over HTTP.

The chapter's serving design (book ch. 2, "Serving"): the prediction pipeline decodes and
preprocesses the query image, the embedding service turns it into a vector, and the
nearest-neighbour service returns the closest catalogue images; the indexing pipeline adds new
catalogue images to the index. :class:`VisualSearcher` is that pipeline in-process, with the time
split into decode + embed and search; :func:`make_served_system` is its router.

``POST /v1/visual-search/search?k=10`` takes the image either as the raw request body with
``Content-Type: image/png`` or ``image/jpeg``, or as a ``multipart/form-data`` upload in the
field ``image``. It answers ``{"model", "index", "results": [{"id", "score", "label"}],
"timings_ms"}``. A wrong content type is a 415, an empty body or bytes that are not an image a
400, a body over ``MAX_BODY_BYTES`` or an image over ``MAX_SIDE`` pixels a side a 413.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from mlsd.serving import ApiError, ModelSlot, ServedSystem, ServingArtifactError, read_artifact_json
from mlsd.settings import Settings
from mlsd.systems.visual_search.datasets import MAX_SIDE, ImageDecodeError, decode_image
from mlsd.systems.visual_search.index import VectorIndex, faiss_threads
from mlsd.systems.visual_search.model import CNNEncoder, ImageEncoder

log = logging.getLogger(__name__)

SYSTEM = "visual-search"
ENCODER_FILE = "encoder.pkl"
INDEX_DIR = "index"
LABELS_FILE = "index_labels.json"
SERVING_FILE = "serving.json"
MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_K = 100
IMAGE_TYPES = ("image/png", "image/jpeg")


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
        """One uploaded image; raises :class:`ImageDecodeError` for bytes that are no image."""
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


# --- artifacts -------------------------------------------------------------------------------
def save_serving_artifacts(
    artifacts_dir: Path,
    encoder: ImageEncoder,
    model_name: str,
    index: VectorIndex,
    image_size: int,
    labels: dict[int, str] | None = None,
) -> None:
    """Write the encoder, the index, the id labels and ``serving.json`` (each atomically)."""
    out = Path(artifacts_dir)
    out.mkdir(parents=True, exist_ok=True)
    encoder.save(out / ENCODER_FILE)
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
    _write_json(out / SERVING_FILE, meta)


def write_labels(artifacts_dir: Path, labels: dict[int, str]) -> None:
    _write_json(artifacts_dir / LABELS_FILE, {str(k): v for k, v in labels.items()})


def _write_json(path: Path, payload: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, separators=(",", ":")))
    tmp.replace(path)


def artifacts_dir_of(run_dir: Path) -> Path:
    """A run directory's ``artifacts/`` folder (or ``run_dir`` itself if it holds the files)."""
    run_dir = Path(run_dir)
    if (run_dir / SERVING_FILE).exists():
        return run_dir
    return run_dir / "artifacts"


def load_searcher(artifacts_dir: Path, num_threads: int = 1) -> VisualSearcher:
    """The searcher a run directory's ``artifacts/`` describe."""
    artifacts_dir = Path(artifacts_dir)
    meta = read_artifact_json(artifacts_dir / SERVING_FILE)
    if not isinstance(meta, dict) or not isinstance(meta.get("image_size"), int):
        raise ServingArtifactError(f"{artifacts_dir / SERVING_FILE}: field 'image_size' missing")
    try:
        encoder = ImageEncoder.load(artifacts_dir / ENCODER_FILE)
        index = VectorIndex.load(artifacts_dir / INDEX_DIR)
    except (OSError, TypeError, ValueError, RuntimeError, KeyError) as exc:
        raise ServingArtifactError(f"{artifacts_dir}: unreadable encoder or index: {exc}") from exc
    if isinstance(encoder, CNNEncoder):
        encoder.num_threads = num_threads
    raw = read_artifact_json(artifacts_dir / LABELS_FILE)
    labels = {int(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
    log.info("loaded %s with a %s index of %d images", meta["model_name"], index.kind, len(index))
    return VisualSearcher(encoder, index, str(meta["model_name"]), meta["image_size"], labels)


# --- HTTP --------------------------------------------------------------------------------------
class ResultOut(BaseModel):
    id: int
    score: float
    label: str


class SearchResponse(BaseModel):
    model: str
    index: str
    k: int
    results: list[ResultOut]
    timings_ms: dict[str, float]


async def read_upload(request: Request) -> bytes:
    """The image bytes of a request (raw body or multipart field ``image``), or an ApiError."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES + 4096:
        raise ApiError(413, f"body of {int(length)} bytes exceeds {MAX_BODY_BYTES} bytes")
    if ctype in IMAGE_TYPES:
        chunks, total = [], 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > MAX_BODY_BYTES:
                raise ApiError(413, f"body exceeds {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)
        data = b"".join(chunks)
    elif ctype == "multipart/form-data":
        try:
            form = await request.form(max_files=1, max_fields=4)
        except Exception as exc:  # malformed multipart bodies raise several starlette errors
            raise ApiError(400, f"malformed multipart body: {exc}") from exc
        field = form.get("image")
        if not isinstance(field, UploadFile):
            raise ApiError(422, "multipart body needs a file field named 'image'")
        if field.content_type and field.content_type.lower() not in IMAGE_TYPES:
            raise ApiError(415, f"field 'image' has content type {field.content_type!r}; "
                           f"send one of {', '.join(IMAGE_TYPES)}")  # fmt: skip
        data = await field.read(MAX_BODY_BYTES + 1)
        if len(data) > MAX_BODY_BYTES:
            raise ApiError(413, f"image exceeds {MAX_BODY_BYTES} bytes")
    else:
        raise ApiError(415, f"content type {ctype or 'missing'!r}: send the image as the body "
                       f"with {' or '.join(IMAGE_TYPES)}, or as multipart/form-data field "
                       "'image'")  # fmt: skip
    if not data:
        raise ApiError(400, "empty body: no image bytes")
    return data


def make_served_system(run_dir: Path, settings: Settings, load: bool = True) -> ServedSystem:
    """The ``/v1/visual-search`` router for :func:`mlsd.serving.create_app`."""
    artifacts = artifacts_dir_of(run_dir)
    threads = settings.torch_threads
    slot: ModelSlot[VisualSearcher] = ModelSlot(load_searcher(artifacts, threads) if load else None)
    reload_lock = threading.Lock()
    router = APIRouter(prefix="/v1/visual-search", tags=[SYSTEM])

    @router.post("/search", response_model=SearchResponse)
    async def search(
        request: Request, k: int = Query(10, ge=1, le=MAX_K, description="results to return")
    ) -> SearchResponse:
        """Upload an image (raw PNG/JPEG body or multipart field ``image``); get the k nearest."""
        searcher = slot.get()
        data = await read_upload(request)

        def run() -> SearchResult:
            with faiss_threads(threads):
                return searcher.search_bytes(data, k)

        try:
            result = await run_in_threadpool(run)
        except ImageDecodeError as exc:
            status = 413 if "too large" in str(exc) else 400
            raise ApiError(status, str(exc)) from exc
        return SearchResponse(
            model=searcher.model_name,
            index=searcher.index.kind,
            k=k,
            results=[
                ResultOut(id=i, score=s, label=lab)
                for i, s, lab in zip(result.ids, result.scores, result.labels, strict=True)
            ],
            timings_ms={
                "decode_embed": result.embed_ms,
                "search": result.search_ms,
                "total": result.embed_ms + result.search_ms,
            },
        )

    @router.post("/reload")
    def reload() -> dict[str, Any]:
        """Load the run directory's artifacts again (after `index_folder`) and swap them in."""
        with reload_lock:
            try:
                searcher = load_searcher(artifacts, threads)
            except ServingArtifactError as exc:
                raise ApiError(500, f"reload failed, previous index kept: {exc}") from exc
            slot.swap(searcher)
            return {"model": searcher.model_name, "version": slot.version,
                    "index_size": len(searcher.index)}  # fmt: skip

    return ServedSystem(name=SYSTEM, router=router, ready=lambda: slot.ready)
