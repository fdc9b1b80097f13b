"""Image uploads, shared by every route that takes one (visual search, street-view blurring).

An image arrives as the raw request body (``Content-Type: image/png`` or ``image/jpeg``) or as a
``multipart/form-data`` upload in the one field ``image``. :func:`read_upload` returns its bytes
or raises :class:`~mlsd.api.deps.ApiError`: a wrong content type is a 415, an empty body a 400, a
body over ``MAX_BODY_BYTES`` a 413, another multipart field a 422. ``UPLOAD_BODY`` is the
matching OpenAPI request body; a route declares ``MAX_REQUEST_BYTES`` as its body limit (the
image's, plus room for multipart framing).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from mlsd.api.deps import ApiError

MAX_BODY_BYTES = 8 * 1024 * 1024
#: The route's body limit: the image's, plus room for multipart framing.
MAX_REQUEST_BYTES = MAX_BODY_BYTES + 64 * 1024
IMAGE_TYPES = ("image/png", "image/jpeg")
_BINARY = {"type": "string", "format": "binary"}
#: The upload's OpenAPI request body: the raw image, or a multipart form with the field ``image``.
UPLOAD_BODY: dict[str, Any] = {
    "required": True,
    "description": f"a PNG or JPEG image of at most {MAX_BODY_BYTES} bytes",
    "content": {
        **{ctype: {"schema": _BINARY} for ctype in IMAGE_TYPES},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"image": _BINARY},
                "required": ["image"],
                "additionalProperties": False,
            },
            "encoding": {"image": {"contentType": ", ".join(IMAGE_TYPES)}},
        },
    },
}


async def _read_body(request: Request) -> bytes:
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > MAX_BODY_BYTES:
            raise ApiError(413, f"body exceeds {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_multipart(request: Request) -> bytes:
    try:
        form = await request.form(max_files=1, max_fields=4)
    except HTTPException:  # the body limit's 413
        raise
    except Exception as exc:  # malformed multipart bodies raise several starlette errors
        raise ApiError(400, f"malformed multipart body: {exc}") from exc
    field = form.get("image")
    if not isinstance(field, UploadFile):
        raise ApiError(422, "multipart body needs a file field named 'image'")
    others = sorted(set(form.keys()) - {"image"})
    if others:
        raise ApiError(422, f"multipart body holds only the field 'image', not {others}")
    if field.content_type and field.content_type.lower() not in IMAGE_TYPES:
        raise ApiError(
            415,
            f"field 'image' has content type {field.content_type!r}; "
            f"send one of {', '.join(IMAGE_TYPES)}",
        )
    data = await field.read(MAX_BODY_BYTES + 1)
    if len(data) > MAX_BODY_BYTES:
        raise ApiError(413, f"image exceeds {MAX_BODY_BYTES} bytes")
    return data


async def read_upload(request: Request) -> bytes:
    """The image bytes of a request (raw body or multipart field ``image``), or an ApiError."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in IMAGE_TYPES:
        data = await _read_body(request)
    elif ctype == "multipart/form-data":
        data = await _read_multipart(request)
    else:
        raise ApiError(
            415,
            f"content type {ctype or 'missing'!r}: send the image as the body with "
            f"{' or '.join(IMAGE_TYPES)}, or as multipart/form-data field 'image'",
        )
    if not data:
        raise ApiError(400, "empty body: no image bytes")
    return data
