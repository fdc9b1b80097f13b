"""Schemathesis against every running system's live server: no 5xx, every conformance check.

Each system's tiny run directory is served by a real uvicorn on 127.0.0.1 (API keys on, as in
production); schemathesis reads the server's own ``/openapi.json`` and runs its engine (what
``schemathesis run`` runs: the examples, coverage and fuzzing phases, seeded, at most
``MAX_EXAMPLES`` generated cases per operation) with every built-in check:
``not_a_server_error``, ``status_code_conformance``, ``content_type_conformance``,
``response_schema_conformance``, ``response_headers_conformance``, ``positive_data_acceptance``,
``negative_data_rejection``, ``missing_required_header``, ``unsupported_method``,
``allow_header_conformance``, ``ignored_auth`` and the resource checks (which find nothing to
do on an API without resources). The engine, not schemathesis's pytest plugin: the plugin's lazy
schema loader does not run under pytest 9.2, and the engine reports every request it sent.

Schema-valid PNG and JPEG uploads are real images (:func:`image_bytes`): ``format: binary``
cannot say "decodable". A new system adds its tiny run builder to :data:`BUILDERS`.
"""

from __future__ import annotations

import io
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import schemathesis
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as npst
from PIL import Image
from schemathesis.config import SchemathesisConfig
from schemathesis.core.media_types import MEDIA_TYPE_STRATEGIES
from schemathesis.engine import events
from starlette.types import ASGIApp

from mlsd.api.main import create_app
from mlsd.api.routes import (
    ad_click,
    event_rec,
    people_you_may_know,
    similar_listings,
    video_rec,
    visual_search,
)
from mlsd.index import VectorIndex
from mlsd.models import LightGBMClick
from mlsd.settings import Settings
from mlsd.systems.ad_click import features as ad_feats
from mlsd.systems.ad_click.serving import save_serving_artifacts as save_ad_click
from mlsd.systems.ad_click.world import AdClickWorld
from mlsd.systems.video_rec.features import Catalogue
from mlsd.systems.video_rec.features_titles import make_encoder
from mlsd.systems.video_rec.model import FitConfig, fit_recommender
from mlsd.systems.video_rec.serving import save_recommender
from mlsd.systems.video_rec.world import VideoRecWorld
from mlsd.systems.video_rec.world_entities import CATEGORIES, VideoWorldConfig
from mlsd.systems.visual_search.model import CNNEncoder
from mlsd.systems.visual_search.serving import save_serving_artifacts as save_visual
from mlsd.systems.visual_search.world import VisualSearchWorld, VisualWorldConfig
from mlsd.world import Scale

Server = Callable[[ASGIApp], str]
SEED = 17
ADMIN_KEY = "fuzz-admin-key"
READ_KEY = "fuzz-read-key"
READ = {"X-API-Key": READ_KEY}
#: Checks that must have run on the responses (the resource checks have nothing to check).
CORE_CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "positive_data_acceptance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",
    "ignored_auth",
)
MAX_EXAMPLES = 200  # per operation, fuzzing phase (the coverage phase adds its own cases)
log = logging.getLogger(__name__)

pytestmark = pytest.mark.xdist_group("schemathesis")


# ---- tiny run directories, built the way the systems' API tests build them ---------------------
def ad_click_run(run: Path) -> Path:
    world = AdClickWorld(Scale.TINY, seed=0)
    log = pd.concat(list(world.iter_log()), ignore_index=True)
    X = ad_feats.offline_features(log, world.users, world.ads)
    y = log["click"].to_numpy(dtype=np.int64)
    model = LightGBMClick(n_estimators=20, num_leaves=15, num_threads=1, random_state=0).fit(X, y)
    tables = ad_feats.online_tables(log, world.users, world.ads)
    save_ad_click(run / "artifacts", model, "lightgbm", tables)
    (run / "metrics.json").write_text("{}")
    return run


def video_rec_run(run: Path) -> Path:
    torch.set_num_threads(1)
    cfg = VideoWorldConfig(
        n_users=120, n_videos=160, n_days=3, new_users_per_day=4, new_videos_per_day=8
    )
    w = VideoRecWorld(Scale.TINY, 0, config=cfg)
    log = w.log()  # the log adds the days' new users and videos: read it first
    titles = make_encoder("hashing").encode(w.videos["title"].tolist())
    cat = Catalogue(w.videos, titles, list(CATEGORIES))
    rec, _ = fit_recommender(cat, w.users, log, FitConfig(tower_epochs=2, ranker_trees=20))
    save_recommender(run / "artifacts", rec, {})
    (run / "metrics.json").write_text("{}")
    return run


