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
import pytest
import schemathesis
from hypothesis import strategies as st
from hypothesis.extra import numpy as npst
from PIL import Image
from schemathesis.config import SchemathesisConfig
from schemathesis.core.media_types import MEDIA_TYPE_STRATEGIES
from schemathesis.engine import events
from schemathesis.specs.openapi.formats import STRING_FORMATS
from starlette.types import ASGIApp
from tiny_runs import TINY_RUNS

from mlsd.api.main import create_app
from mlsd.api.routes import (
    ad_click,
    event_rec,
    harmful_content,
    news_feed,
    people_you_may_know,
    similar_listings,
    street_view_blur,
    video_rec,
    video_search,
    visual_search,
)
from mlsd.settings import Settings

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


ROUTERS: dict[str, Any] = {
    "street-view-blur": street_view_blur,
    "news-feed": news_feed,
    "harmful-content": harmful_content,
    "event-rec": event_rec,
    "similar-listings": similar_listings,
    "people-you-may-know": people_you_may_know,
    "ad-click": ad_click,
    "video-rec": video_rec,
    "video-search": video_search,
    "visual-search": visual_search,
}
BUILDERS: dict[str, tuple[Callable[[Path], Path], Any]] = {
    name: (build, ROUTERS[name]) for name, build in TINY_RUNS.items()
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
    """Register :func:`image_bytes` as schemathesis's PNG and JPEG bodies, and as the value of a
    ``format: binary`` form field (an image field beside others in a multipart form), while the
    block runs."""
    saved = dict(MEDIA_TYPE_STRATEGIES)
    saved_formats = dict(STRING_FORMATS)
    schemathesis.openapi.media_type("image/png", image_bytes("PNG"))
    schemathesis.openapi.media_type("image/jpeg", image_bytes("JPEG"))
    schemathesis.openapi.format("binary", image_bytes("PNG"))
    try:
        yield
    finally:
        MEDIA_TYPE_STRATEGIES.clear()
        MEDIA_TYPE_STRATEGIES.update(saved)
        STRING_FORMATS.clear()
        STRING_FORMATS.update(saved_formats)


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
