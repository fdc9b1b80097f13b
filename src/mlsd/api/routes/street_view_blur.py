"""HTTP for street-view blurring: upload one image, get it back blurred with its boxes (ch. 3).

The chapter's system is a batch pipeline (``mlsd blur``); this route serves the same blurrer one
image at a time. ``POST /v1/street-view-blur/blur`` takes the image as the raw request body
(``Content-Type: image/png`` or ``image/jpeg``) or as a ``multipart/form-data`` field ``image``
(the upload handling of :mod:`mlsd.api.routes.visual_search`), and answers ``{"model", "width",
"height", "boxes": [{"label", "x", "y", "w", "h", "score"}], "image_png_base64",
"timings_ms"}``. A wrong content type is a 415, an empty body or bytes that are not an image a
400, a body over ``MAX_BODY_BYTES`` or an image over ``MAX_SIDE`` pixels a side a 413.
``POST /v1/street-view-blur/reload`` (admin) loads the run's artifacts again and swaps them in.
"""

from __future__ import annotations

import base64
from pathlib import Path

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from mlsd.api.deps import AdminOnly, ApiError, ModelSlot, ServedSystem, error_responses
from mlsd.api.uploads import MAX_REQUEST_BYTES, UPLOAD_BODY, read_upload
from mlsd.artifacts import artifacts_dir_of
from mlsd.settings import Settings
from mlsd.systems.street_view_blur.serving import (
    MAX_SIDE,
    SYSTEM,
    Blurrer,
    BlurResult,
    ImageDecodeError,
    decode_image,
    encode_png,
    load_blurrer,
)


class BoxOut(BaseModel):
    label: str
    x: float
    y: float
    w: float
    h: float
    score: float


class BlurResponse(BaseModel):
    model: str
    width: int
    height: int
    boxes: list[BoxOut]
    image_png_base64: str
    timings_ms: dict[str, float]


class ReloadResponse(BaseModel):
    model: str
    version: int
    thresholds: list[float]


def make_served_system(run_dir: Path, settings: Settings, load: bool = True) -> ServedSystem:
    """The ``/v1/street-view-blur`` router for :func:`mlsd.api.main.create_app`."""
    artifacts = artifacts_dir_of(run_dir)
    threads = settings.torch_threads
    slot: ModelSlot[Blurrer] = ModelSlot(load_blurrer(artifacts, threads) if load else None)
    router = APIRouter(prefix="/v1/street-view-blur", tags=[SYSTEM])

    @router.post(
        "/blur",
        response_model=BlurResponse,
        responses=error_responses(400, 413, 415, 422),
        openapi_extra={"requestBody": UPLOAD_BODY},
    )
    async def blur(request: Request) -> BlurResponse:
        """Upload an image (raw PNG/JPEG body or multipart field ``image``); get it blurred."""
        blurrer = slot.get()
        data = await read_upload(request)

        def run() -> tuple[BlurResult, bytes, int, int]:
            image = decode_image(data, MAX_SIDE)
            result = blurrer.blur(image)
            return result, encode_png(result.image), image.shape[1], image.shape[0]

        try:
            result, png, width, height = await run_in_threadpool(run)
        except ImageDecodeError as exc:
            raise ApiError(413 if exc.too_large else 400, str(exc)) from exc
        return BlurResponse(
            model=blurrer.name,
            width=width,
            height=height,
            boxes=[BoxOut(**b) for b in blurrer.boxes_json(result.boxes)],
            image_png_base64=base64.b64encode(png).decode("ascii"),
            timings_ms={"detect": result.detect_ms, "blur": result.blur_ms},
        )

    @router.post(
        "/reload",
        response_model=ReloadResponse,
        dependencies=[AdminOnly],
        responses=error_responses(500),
    )
    def reload() -> ReloadResponse:
        """Load the run directory's artifacts again and swap them in."""
        blurrer, _ = slot.reload(lambda: load_blurrer(artifacts, threads), what="detector")
        return ReloadResponse(
            model=blurrer.name, version=slot.version, thresholds=list(blurrer.thresholds)
        )

    return ServedSystem(
        name=SYSTEM,
        router=router,
        ready=lambda: slot.ready,
        body_limits={f"{router.prefix}/blur": MAX_REQUEST_BYTES},
    )