def visual_search_run(run: Path) -> Path:
    cfg = VisualWorldConfig.for_scale(Scale.TINY).with_(
        n_train_products=4, n_eval_products=6, photos_per_product=2
    )
    w = VisualSearchWorld(Scale.TINY, 0, cfg)
    pids, idx = w.catalog("eval")
    images = w.photos(pids, idx)
    enc = CNNEncoder(dim=16, width=4, train_steps=0).fit(images, pids)
    ids = np.arange(len(images)) + 100
    index = VectorIndex.build("flat", enc.encode(images), ids)
    labels = {int(i): f"product-{int(p)}" for i, p in zip(ids, pids, strict=True)}
    save_visual(run / "artifacts", enc, "untrained_cnn", index, 32, labels)
    (run / "metrics.json").write_text("{}")
    return run


def people_you_may_know_run(run: Path) -> Path:
    from mlsd.systems.people_you_may_know.datasets import world_graph
    from mlsd.systems.people_you_may_know.features import Snapshot
    from mlsd.systems.people_you_may_know.features_split import compute_split
    from mlsd.systems.people_you_may_know.model import HeuristicScore, PairLogistic
    from mlsd.systems.people_you_may_know.serving import batch_job, save_serving_artifacts
    from mlsd.systems.people_you_may_know.world import PymkConfig, PymkWorld

    world = PymkWorld(Scale.TINY, 0, PymkConfig.for_scale(Scale.TINY).with_(n_initial=120))
    data = world_graph(world)
    split = compute_split(data, 0, "tiny")
    model = PairLogistic().fit(split.train.X, split.train.y)
    snap = Snapshot.at(data.users, data.edges, data.n_days)
    batch = batch_job(snap, model, HeuristicScore("d_mutual").fit(split.train.X), 0)
    info = {"model": "lr", "as_of_day": data.n_days}
    save_serving_artifacts(run / "artifacts", batch.lists, data.users, data.edges, model, info)
    (run / "metrics.json").write_text("{}")
    return run


def similar_listings_run(run: Path) -> Path:
    from mlsd.systems.similar_listings.model import AttributeSimilarity
    from mlsd.systems.similar_listings.serving import (
        ListingVectors,
        build_indexes,
        save_serving_artifacts,
    )
    from mlsd.systems.similar_listings.world import SimilarListingsConfig, SimilarListingsWorld

    cfg = SimilarListingsConfig(n_regions=2, listings_per_region=30, n_days=1)
    listings = SimilarListingsWorld(Scale.TINY, 0, cfg).listings.reset_index(drop=True)
    listings.insert(0, "listing_id", np.arange(len(listings), dtype=np.int64))
    vectors = AttributeSimilarity().fit(listings).vectors()
    ids = listings["listing_id"].to_numpy()
    indexes = build_indexes(vectors, ids, listings["region"].to_numpy())
    save_serving_artifacts(
        run / "artifacts", ListingVectors(ids, vectors, "attributes"), listings, indexes
    )
    (run / "metrics.json").write_text("{}")
    return run


def event_rec_run(run: Path) -> Path:
    from mlsd.systems.event_rec.features import Platform, daily_states, impression_features
    from mlsd.systems.event_rec.model import LambdaRank
    from mlsd.systems.event_rec.serving import save_serving_artifacts, world_tables
    from mlsd.systems.event_rec.world import EventRecWorld
    from mlsd.systems.event_rec.world_config import DAY_S, EventWorldConfig

    cfg = EventWorldConfig.for_scale(Scale.TINY).with_(n_days=3, test_days=1, ab_days=1)
    w = EventRecWorld(Scale.TINY, 0, cfg)
    lg = w.log()
    tables = world_tables(w, lg)
    platform = Platform(tables.users, tables.events, tables.hoods)
    days = list(range(cfg.n_days))
    states = daily_states(platform, lg, days, cfg.n_hosts, w.friends, w.follows, cfg.n_slots)
    X = impression_features(platform, states, lg.impressions)
    y = lg.impressions["register"].to_numpy(np.int64)
    model = LambdaRank(n_estimators=5).fit(X, y, lg.impressions["session_id"].to_numpy())
    clock = cfg.n_days * DAY_S
    save_serving_artifacts(run / "artifacts", model, "lr", tables, clock, cfg.n_hosts, cfg.n_slots)
    (run / "metrics.json").write_text("{}")
    return run


BUILDERS: dict[str, tuple[Callable[[Path], Path], Any]] = {
    "event-rec": (event_rec_run, event_rec),
    "similar-listings": (similar_listings_run, similar_listings),
    "people-you-may-know": (people_you_may_know_run, people_you_may_know),
    "ad-click": (ad_click_run, ad_click),
    "video-rec": (video_rec_run, video_rec),
    "visual-search": (visual_search_run, visual_search),
}


def image_bytes(fmt: str) -> st.SearchStrategy[bytes]:
    """Real images of ``fmt`` (random pixels, 4 to 40 pixels a side): what a schema cannot say
    about ``format: binary``, so that schema-valid uploads are decodable ones."""

    def encode(arr: np.ndarray) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format=fmt)
        return buf.getvalue()

    shapes = st.tuples(st.integers(4, 40), st.integers(4, 40), st.just(3))
    return npst.arrays(np.uint8, shapes).map(encode)


