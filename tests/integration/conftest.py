"""Integration fixtures: run an ASGI app in a real uvicorn server on a loopback port."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
from starlette.types import ASGIApp

from mlsd.api.main import background_server


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
