"""A circuit breaker: a dependency that keeps failing is not called again for a while.

A remote dependency (the online store) that is down or frozen must cost a request at most one
timeout, and after a few failures not even that. :class:`CircuitBreaker` counts consecutive
failures; after ``failure_threshold`` of them it *opens*: callers get ``allow() == False`` at
once, with no network call, for ``reset_timeout_s``. Then it is *half-open*: one caller is let
through as a probe (the others are still refused); its success *closes* the breaker, its failure
opens it for another cool-down. An outage logs two warnings, when the breaker opens and when it
closes again (the probes in between log at debug level), never one traceback per request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from enum import StrEnum

logger = logging.getLogger(__name__)


class BreakerState(StrEnum):
    CLOSED = "closed"  # calls go through
    OPEN = "open"  # calls are refused until the cool-down ends
    HALF_OPEN = "half-open"  # one probe call is in flight


class CircuitBreaker:
    """Consecutive-failure circuit breaker, safe to share between threads.

    Use as ``if breaker.allow(): try: call(); breaker.success() except ...: breaker.failure()``.
    ``name`` appears in the log lines (it must hold no secret: pass a redacted URL).
    """

    def __init__(
        self,
        name: str,
        failure_threshold: int = 3,
        reset_timeout_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        if reset_timeout_s <= 0:
            raise ValueError(f"reset_timeout_s must be > 0, got {reset_timeout_s}")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._last_error = ""

    @property
    def state(self) -> BreakerState:
        """The state now (an open breaker whose cool-down has ended still reads ``OPEN`` until
        a caller is let through as the probe)."""
        return self._state

    @property
    def last_error(self) -> str:
        """The message of the last failure that (re)opened the breaker ("" if it never opened)."""
        return self._last_error

    def cooling_down(self) -> bool:
        """Open and still inside its cool-down: a call now would be refused."""
        with self._lock:
            return self._state is BreakerState.OPEN and not self._cool_down_over()

    def _cool_down_over(self) -> bool:
        return self._clock() - self._opened_at >= self.reset_timeout_s

    def _move(self, state: BreakerState, level: int, why: str) -> None:
        if state is not self._state:
            self._state = state
            logger.log(level, "circuit breaker for %s is %s: %s", self.name, state.value, why)

    def allow(self) -> bool:
        """May a call go out now? Closed: yes. Open: no, until the cool-down ends; then the
        first caller becomes the half-open probe. Half-open: no (the probe is in flight)."""
        with self._lock:
            if self._state is BreakerState.CLOSED:
                return True
            if self._state is BreakerState.OPEN and self._cool_down_over():
                self._move(BreakerState.HALF_OPEN, logging.DEBUG, "probing with one call")
                return True
            return False

    def success(self) -> None:
        """The call that was allowed succeeded."""
        with self._lock:
            self._failures = 0
            self._move(BreakerState.CLOSED, logging.WARNING, "the dependency answers again")

    def failure(self, error: str) -> None:
        """The call that was allowed failed (``error``: a message with no secret in it)."""
        with self._lock:
            self._failures += 1
            probe_failed = self._state is BreakerState.HALF_OPEN
            if probe_failed or self._failures >= self.failure_threshold:
                self._opened_at = self._clock()
                self._last_error = error
                if probe_failed:  # still down: no new warning, the outage goes on
                    self._move(BreakerState.OPEN, logging.DEBUG, f"the probe failed ({error})")
                    return
                why = (
                    f"{self._failures} consecutive failures, calls refused for "
                    f"{self.reset_timeout_s:g} s at a time (last: {error})"
                )
                self._move(BreakerState.OPEN, logging.WARNING, why)
