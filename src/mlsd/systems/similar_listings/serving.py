"""Step 6 for similar listings: the scorer and its artifacts; no HTTP (book ch. 9, "Serving").

The chapter's serving path: look up the viewed listing's embedding, find its nearest
neighbours among the listings of its region (one FAISS index per region, built by
:mod:`mlsd.index`), then re-rank: drop the listing itself and listings that fail the user's
filters (price, capacity, type) or are not available for the requested nights
(:mod:`.serving_availability`; never returned, the search widens until ``k`` pass or the region is
exhausted). :class:`SimilarListings` is that path in-process, with the
time of each part measured; :func:`load_scorer` loads it from a run directory. Its HTTP router
is :mod:`mlsd.api.routes.similar_listings`.

A run directory's ``artifacts/`` hold ``embeddings/`` (the served vectors as data through
:mod:`mlsd.model_io`: an ``.npz`` and JSON), ``listings.parquet`` (id, region, type, capacity,
price of every served listing), ``calendar.parquet`` (the blocked nights), ``index/<region>/``
(each region's FAISS index in FAISS's own format and the listing id of each row), ``serving.json``
(the model's name, dimensions, the index kind and the regions) and ``manifest.json`` (the hash of
every file, checked before anything is loaded).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlsd.artifacts import (
    artifacts_dir_of,
    atomic_path,
    verify_manifest,
    write_json,
    write_manifest,
)
from mlsd.index import VectorIndex
from mlsd.model_io import ModelFileError, load_value, register_value_class, save_value
from mlsd.serving import ServingArtifactError, read_artifact_json
from mlsd.settings import Settings
from mlsd.systems.similar_listings.serving_availability import (
    CALENDAR_COLUMNS,
    Availability,
    Stay,
    empty_calendar,
)

log = logging.getLogger(__name__)

SYSTEM = "similar-listings"
EMBEDDINGS_DIR = "embeddings"
LISTINGS_FILE = "listings.parquet"
INDEX_DIR = "index"
SERVING_FILE = "serving.json"
CALENDAR_FILE = "calendar.parquet"
LISTING_COLUMNS = ("listing_id", "region", "type", "capacity", "price")
OVERFETCH = 4  # neighbours fetched per requested result, for the filters to drop


@register_value_class
@dataclass
class ListingVectors:
    """The served embeddings: ``vectors[i]`` is listing ``ids[i]``'s indexed (item) vector and
    ``query_vectors[i]`` the vector it searches with (None: the same, a symmetric similarity)."""

    ids: np.ndarray
    vectors: np.ndarray
    model_name: str
    query_vectors: np.ndarray | None = None


@dataclass(frozen=True)
class Filters:
    """The user's filters, applied after the nearest-neighbour search (re-ranking)."""

    max_price: float | None = None
    min_capacity: int | None = None
    listing_type: str | None = None
    stay: Stay | None = None

    def keep(self, rows: pd.DataFrame, availability: Availability | None = None) -> np.ndarray:
        ok = np.ones(len(rows), bool)
        if self.stay is not None and availability is not None:
            ok &= availability.available(rows["listing_id"].to_numpy(np.int64), self.stay)
        if self.max_price is not None:
            ok &= rows["price"].to_numpy() <= self.max_price
        if self.min_capacity is not None:
            ok &= rows["capacity"].to_numpy() >= self.min_capacity
        if self.listing_type is not None:
            ok &= rows["type"].to_numpy() == self.listing_type
        return ok


@dataclass(frozen=True)
class Similar:
    ids: list[int]
    scores: list[float]
    region: int
    lookup_ms: float
    search_ms: float
    rerank_ms: float


class UnknownListingError(LookupError):
    """A listing id the served catalogue does not hold."""


class SimilarListings:
    """Listing id → embedding → nearest neighbours in its region → filters."""

    def __init__(
        self,
        vectors: ListingVectors,
        listings: pd.DataFrame,
        indexes: dict[int, VectorIndex],
        availability: Availability | None = None,
    ) -> None:
        self.model_name = vectors.model_name
        self.vectors = vectors.vectors
        self.query_vectors = (
            vectors.vectors if vectors.query_vectors is None else vectors.query_vectors
        )
        self.listings = listings.set_index("listing_id", drop=False)
        self.row_of = {int(i): r for r, i in enumerate(vectors.ids)}
        self.indexes = indexes
        self.region_of = dict(
            zip(listings["listing_id"].astype(int), listings["region"].astype(int), strict=True)
        )
        self.types = sorted(set(listings["type"].astype(str)))
        self.availability = availability or Availability(empty_calendar())

    def known(self, listing_id: int) -> bool:
        return listing_id in self.row_of and listing_id in self.region_of

    @property
    def index_kind(self) -> str:
        return next(iter(self.indexes.values())).kind if self.indexes else "none"

    def similar(self, listing_ids: list[int], k: int, filters: Filters | None = None) -> Similar:
        """The ``k`` listings most similar to ``listing_ids`` (one id: the viewed listing;
        several: the session's clicks, their mean vector), in the region of the last one,
        none of them, passing ``filters`` (the search widens while fewer than ``k`` pass).
        :class:`UnknownListingError` for an unknown id."""
        t0 = time.perf_counter()
        unknown = [i for i in listing_ids if not self.known(i)]
        if unknown or not listing_ids:
            raise UnknownListingError(f"unknown listing ids {unknown[:10]}")
        q = self.query_vectors[[self.row_of[i] for i in listing_ids]].mean(0, keepdims=True)
        q /= max(float(np.linalg.norm(q)), 1e-12)
        region = self.region_of[listing_ids[-1]]
        index = self.indexes.get(region)
        t1 = time.perf_counter()
        ids, scores = np.zeros(0, np.int64), np.zeros(0, np.float32)
        search_s = rerank_s = 0.0
        fetch = k * OVERFETCH + len(listing_ids)
        seen = set(listing_ids)
        while index is not None:
            t2 = time.perf_counter()
            s, found = index.search(q, fetch)
            ok = found[0] >= 0
            ids, scores = found[0][ok], s[0][ok]
            t3 = time.perf_counter()
            keep = np.array([int(i) not in seen for i in ids], bool)
            if filters is not None and len(ids):
                keep &= filters.keep(self.listings.loc[ids], self.availability)
            ids, scores = ids[keep], scores[keep]
            search_s += t3 - t2
            rerank_s += time.perf_counter() - t3
            if len(ids) >= k or fetch >= len(index):
                break
            fetch *= OVERFETCH
        return Similar(
            [int(i) for i in ids[:k]],
            [float(x) for x in scores[:k]],
            region,
            (t1 - t0) * 1e3,
            search_s * 1e3,
            rerank_s * 1e3,
        )

    def describe(self, listing_id: int) -> dict[str, Any]:
        row = self.listings.loc[listing_id]
        return {
            "listing_id": int(listing_id),
            "region": int(np.asarray(row["region"]).item()),
            "type": str(row["type"]),
            "capacity": int(np.asarray(row["capacity"]).item()),
            "price": float(np.asarray(row["price"]).item()),
        }


