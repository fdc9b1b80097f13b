"""HTTP for harmful content detection: classify a post, with or without its image; a reload.

``POST /v1/harmful-content/classify`` takes a JSON post: ``text``, optionally ``author_id`` and
the ``engagement`` counted so far. ``POST /v1/harmful-content/classify-with-image`` takes the
same as a multipart form with the image (``image``, PNG or JPEG). The answer is the probability
of each harm class and the action (remove / review / demote / allow) with its reason. An image
over the limit is a 413, another content type a 415, a text over ``MAX_TEXT_CHARS`` or a bad field
a 422, and bytes that are not a decodable PNG/JPEG image a 400 naming the field and why (the
client sent an image it means to be judged on; scoring the post without it would answer a
different question). The handlers only translate HTTP to and from
:class:`~mlsd.systems.harmful_content.serving.HarmScorer`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from mlsd.api.deps import (
    MAX_ID,
    AdminOnly,
    ApiError,
    BoundedId,
    JsonInt,
    ModelSlot,
    Observer,
    PredictionObserver,
    ServedSystem,
    error_responses,
)
from mlsd.api.uploads import IMAGE_TYPES
from mlsd.settings import Settings
from mlsd.systems.harmful_content.features import ENGAGEMENT
from mlsd.systems.harmful_content.serving import (
    MAX_IMAGE_BYTES,
    MAX_TEXT_CHARS,
    SYSTEM,
    Classification,
    HarmScorer,
    ImageDecodeError,
    Post,
    load_scorer,
)
from mlsd.training import torch_threads

MAX_COUNT = 10**9
#: the largest image and text, plus room for the multipart framing
MAX_REQUEST_BYTES = MAX_IMAGE_BYTES + MAX_TEXT_CHARS * 4 + 64 * 1024


class Engagement(BaseModel):
    """What the post collected so far (the model was trained on its first hour)."""

    model_config = ConfigDict(strict=True, extra="forbid")
    views_1h: JsonInt = Field(default=0, ge=0, le=MAX_COUNT)
    shares_1h: JsonInt = Field(default=0, ge=0, le=MAX_COUNT)
    comments_1h: JsonInt = Field(default=0, ge=0, le=MAX_COUNT)
    reports_1h: JsonInt = Field(default=0, ge=0, le=MAX_COUNT)


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    text: str = Field(max_length=MAX_TEXT_CHARS, description="the post's text (may be empty)")
    author_id: BoundedId | None = Field(
        default=None, description="the author; unknown or absent: a new account"
    )
    engagement: Engagement | None = None


class ClassifyResponse(BaseModel):
    model: str
    probabilities: dict[str, float]
    action: str = Field(description="remove, review, demote or allow")
    harm_class: str | None
    reason: str
    timings_ms: dict[str, float]
    image_used: bool = Field(
        default=False, description="false when no image was sent or it could not be decoded"
    )
    image_error: str | None = Field(
        default=None,
        description="always null: an image that cannot be decoded is answered with a 400",
    )


class ReloadResponse(BaseModel):
    model: str
    version: int
    load_ms: float


_COUNT = {"type": "integer", "minimum": 0, "maximum": MAX_COUNT}
FORM_FIELDS: dict[str, Any] = {
    "text": {"type": "string", "maxLength": MAX_TEXT_CHARS},
    "image": {"type": "string", "format": "binary"},
    "author_id": {"type": "integer", "minimum": -MAX_ID, "maximum": MAX_ID},
    **dict.fromkeys(ENGAGEMENT, _COUNT),
}
#: The multipart upload's OpenAPI request body: the text, the image and the optional fields.
UPLOAD_BODY: dict[str, Any] = {
    "required": True,
    "description": f"the post as a form: text, a PNG or JPEG image of at most {MAX_IMAGE_BYTES} "
    "bytes, optionally the author and the engagement so far",
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": FORM_FIELDS,
                "required": ["text", "image"],
                "additionalProperties": False,
            },
            "encoding": {"image": {"contentType": ", ".join(IMAGE_TYPES)}},
        }
    },
}
_INT = re.compile(r"^-?[0-9]{1,20}(\.0*)?$")  # 3 or 3.0, as JSON Schema counts integers


def _form_int(form: Any, name: str, low: int, high: int) -> int | None:
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not _INT.match(value.strip()):
        raise ApiError(422, f"invalid request: {name}: not an integer")
    number = int(value.strip().split(".")[0])
    if not low <= number <= high:
        raise ApiError(422, f"invalid request: {name}: must be within [{low}, {high}]")
    return number


async def read_form(request: Request) -> Post:
    """The post of a multipart request, or an ApiError naming the field."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "multipart/form-data":
        raise ApiError(415, f"content type {ctype or 'missing'!r}: send multipart/form-data")
    try:
        form = await request.form(max_files=1, max_fields=len(FORM_FIELDS))
    except HTTPException:  # the body limit's 413
        raise
    except Exception as exc:  # malformed multipart bodies raise several starlette errors
        raise ApiError(400, f"malformed multipart body: {exc}") from exc
    others = sorted(set(form.keys()) - set(FORM_FIELDS))
    if others:
        raise ApiError(422, f"invalid request: unknown fields {others}")
    text, image = form.get("text"), form.get("image")
    if not isinstance(text, str):
        raise ApiError(422, "invalid request: text: a form field (not a file) is required")
    if len(text) > MAX_TEXT_CHARS:
        raise ApiError(422, f"invalid request: text: longer than {MAX_TEXT_CHARS} characters")
    if not isinstance(image, UploadFile):
        raise ApiError(422, "invalid request: image: a file field is required")
    if image.content_type and image.content_type.lower() not in IMAGE_TYPES:
        raise ApiError(415, f"image has content type {image.content_type!r}; send PNG or JPEG")
    data: bytes | None = await image.read(MAX_IMAGE_BYTES + 1)
    if data is not None and len(data) > MAX_IMAGE_BYTES:
        raise ApiError(413, f"image exceeds {MAX_IMAGE_BYTES} bytes")
    author = _form_int(form, "author_id", -MAX_ID, MAX_ID)
    eng = {k: _form_int(form, k, 0, MAX_COUNT) or 0 for k in ENGAGEMENT}
    if not data:
        data = None  # an empty file: classified without an image (image_used false)
    return Post(text, data, author, eng)


