"""HTTP for similar listings: the carousel of a listing page (book ch. 9, "Serving").

``GET /v1/similar-listings/listings/{listing_id}/similar?k=10`` answers the ``k`` listings of the
same region most similar to the listing, with optional filters (``max_price``, ``min_capacity``,
``type``, and the stay: ``check_in``, a day number, and ``nights``, 1 to 366, default 1; a
listing not available for every night of ``[check_in, check_in + nights)`` is never returned);
``POST /v1/similar-listings/similar`` takes the
session's clicked listings (``{"clicked": [...], "k": 10, ...filters}``) and answers from their
mean query vector in the region of the last click. Every answer carries the time of each part
(lookup, search, re-rank). An unknown listing is a 404 with a message. ``POST
/v1/similar-listings/reload`` (an admin API key's route) loads the run's artifacts again (after the
daily retrain) and swaps them in atomically. The handlers only read the request and call
:class:`mlsd.systems.similar_listings.serving.SimilarListings`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field, Strict

from mlsd.api.deps import (
    MAX_ID,
    AdminOnly,
    ApiError,
    AsInt,
    BoundedId,
    JsonInt,
    ModelSlot,
    ServedSystem,
    error_responses,
)
from mlsd.index import faiss_threads
from mlsd.settings import Settings
from mlsd.systems.similar_listings.serving import (
    SYSTEM,
    Filters,
    Similar,
    SimilarListings,
    UnknownListingError,
    load_scorer,
)
from mlsd.systems.similar_listings.serving_availability import Stay

MAX_NIGHT = 10**6
MAX_STAY_NIGHTS = 366
Night = Annotated[int, Strict(), Field(ge=0, le=MAX_NIGHT), AsInt]
Nights = Annotated[int, Strict(), Field(ge=1, le=MAX_STAY_NIGHTS), AsInt]

MAX_K = 100
MAX_CLICKED = 50
MAX_PRICE = 1e9
#: The listing types of the world, and ``unknown`` (a session log has no attributes).
ListingType = Literal["entire_home", "private_room", "shared_room", "hotel_room", "unknown"]
Capacity = Annotated[int, Strict(), Field(ge=1, le=1000), AsInt]
Price = Annotated[float, Strict(), Field(ge=0, le=MAX_PRICE)]


class ListingOut(BaseModel):
    listing_id: int
    score: float
    region: int
    type: str
    capacity: int
    price: float


class SimilarResponse(BaseModel):
    model: str
    index: str
    region: int
    k: int
    listings: list[ListingOut]
    timings_ms: dict[str, float]


class SessionRequest(BaseModel):
    """The session's clicked listings, oldest first, and the user's filters."""

    model_config = ConfigDict(extra="forbid")
    clicked: list[BoundedId] = Field(min_length=1, max_length=MAX_CLICKED)
    k: JsonInt = Field(default=10, ge=1, le=MAX_K)
    max_price: Price | None = None
    min_capacity: Capacity | None = None
    type: ListingType | None = None
    check_in: Night | None = None
    nights: Nights = 1


class ReloadResponse(BaseModel):
    model: str
    version: int
    load_ms: float


def _response(scorer: SimilarListings, k: int, res: Similar, total_ms: float) -> SimilarResponse:
    out = []
    for i, s in zip(res.ids, res.scores, strict=True):
        d = scorer.describe(i)
        out.append(ListingOut(score=s, **d))
    return SimilarResponse(
        model=scorer.model_name,
        index=scorer.index_kind,
        region=res.region,
        k=k,
        listings=out,
        timings_ms={
            "lookup": round(res.lookup_ms, 4),
            "search": round(res.search_ms, 4),
            "rerank": round(res.rerank_ms, 4),
            "total": round(total_ms, 4),
        },
    )


def _filters(
    max_price: float | None,
    min_capacity: int | None,
    kind: str | None,
    check_in: int | None,
    nights: int,
) -> Filters:
    stay = None if check_in is None else Stay(check_in, check_in + nights)
    return Filters(max_price, min_capacity, kind, stay)


def _similar(scorer: SimilarListings, ids: list[int], k: int, filters: Filters) -> SimilarResponse:
    t0 = time.perf_counter()
    try:
        with faiss_threads(1):
            res = scorer.similar(ids, k, filters)
    except UnknownListingError as exc:
        raise ApiError(404, f"{exc}: the served catalogue does not hold them") from exc
    return _response(scorer, k, res, (time.perf_counter() - t0) * 1e3)


def make_served_system(run_dir: Path, settings: Settings, load: bool = True) -> ServedSystem:
    """The ``/v1/similar-listings`` router for :func:`mlsd.api.main.create_app`."""
    slot: ModelSlot[SimilarListings] = ModelSlot(load_scorer(run_dir, settings) if load else None)
    router = APIRouter(prefix="/v1/similar-listings", tags=[SYSTEM])

    @router.get(
        "/listings/{listing_id}/similar",
        response_model=SimilarResponse,
        responses=error_responses(404),
    )
    def similar_to_listing(
        listing_id: int = PathParam(ge=-MAX_ID, le=MAX_ID),
        k: int = Query(10, ge=1, le=MAX_K, description="listings to return"),
        max_price: float | None = Query(None, ge=0, le=MAX_PRICE),
        min_capacity: int | None = Query(None, ge=1, le=1000),
        type: Annotated[ListingType | None, Query(description="listing type")] = None,
        check_in: int | None = Query(None, ge=0, le=MAX_NIGHT, description="first night"),
        nights: int = Query(1, ge=1, le=MAX_STAY_NIGHTS, description="nights from check_in"),
    ) -> Any:
        """The carousel of a listing page: the k most similar listings of its region (only
        listings available for every night of the stay, when one is given)."""
        filters = _filters(max_price, min_capacity, type, check_in, nights)
        scorer = slot.get()
        return _similar(scorer, [listing_id], k, filters)

    @router.post("/similar", response_model=SimilarResponse, responses=error_responses(404))
    def similar_to_session(body: SessionRequest) -> Any:
        """Similar listings for the session so far: the mean of the clicked listings."""
        scorer = slot.get()
        filters = _filters(body.max_price, body.min_capacity, body.type, body.check_in, body.nights)
        return _similar(scorer, list(dict.fromkeys(body.clicked)), body.k, filters)

    @router.post(
        "/reload",
        response_model=ReloadResponse,
        dependencies=[AdminOnly],
        responses=error_responses(500),
    )
    def reload() -> ReloadResponse:
        """Load the run's artifacts again (after the daily retrain) and swap them in."""
        new, load_ms = slot.reload(lambda: load_scorer(run_dir, settings), what="index")
        return ReloadResponse(model=new.model_name, version=slot.version, load_ms=load_ms)

    return ServedSystem(name=SYSTEM, router=router, ready=lambda: slot.ready)
