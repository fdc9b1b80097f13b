"""The circuit breaker (mlsd.breaker) and the URL redaction of the Redis store (no server)."""

from __future__ import annotations

import logging

import pytest

from mlsd.breaker import BreakerState, CircuitBreaker
from mlsd.stores_redis import redact, redact_url


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_consecutive_failures_then_probes_once() -> None:
    clock = Clock()
    b = CircuitBreaker("dep", failure_threshold=3, reset_timeout_s=5.0, clock=clock)
    for _ in range(2):
        assert b.allow()
        b.failure("boom")
    assert b.allow()
    b.success()  # a success resets the count
    for _ in range(2):
        assert b.allow()
        b.failure("boom")
    assert b.state is BreakerState.CLOSED
    assert b.allow()
    b.failure("boom 3")
    assert b.state is BreakerState.OPEN and b.cooling_down() and b.last_error == "boom 3"
    assert not b.allow()
    clock.now += 4.9
    assert not b.allow()
    clock.now += 0.2
    assert not b.cooling_down()
    assert b.allow()  # the probe
    assert b.state is BreakerState.HALF_OPEN
    assert not b.allow()  # only one probe at a time
    b.failure("still down")
    assert b.state is BreakerState.OPEN and not b.allow()
    clock.now += 5.0
    assert b.allow()
    b.success()
    assert b.state is BreakerState.CLOSED and b.allow() and not b.cooling_down()


def test_breaker_warns_once_per_outage(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    b = CircuitBreaker("redis://h", failure_threshold=2, reset_timeout_s=1.0, clock=clock)
    with caplog.at_level(logging.DEBUG, logger="mlsd.breaker"):
        for _ in range(50):  # a long outage: many refused calls and failed probes
            if b.allow():
                b.failure("refused")
            clock.now += 0.3
        clock.now += 1.0
        assert b.allow()
        b.success()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2, warnings
    assert "is open" in warnings[0] and "refused" in warnings[0]
    assert "is closed" in warnings[1]


def test_breaker_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker("x", failure_threshold=0)
    with pytest.raises(ValueError, match="reset_timeout_s"):
        CircuitBreaker("x", reset_timeout_s=0)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://alice:s3cret@h:6379/0", "redis://alice:***@h:6379/0"),
        ("rediss://alice:p%40ss@h/1", "rediss://alice:***@h/1"),
        ("redis://h:6379/0?password=s3cret&db=1", "redis://h:6379/0?password=***&db=1"),
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("unix:///tmp/redis.sock", "unix:///tmp/redis.sock"),
    ],
)
def test_redact_url_hides_the_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_masks_the_password_anywhere_in_a_message() -> None:
    url = "redis://alice:p%40ss@h:1/0"
    message = f"failed on {url}; AUTH p@ss rejected; raw p%40ss"
    out = redact(message, url)
    assert "p@ss" not in out and "p%40ss" not in out
    assert out == "failed on redis://alice:***@h:1/0; AUTH *** rejected; raw ***"