def make_served_system(run_dir: Path, settings: Settings, load: bool = True) -> ServedSystem:
    """The ``/v1/harmful-content`` router for :func:`mlsd.api.main.create_app`."""
    run_dir = Path(run_dir)
    threads = settings.torch_threads
    slot: ModelSlot[HarmScorer] = ModelSlot(load_scorer(run_dir, settings) if load else None)
    router = APIRouter(prefix="/v1/harmful-content", tags=[SYSTEM])

    async def answer(post: Post, observe: PredictionObserver) -> ClassifyResponse:
        scorer = slot.get()

        def run() -> Classification:
            with torch_threads(threads):
                return scorer.classify(post)

        try:
            res = await run_in_threadpool(run)
        except ImageDecodeError as exc:
            if "too large" in str(exc):
                raise ApiError(413, str(exc)) from exc
            raise ApiError(400, f"field 'image': {exc}") from exc
        observe(SYSTEM, np.array(list(res.probabilities.values())))
        return ClassifyResponse(
            model=res.model,
            probabilities=res.probabilities,
            action=res.action,
            harm_class=res.harm_class,
            reason=res.reason,
            timings_ms=res.timings_ms,
            image_used=post.image is not None,
        )

    @router.post("/classify", response_model=ClassifyResponse)
    async def classify(body: ClassifyRequest, observe: Observer) -> ClassifyResponse:
        """Classify a post without an image: a probability per harm class and the action
        with its reason."""
        eng = body.engagement.model_dump() if body.engagement is not None else None
        return await answer(Post(body.text, None, body.author_id, eng), observe)

    @router.post(
        "/classify-with-image",
        response_model=ClassifyResponse,
        responses=error_responses(400, 413, 415, 422),
        openapi_extra={"requestBody": UPLOAD_BODY},
    )
    async def classify_with_image(request: Request, observe: Observer) -> ClassifyResponse:
        """Classify a post with its image (multipart form: ``text``, ``image`` as PNG or JPEG,
        optionally ``author_id`` and the engagement counts)."""
        slot.get()
        return await answer(await read_form(request), observe)

    @router.post(
        "/reload",
        response_model=ReloadResponse,
        dependencies=[AdminOnly],
        responses=error_responses(500),
    )
    def reload() -> ReloadResponse:
        """Load the run directory's artifacts again and swap them in atomically; broken
        artifacts are a 500 and the previous model stays."""
        scorer, load_ms = slot.reload(lambda: load_scorer(run_dir, settings))
        return ReloadResponse(model=scorer.model_name, version=slot.version, load_ms=load_ms)

    return ServedSystem(
        name=SYSTEM,
        router=router,
        ready=lambda: slot.ready,
        body_limits={"/v1/harmful-content/classify-with-image": MAX_REQUEST_BYTES},
    )
