"""Integration fixtures: run an ASGI app in a real uvicorn server on a loopback port; a private
local Ray instance of two workers for a module's tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
from starlette.types import ASGIApp

from mlsd.api.main import background_server
from mlsd.engine import Engine, make_engine


@pytest.fixture
def live_server() -> Iterator[Callable[[ASGIApp], str]]:
    """Call it with an ASGI app; get the base URL of a live uvicorn serving it (test scope).

    Each server runs in a background thread on a kernel-chosen free port of 127.0.0.1 and is
    shut down when the test ends.
    """
    with ExitStack() as stack:
        yield lambda app: stack.enter_context(background_server(app))


@pytest.fixture(scope="module")
def module_live_server() -> Iterator[Callable[[ASGIApp], str]]:
    """Like ``live_server``, but the servers live until the test module ends."""
    with ExitStack() as stack:
        yield lambda app: stack.enter_context(background_server(app))


@pytest.fixture(scope="module")
def ray_engine() -> Iterator[Engine]:
    """A private local Ray instance with two workers, shut down when the test module ends."""
    engine = make_engine("ray", workers=2)
    try:
        yield engine
    finally:
        engine.shutdown()