# ---- artifacts ---------------------------------------------------------------------------------
def build_indexes(
    vectors: np.ndarray, ids: np.ndarray, region: np.ndarray, kind: str = "flat", **params: Any
) -> dict[int, VectorIndex]:
    """One index per region over its listings' vectors (``kind`` as :mod:`mlsd.index`)."""
    out = {}
    for g in np.unique(region):
        rows = np.flatnonzero(region == g)
        k = kind if len(rows) >= 256 else "flat"  # tiny regions: exact is cheapest
        out[int(g)] = VectorIndex.build(k, vectors[rows], ids[rows], **params)
    return out


def save_serving_artifacts(
    artifacts_dir: Path,
    vectors: ListingVectors,
    listings: pd.DataFrame,
    indexes: dict[int, VectorIndex],
    calendar: pd.DataFrame | None = None,
) -> None:
    """Write the embeddings, the listings, the calendar (blocked nights; none: every listing
    is available), the indexes and ``serving.json`` (each atomically), and last the manifest
    of the folder."""
    out = Path(artifacts_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_value(vectors, out / EMBEDDINGS_DIR)
    table = listings.loc[:, list(LISTING_COLUMNS)].reset_index(drop=True)
    with atomic_path(out / LISTINGS_FILE) as tmp:
        table.to_parquet(tmp, index=False)
    cal = empty_calendar() if calendar is None else calendar.loc[:, list(CALENDAR_COLUMNS)]
    with atomic_path(out / CALENDAR_FILE) as tmp:
        cal.reset_index(drop=True).to_parquet(tmp, index=False)
    for g, index in indexes.items():
        index.save(out / INDEX_DIR / str(g))
    write_json(
        out / SERVING_FILE,
        {
            "system": SYSTEM,
            "model_name": vectors.model_name,
            "dim": int(vectors.vectors.shape[1]),
            "listings": len(table),
            "regions": sorted(int(g) for g in indexes),
            "index_kind": next(iter(indexes.values())).kind if indexes else "none",
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    write_manifest(out)


def load_similar(artifacts_dir: Path) -> SimilarListings:
    """The scorer an ``artifacts/`` folder describes, checked against its manifest first."""
    artifacts_dir = Path(artifacts_dir)
    verify_manifest(artifacts_dir, required=(SERVING_FILE, EMBEDDINGS_DIR, LISTINGS_FILE))
    meta = read_artifact_json(artifacts_dir / SERVING_FILE)
    regions = meta.get("regions") if isinstance(meta, dict) else None
    if not isinstance(regions, list) or not all(isinstance(g, int) for g in regions):
        raise ServingArtifactError(f"{artifacts_dir / SERVING_FILE}: field 'regions' missing")
    try:
        vectors = load_value(artifacts_dir / EMBEDDINGS_DIR)
        listings = pd.read_parquet(artifacts_dir / LISTINGS_FILE)
        indexes = {g: VectorIndex.load(artifacts_dir / INDEX_DIR / str(g)) for g in regions}
        cal_path = artifacts_dir / CALENDAR_FILE
        availability = Availability(
            pd.read_parquet(cal_path) if cal_path.is_file() else empty_calendar()
        )
    except (OSError, TypeError, ValueError, RuntimeError, KeyError, ModelFileError) as exc:
        raise ServingArtifactError(f"{artifacts_dir}: unreadable artifacts: {exc}") from exc
    if not isinstance(vectors, ListingVectors):
        raise ServingArtifactError(f"{artifacts_dir / EMBEDDINGS_DIR}: not listing vectors")
    missing = [c for c in LISTING_COLUMNS if c not in listings]
    if missing:
        raise ServingArtifactError(f"{artifacts_dir / LISTINGS_FILE}: columns {missing} missing")
    log.info(
        "loaded %s: %d listings in %d regions", vectors.model_name, len(listings), len(regions)
    )
    return SimilarListings(vectors, listings, indexes, availability)


def load_scorer(run_dir: Path, settings: Settings) -> SimilarListings:
    """What ``mlsd serve similar-listings`` serves: the scorer of a run directory (or of a
    bare ``artifacts/`` folder)."""
    return load_similar(artifacts_dir_of(run_dir))
