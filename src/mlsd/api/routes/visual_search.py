"""HTTP for visual search: upload an image, get the k most similar catalogue images (book ch. 2).

``POST /v1/visual-search/search?k=10`` takes the image either as the raw request body with
``Content-Type: image/png`` or ``image/jpeg``, or as a ``multipart/form-data`` upload in the
field ``image``. It answers ``{"model", "index", "k", "results": [{"id", "score", "label"}],
"timings_ms"}``. A wrong content type is a 415, an empty body or bytes that are not an image a
400, a body over ``MAX_BODY_BYTES`` or an image over ``MAX_SIDE`` pixels a side a 413.
A multipart body holds the one field ``image`` and nothing else (another field is a 422). The
route accepts a body a little over ``MAX_BODY_BYTES`` (multipart framing), beyond which the
server answers 413 before reading it. ``POST /v1/visual-search/reload`` (an admin API key's
route) loads the run's artifacts again (after ``mlsd index-images``) and swaps them in without
downtime. The handlers only read the request and call
:class:`mlsd.systems.visual_search.serving.VisualSearcher`.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from mlsd.api.deps import AdminOnly, ApiError, ModelSlot, ServedSystem, error_responses
from mlsd.api.uploads import MAX_REQUEST_BYTES, UPLOAD_BODY, read_upload
from mlsd.artifacts import artifacts_dir_of
from mlsd.index import faiss_threads
from mlsd.settings import Settings
from mlsd.systems.visual_search.features import ImageDecodeError
from mlsd.systems.visual_search.serving import (
    SYSTEM,
    SearchResult,
    VisualSearcher,
    load_searcher,
)

MAX_K = 100


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


class ReloadResponse(BaseModel):
    model: str
    version: int
    index_size: int


def _response(searcher: VisualSearcher, k: int, result: SearchResult) -> SearchResponse:
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


def make_served_system(run_dir: Path, settings: Settings, load: bool = True) -> ServedSystem:
    """The ``/v1/visual-search`` router for :func:`mlsd.api.main.create_app`."""
    artifacts = artifacts_dir_of(run_dir)
    threads = settings.torch_threads
    slot: ModelSlot[VisualSearcher] = ModelSlot(load_searcher(artifacts, threads) if load else None)
    router = APIRouter(prefix="/v1/visual-search", tags=[SYSTEM])

    @router.post(
        "/search",
        response_model=SearchResponse,
        responses=error_responses(400, 413, 415, 422),
        openapi_extra={"requestBody": UPLOAD_BODY},
    )
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
        return _response(searcher, k, result)

    @router.post(
        "/reload",
        response_model=ReloadResponse,
        dependencies=[AdminOnly],
        responses=error_responses(500),
    )
    def reload() -> ReloadResponse:
        """Load the run directory's artifacts again (after `index-images`) and swap them in."""
        searcher, _ = slot.reload(lambda: load_searcher(artifacts, threads), what="index")
        return ReloadResponse(
            model=searcher.model_name, version=slot.version, index_size=len(searcher.index)
        )

    return ServedSystem(
        name=SYSTEM,
        router=router,
        ready=lambda: slot.ready,
        body_limits={f"{router.prefix}/search": MAX_REQUEST_BYTES},
    )