@contextmanager
def real_image_uploads() -> Iterator[None]:
    """Register :func:`image_bytes` as schemathesis's PNG and JPEG bodies while the block runs."""
    saved = dict(MEDIA_TYPE_STRATEGIES)
    schemathesis.openapi.media_type("image/png", image_bytes("PNG"))
    schemathesis.openapi.media_type("image/jpeg", image_bytes("JPEG"))
    try:
        yield
    finally:
        MEDIA_TYPE_STRATEGIES.clear()
        MEDIA_TYPE_STRATEGIES.update(saved)


def fuzz_config(base_url: str) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "base-url": base_url,
            "continue-on-failure": True,
            "suppress-health-check": ["too_slow"],  # a busy machine is not a failure
            "request-timeout": 60,
            "headers": {"X-API-Key": ADMIN_KEY},
            "cache": {"enabled": False},
            "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
            "phases": {"stateful": {"enabled": False}},
        }
    )


@dataclass
class FuzzResult:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    checks: Counter[str] = field(default_factory=Counter)


def describe(rec: Any, case_id: str, check: str, info: Any) -> str:
    """One line per failed check: the operation, the check, what was sent and answered."""
    interaction = rec.interactions.get(case_id)
    sent = answer = ""
    if interaction is not None:
        req = interaction.request
        ctype = req.headers.get("Content-Type", [""])
        sent = f" sent {req.method} {req.uri} {ctype} {(req.body or b'')[:400]!r}"
        if interaction.response is not None:
            resp = interaction.response
            answer = f" got {resp.status_code} {resp.content[:160]!r}"
    return f"{rec.label}: {check}: {info.failure.title}{sent}{answer}"


def fuzz(base_url: str) -> FuzzResult:
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=fuzz_config(base_url))
    out = FuzzResult()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            rec = event.recorder
            for interaction in rec.interactions.values():
                out.requests += 1
                if interaction.response is not None:
                    out.statuses[interaction.response.status_code] += 1
            for case_id, checks in rec.checks.items():
                for check in checks:
                    out.checks[check.name] += 1
                    if check.failure_info is not None:
                        out.failures.append(describe(rec, case_id, check.name, check.failure_info))
        elif isinstance(event, events.NonFatalError):
            out.errors.append(f"{event.label}: {event.value!r}")
        elif isinstance(event, events.FatalError):
            out.errors.append(f"fatal: {event.exception!r}")
    return out


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, module_live_server: Server
) -> Callable[[str], str]:
    """The base URL of a live server of the named system (built once per module), keys on."""
    urls: dict[str, str] = {}

    def url_of(name: str) -> str:
        if name not in urls:
            build, module = BUILDERS[name]
            run = build(tmp_path_factory.mktemp(name))
            settings = Settings(api_keys={ADMIN_KEY: "admin", READ_KEY: "read"})
            app = create_app(settings, [module.make_served_system(run, settings)])
            urls[name] = module_live_server(app)
        return urls[name]

    return url_of


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_api_conforms_under_schemathesis(name: str, served: Callable[[str], str]) -> None:
    with real_image_uploads():
        result = fuzz(served(name))
    log.info("%s: %d requests, statuses %s", name, result.requests, dict(result.statuses))
    log.info("%s: checks run %s", name, dict(result.checks))
    for f in sorted(set(result.failures)):
        log.info("  %s", f)
    for e in result.errors:
        log.info("  error %s", e)
    assert result.requests > 0
    assert not result.errors
    assert sum(n for s, n in result.statuses.items() if s >= 500) == 0
    assert not result.failures
    # the conformance checks ran on every response, not only the server-error one
    assert set(CORE_CHECKS) <= set(result.checks)


# ---- the 5xx schemathesis found before, pinned -------------------------------------------------
@pytest.mark.parametrize("user_id", [2**63, 2**63 + 5, -(2**63) - 1, 2**64, 10**30])
def test_ad_click_ids_beyond_int64_are_a_422(user_id: int, served: Callable[[str], str]) -> None:
    body = {"user_id": user_id, "context": {"hour": 3, "device": "ios"}, "ad_ids": [1, 2]}
    for request in (body, {**body, "user_id": 1, "ad_ids": [user_id]}):
        r = httpx.post(f"{served('ad-click')}/v1/ad-click/score", json=request, headers=READ)
        assert r.status_code == 422, r.text
        assert "user_id" in r.json()["error"] or "ad_ids.0" in r.json()["error"]


@pytest.mark.parametrize("body", [{}, {"watch_history": []}, {"watch_history": [], "k": 5}])
def test_video_rec_new_user_without_history_gets_cold_start_feed(
    body: dict[str, Any], served: Callable[[str], str]
) -> None:
    url = f"{served('video-rec')}/v1/video-rec/recommendations"
    r = httpx.post(url, json=body, headers=READ)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["cold_start"] and out["user_id"] is None
    assert len(out["videos"]) == body.get("k", 20)
    assert len({v["video_id"] for v in out["videos"]}) == len(out["videos"])
